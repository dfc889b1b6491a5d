"""The verdict line (sessions/verdict.py): hand-built result documents, the words and numbers it must give."""
from __future__ import annotations

from sessions.store import SessionStore
from sessions.verdict import retrain_reference, same_deletion, session_verdict, verdict_lines

DOC = {"metrics": {"df_dr_auc": 0.5204, "df": {"r_mean": 12.04}, "dr": {"r_mean": 59.0}, "test": {"r_mean": 50.46},
                   "mia": {"auc": 0.5}},
       "original_metrics": {"df_dr_auc": 0.9096, "df": {"r_mean": 48.0}, "dr": {"r_mean": 60.0},
                            "test": {"r_mean": 52.0}},
       "seconds": 1.5, "steps": 120, "requests": [{"request": 1, "steps": 120, "seconds": 1.5}]}
RETRAIN = {"metrics": {"df_dr_auc": 0.5004, "df": {"r_mean": 10.96}, "test": {"r_mean": 51.0}}}


def test_one_line_forget_keep_cost():
    assert verdict_lines(DOC) == ["forget: Df/Dr AUC 91.0 -> 52.0, Df r_mean 48.0 -> 12.0; "
                                  "keep: test r_mean 52.0 -> 50.5, Dr r_mean 60.0 -> 59.0; cost 1.5 s, 120 steps"]


def test_the_gap_to_retrain_agrees_with_the_numbers_shown():
    # AUC 52.04 and 50.04 are shown 52.0 and 50.0: the gap is +2.0 (raw +2.0); Df 12.04 vs 10.96 are shown
    # 12.0 and 11.0: the gap is +1.0 (the raw difference, 1.08, would print +1.1 beside them)
    line, = verdict_lines(DOC, RETRAIN)
    assert line.startswith("forget: Df/Dr AUC 91.0 -> 52.0 (Retrain 50.0, +2.0), Df r_mean 48.0 -> 12.0 "
                           "(Retrain 11.0, +1.0); keep: test r_mean 52.0 -> 50.5,")


def test_a_request_run_gives_one_line_per_request():
    doc = {"metrics": {"df_dr_auc": 0.6, "test": {"accuracy": 70.0}}, "seconds": 3.0, "steps": 30,
           "original_metrics": {"df_dr_auc": 0.9, "test": {"accuracy": 75.0}},
           "requests": [{"request": 1, "steps": 10, "seconds": 1.0, "metrics": {"df_dr_auc": 0.7, "test": {"accuracy": 72.0}}},
                        {"request": 2, "steps": 20, "seconds": 2.0, "metrics": {"df_dr_auc": 0.6, "test": {"accuracy": 70.0}}}]}
    assert verdict_lines(doc, {"metrics": {"df_dr_auc": 0.55}}) == [
        "request 1/2: forget: Df/Dr AUC 90.0 -> 70.0; keep: test accuracy 75.0 -> 72.0; cost 1 s, 10 steps",
        "request 2/2: forget: Df/Dr AUC 90.0 -> 60.0 (Retrain 55.0, +5.0); keep: test accuracy 75.0 -> 70.0; "
        "cost 2 s, 20 steps"]


def test_a_requests_df_that_is_part_of_the_deletion_set_is_not_held_against_the_originals_whole_set():
    """Request 1 of 20 read `Df r_mean 89.3 -> 0.0`: the original over all 20 units against the one unit forgotten
    so far; and a sample evaluation (`--eval-sample`) was shown as if it were the full one."""
    def entry(number, units, kind, df):
        return {"request": number, "units": 1, "evaluation": kind, "evaluated_units": units, "steps": 1,
                "metrics": {"df_dr_auc": 0.7, "df": {"r_mean": df}, "test": {"r_mean": 50.0}}}

    doc = {"metrics": {"df_dr_auc": 0.6, "df": {"r_mean": 30.0}, "test": {"r_mean": 50.0}}, "deletion": {"units": 3},
           "original_metrics": {"df_dr_auc": 0.5, "df": {"r_mean": 89.3}, "test": {"r_mean": 54.0}},
           "requests": [entry(1, 1, "sample", 0.0), entry(2, 1, "sample", 20.0), entry(3, 3, "full", 30.0)]}
    lines = verdict_lines(doc)
    assert lines[0].startswith("request 1/3: forget: Df/Dr AUC 70.0, Df r_mean 0.0 (the 1 unit requested so far); "
                               "keep: test r_mean 54.0 -> 50.0")
    assert "Df r_mean 20.0 (a sample of 1 of the 2 units requested so far)" in lines[1]
    assert lines[2].startswith("request 3/3: forget: Df/Dr AUC 50.0 -> 70.0, Df r_mean 89.3 -> 30.0; keep:")
    # an entry that does not say how many it forgot (an older document): a sample is still called one
    unsaid = {**doc, "requests": [{k: v for k, v in e.items() if k != "units"} for e in doc["requests"]]}
    assert "Df r_mean 20.0 (a sample of 1 of the units requested)" in verdict_lines(unsaid)[1]
    # a PULSE run names people, and its summary has no deletion.units: its requests' people make the whole set
    pulse = {"metrics": {"forget": {"image": 0.3}}, "original_metrics": {"forget": {"image": 1.0}},
             "requests": [{"request": 1, "people": ["a", "b"], "evaluation": "full", "evaluated_units": 2,
                           "forget": {"image": 0.5}},
                          {"request": 2, "people": ["c", "d"], "evaluation": "full", "evaluated_units": 4,
                           "forget": {"image": 0.3}}]}
    first, last = verdict_lines(pulse)
    assert first == "request 1/2: forget: forget.image 50.0 (the 2 people requested so far)"
    assert last == "request 2/2: forget: forget.image 100.0 -> 30.0"


def test_people_data_forget_and_retention():
    doc = {"metrics": {"forget": {"image": 0.25, "text": 0.3}, "retain": {"image": 0.9}, "mmbench_retention": 98.5},
           "original_metrics": {"forget": {"image": 0.95, "text": 0.9}, "retain": {"image": 0.92}},
           "seconds": 75, "steps": 1, "requests": [{"request": 1, "people": ["a"], "forget": {"image": 0.25}}]}
    assert verdict_lines(doc) == ["forget: forget.image 95.0 -> 25.0, forget.text 90.0 -> 30.0; keep: retain.image "
                                  "92.0 -> 90.0, mmbench_retention 98.5; cost 1 m 15 s, 1 step"]


def test_the_holdout_sets_are_kept_clauses():
    """A --granularity fact run forgets one fact and must keep its unit's others: the verdict looked for a split
    named `holdout`, which no task has, and never showed holdout_identity or holdout_association."""
    doc = {**DOC, "metrics": {**DOC["metrics"], "holdout_identity": {"r_mean": 80.0},
                              "holdout_association": {"r_mean": 85.0}},
           "original_metrics": {**DOC["original_metrics"], "holdout_identity": {"r_mean": 83.0},
                                "holdout_association": {"r_mean": 90.0}}}
    assert verdict_lines(doc)[0].split("; ")[1] == ("keep: test r_mean 52.0 -> 50.5, Dr r_mean 60.0 -> 59.0, "
                                                     "holdout id r_mean 83.0 -> 80.0, holdout assoc r_mean 90.0 -> 85.0")
    people = {"metrics": {"forget": {"image": 0.25}, "holdout_identity": {"image": 0.8182, "text": 0.9}},
              "original_metrics": {"forget": {"image": 1.0}, "holdout_identity": {"image": 1.0, "text": 1.0}}}
    assert verdict_lines(people) == ["forget: forget.image 100.0 -> 25.0; keep: holdout_identity.image 100.0 -> 81.8, "
                                     "holdout_identity.text 100.0 -> 90.0"]


def test_nothing_to_judge():
    assert verdict_lines(None) == verdict_lines({"error": "x"}) == []


def test_retrain_of_the_same_deletion_set_is_found_in_the_home(tmp_path):
    spec = {"method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "task": "retrieval", "seed": 42,
            "deletion": {"strategy": "random", "n": 4, "seed": 42}, "device": "cpu", "requests": 1}
    store = SessionStore(tmp_path)
    for method, seed, auc in (("retrain", 42, 0.5004), ("retrain", 7, 0.1), ("multidelete", 42, 0.2)):
        writer = store.create({**spec, "method": method, "seed": seed, "device": "cuda"})
        writer.finish("finished", summary={**RETRAIN, "metrics": {"df_dr_auc": auc}})
    assert same_deletion(spec, {**spec, "device": "cuda", "requests": 3, "method": "retrain"})
    assert not same_deletion(spec, {**spec, "deletion": {"strategy": "random", "n": 8, "seed": 42}})
    assert retrain_reference(store, spec)["metrics"]["df_dr_auc"] == 0.5004   # seed 7 and MultiDelete are not it
    assert retrain_reference(store, {**spec, "method": "retrain"}) is None     # Retrain is its own reference
    run = store.create(spec)
    run.finish("finished", summary=DOC)
    assert "(Retrain 50.0, +2.0)" in session_verdict(store, store.get(run.session_id))[0]


def test_run_prints_the_verdict_under_its_table_and_json_carries_it(tmp_path, monkeypatch, capsys):
    from workbench.verdicts import print_verdict, verdict_of

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    spec = {"method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "seed": 42, "deletion": {"n": 4}}
    writer = SessionStore(tmp_path).create({**spec, "method": "retrain"})
    writer.finish("finished", summary=RETRAIN)
    verdict = verdict_of(spec, DOC)
    assert verdict == verdict_lines(DOC, RETRAIN)[0]
    print_verdict(verdict)
    assert capsys.readouterr().out == f"verdict: {verdict}\n"


def test_a_long_sequences_verdict_is_thinned_for_a_terminal():
    """A 100-request run printed 100 verdict lines under its table (its --json keeps them all)."""
    from sessions.verdict import thinned

    lines = ["note"] + [f"request {i}/100: forget: ..." for i in range(1, 101)]
    shown, left_out = thinned(lines)
    requests = [line for line in shown if line.startswith("request ")]
    # the first, then round numbers (an --eval-every-requests 10 run's full evaluations): 1, 10, 19, 28 ... read as
    # an evaluation every 9 (a review)
    assert shown[0] == "note" and left_out == 89
    assert [int(line.split()[1].split("/")[0]) for line in requests] == [1, *range(10, 101, 10)]
    thirty = [f"request {i}/30: ..." for i in range(1, 31)]
    assert [line.split("/")[0] for line in thinned(thirty)[0]] == ["request 1", *(f"request {i}" for i in range(5, 31, 5))]
    assert thinned(lines[:13]) == (lines[:13], 0)   # 12 requests: all of them


def test_a_fact_runs_requests_count_facts():
    """At --granularity fact a request's Df was said to hold "the 2 units forgotten so far" (2 facts of one
    picture), and on people data "the 2 people" for 2 facts of one person."""
    def entry(number, units):
        return {"request": number, "units": 1, "evaluated_units": units, "steps": 1,
                "metrics": {"df_dr_auc": 0.7, "df": {"r_mean": 20.0}, "test": {"r_mean": 50.0}}}

    doc = {"metrics": {"df_dr_auc": 0.6, "df": {"r_mean": 30.0}, "test": {"r_mean": 50.0}},
           "deletion": {"granularity": "fact", "facts": ["a#owner", "a#mark", "b#owner"], "units": 3},
           "original_metrics": {"df_dr_auc": 0.5, "df": {"r_mean": 89.3}, "test": {"r_mean": 54.0}},
           "requests": [entry(1, 1), entry(2, 2), entry(3, 3)]}
    lines = verdict_lines(doc)
    assert "(the 1 fact requested so far)" in lines[0] and "(the 2 facts requested so far)" in lines[1]


def test_a_studys_deletion_is_named_in_its_own_noun():
    from workbench.cli_study import deletion_words

    assert deletion_words({"strategy": "random", "n": 1}) == "1 random unit (drawn by each seed)"
    assert deletion_words({"strategy": "random", "n": 4, "granularity": "fact"}) == "4 random facts (drawn by each seed)"


def test_a_screens_verdict_box_ends_with_the_last_request():
    """At 100x30 the home's detail listed requests 1 to 4 of 30, cut, and never the one the run ended with."""
    from sessions.verdict import last_requests

    lines = [f"request {i}/30: forget: Df/Dr AUC {40 + i}.0" for i in range(1, 31)]
    assert last_requests(lines) == [*lines[:-4:-1],
                                    "(27 earlier requests left out: `mmul-workbench sessions show` has each)"]
    # newest first: a box too short for both cut request 2/2 of a 2-request run, where it ended, not request 1/2
    assert last_requests(lines[:2]) == lines[1::-1] and last_requests(["forget: x"]) == ["forget: x"]


def test_a_run_a_stop_if_rule_ended_is_judged_on_what_it_forgot_and_says_so():
    """Stopped at request 3 of 20, the verdict read 'request 3/3: forget: Df/Dr AUC 45.1 -> 68.4, Df r_mean 89.3 ->
    27.8', the original's Df on all 20 units against the 3 forgotten."""
    from sessions.verdict import verdict_lines

    entries = [{"request": r, "units": 1, "evaluated_units": r,
                "metrics": {"df_dr_auc": 0.6, "df": {"r_mean": 30.0}, "test": {"r_mean": 50.0}}} for r in (1, 2, 3)]
    summary = {"metrics": entries[-1]["metrics"], "requests": entries, "deletion": {"units": 3},
               "original_metrics": {"df_dr_auc": 0.451, "df": {"r_mean": 89.3}, "test": {"r_mean": 54.0}},
               "seeds": {"requests": list(range(20))},
               "stopped_by": {"rule": "val.r_mean<35", "value": 34.0, "step": 2, "request": 3}}
    lines = verdict_lines(summary, retrain={"metrics": {"df_dr_auc": 0.85, "test": {"r_mean": 46.0}}})
    last = lines[-1]
    assert last.startswith("request 3/20: ") and last.endswith("(stopped by --stop-if val.r_mean<35)")
    assert "89.3" not in last and "45.1" not in last and "(the 3 units requested so far)" in last
    assert "Retrain" not in last  # the Retrain of all 20 units is no reference for 3
    assert lines[0].startswith("request 1/20: ")
    # stopped in its first request: it read as a whole run, the original's Df on all 20 units against one (a review)
    first = {**summary, "requests": entries[:1], "metrics": entries[0]["metrics"], "deletion": {"units": 1},
             "stopped_by": {**summary["stopped_by"], "request": 1}}
    (only,) = verdict_lines(first)
    assert only.startswith("request 1/20: ") and only.endswith("(stopped by --stop-if val.r_mean<35)")
    assert "89.3" not in only and "(the 1 unit requested so far)" in only


def test_a_narrow_box_reads_the_verdict_without_its_cost_and_short_metric_names():
    """At 80x24 the monitor's box cut a request's verdict before its cost, mid-sentence, and its table was as wide as
    `holdout_association.txt_r10`, so the delta column fell off the edge (a review)."""
    from sessions.metric_names import short_name
    from sessions.verdict import without_cost

    assert without_cost(["request 2/2: forget: Df r_mean 90.0 -> 81.7; keep: test r_mean 54.0 -> 56.2; cost 0.3 s, "
                         "13 steps"]) == ["request 2/2: forget: Df r_mean 90.0 -> 81.7; keep: test r_mean 54.0 -> 56.2"]
    assert short_name("holdout_association.txt_r10") == "holdout_assoc.txt_r10"
    assert short_name("holdout_identity.accuracy") == "holdout_id.accuracy" and short_name("df.r_mean") == "df.r_mean"


def test_a_pulse_run_prints_its_verdict_and_its_json_carries_it(tmp_path, monkeypatch, capsys):
    """`pulse` printed its table alone and its --json had no verdict, where `sessions show` and `replay` of the same
    session printed one (a review)."""
    import json

    from workbench.cli_pulse import print_pulse

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    entry = {"forget": {"image": 0.4, "text": 0.9}, "retain": {"image": 1.0, "text": 1.0}, "mmbench": 0.5,
             "mmbench_retention": 100.0}
    result = {"session": "s1", "kind": "pulse", "method": "ga", "data": "people-tiny", "model": "llava-tiny",
              "knowledge": "pretrained", "update": "llm", "seconds": 0.5, "steps": 20,
              "original_metrics": {**entry, "forget": {"image": 1.0, "text": 1.0}}, "metrics": entry,
              "requests": [{"request": 1, "people": ["p1"], "steps": 20, "seconds": 0.5, **entry}], "history": None}
    spec = {"kind": "pulse", "method": "ga", "model": "llava-tiny", "data": "people-tiny", "seed": 42}
    print_pulse(spec, result, as_json=False)
    printed = capsys.readouterr().out
    assert "verdict: forget: forget.image 100.0 -> 40.0" in printed
    print_pulse(spec, result, as_json=True)
    assert json.loads(capsys.readouterr().out)["verdict"].startswith("forget: forget.image 100.0 -> 40.0")


def test_a_methods_caveat_is_in_the_verdict():
    """A MultiDelete pulse of one person per request read 100/100 in its table and verdict as if L_MD had worked;
    only its log said L_MD had nothing to decouple."""
    caveat = "L_MD decoupled nothing: every Df batch held a single unit"
    one = {**DOC, "requests": [{**DOC["requests"][0], "caveats": [caveat]}]}
    assert verdict_lines(one)[1:] == [f"caveat: {caveat}"]
    doc = {"metrics": {"df_dr_auc": 0.6}, "original_metrics": {"df_dr_auc": 0.9},
           "requests": [{"request": n, "steps": 1, "seconds": 1.0, "metrics": {"df_dr_auc": 0.6},
                         **({"caveats": [caveat]} if n != 2 else {})} for n in (1, 2, 3)]}
    lines = verdict_lines(doc)
    assert lines[3:] == [f"caveat (requests 1, 3): {caveat}"] and lines[0].startswith("request 1/3:")


def test_a_screens_verdict_keeps_the_last_request_before_the_caveats():
    """A screen's box put every non-request line first, so a long caveat pushed the run's last request out of a
    four-line box at 80x24 (a review)."""
    from sessions.verdict import last_request_only, last_requests

    lines = ["request 1/3: a", "request 2/3: b", "request 3/3: c", "caveat (requests 1, 2, 3): L_MD ..."]
    assert last_request_only(lines) == ["request 3/3: c", "caveat (requests 1, 2, 3): L_MD ..."]
    assert last_requests(lines, keep=2)[:2] == ["request 3/3: c", "request 2/3: b"]
    assert last_requests(lines, keep=2)[-1].startswith("caveat")
