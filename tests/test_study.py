"""`mmul-workbench study`: the grid of runs end to end (the CLI's app in this process, tiny models), its resume, its
aggregation and the Retrain-relative scores checked by hand, and bad input refused before anything runs."""
import json
import math
import stat
import sys
import subprocess

import pytest

from conftest import ROOT, cli_env, run_in_process

from engine.metrics.forget_quality import forget_quality, unit_means
from sessions.study import (aggregate, grid, grid_caption, mean_std, median_per_seed, rank, rank_label, relative_scores,
                            study_id)

HEAVY = ("torch", "transformers", "torch_geometric", "peft", "textual", "plotext", "scipy")
MUST_HOLD = ("df_dr_auc", "test.r_mean", "auc_gap_to_retrain", "test_gap_to_retrain", "forget_quality",
             "mia.df_member_rate", "mia.auc")


def run_cli(home, *args):
    return run_in_process(home, *args)


# --- forget quality: the KS p-value, checked by hand --------------------------------------------------
def test_forget_quality_identical_samples_is_one():
    scores = [0.3, 1.2, 0.7, 2.5, 0.1]
    assert forget_quality(scores, list(scores)) == pytest.approx(1.0)


def test_forget_quality_disjoint_samples_is_tiny():
    # D = 1: of the C(20, 10) equally likely orders of two samples of 10, only "all x first" and
    # "all y first" reach it, so the exact two-sided p-value is 2 / C(20, 10)
    p = forget_quality(list(range(10)), list(range(100, 110)))
    assert p == pytest.approx(2 / math.comb(20, 10)) and p < 1e-4


def test_forget_quality_known_case_by_hand():
    # pooled order x x y y x y x y: the ECDF gap peaks at 2/4 (after the first two), so D = 0.5. Under
    # the null every one of the C(8, 4) = 70 orders is equally likely; an order keeps its gap below 2/4
    # only if it never leads by two steps, i.e. each pair of draws is one x and one y: 2^4 = 16 orders.
    # p = P(D >= 0.5) = (70 - 16) / 70.
    p = forget_quality([1, 2, 5, 7], [3, 4, 6, 8])
    assert p == pytest.approx(54 / 70)


def test_forget_quality_of_nothing_is_none():
    assert forget_quality([], [1.0]) is None and forget_quality([1.0], []) is None


def test_a_unit_of_five_pairs_is_one_sample():
    # unit 3 has five captions (losses 1..5, mean 3), unit 0 two (mean 5), unit 9 one: three samples, in the
    # order the units first appear
    losses = [1.0, 2.0, 4.0, 3.0, 6.0, 4.0, 5.0, 7.0]
    units = [3, 3, 0, 3, 0, 3, 3, 9]
    assert unit_means(losses, units) == [3.0, 5.0, 7.0]
    with pytest.raises(ValueError):
        unit_means([1.0, 2.0], [0])


def test_forget_quality_counts_units_not_pairs():
    # two units of five identical-but-for-noise pairs each side: per pair the KS test sees 10 vs 10 disjoint
    # values (p = 2 / C(20, 10)); per unit it sees 2 vs 2 disjoint means, and with n = 2 + 2 the exact
    # two-sided p is 2 / C(4, 2) = 1/3: the correlated captions no longer count as samples
    mine = [10 + k / 10 for k in range(5)] + [20 + k / 10 for k in range(5)]
    retrain = [0 + k / 10 for k in range(5)] + [1 + k / 10 for k in range(5)]
    units = [0] * 5 + [1] * 5
    assert forget_quality(mine, retrain) == pytest.approx(2 / math.comb(20, 10))
    assert forget_quality(unit_means(mine, units), unit_means(retrain, units)) == pytest.approx(1 / 3)


def test_p_values_are_summarised_by_their_median_never_a_mean():
    assert median_per_seed({"42": 0.5, "87": 0.01, "21": 0.2}) == {"median": 0.2, "n": 3,
                                                                   "per_seed": {"42": 0.5, "87": 0.01, "21": 0.2}}
    assert median_per_seed({"42": 0.5, "87": 0.1})["median"] == 0.1   # the lower middle: never their mean (0.3)
    assert median_per_seed({"42": None}) is None


# --- aggregation: mean, sample std, n; Retrain-relative scores; the ranking ----------------------------
def test_mean_std_by_hand():
    s = mean_std([1.0, 2.0, 3.0, 4.0])
    # mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, over n - 1 = 3
    assert s == {"mean": 2.5, "std": pytest.approx(math.sqrt(5 / 3)), "n": 4}
    assert mean_std([7.0]) == {"mean": 7.0, "std": 0.0, "n": 1}
    assert mean_std([1.0, float("nan"), None, 3.0]) == {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "n": 2}
    assert mean_std([]) is None


def result(auc, r_mean, member, scores, seconds=1.0):
    return {"metrics": {"df_dr_auc": auc, "test": {"r_mean": r_mean}, "mia": {"df_member_rate": member}},
            "seconds": seconds, "df_unit_scores": scores}


def test_aggregate_and_rank_by_hand():
    runs = [("retrain", 42, result(0.60, 50.0, 0.5, [1, 2, 3])),
            ("ft", 42, result(0.70, 48.0, 0.9, [1, 2, 3])),
            ("retrain", 87, result(0.62, 52.0, 0.7, [4, 5, 6])),
            ("ft", 87, result(0.66, 45.0, 0.8, [9, 9, 9])),
            ("npo", 42, result(0.61, 30.0, 0.4, [1, 2, 3]))]  # no seed-87 run: n = 1
    same = lambda a, b: 1.0 if list(a) == list(b) else 0.25  # noqa: E731  (a stand-in for the KS test)
    stats = aggregate(runs, same, order=["retrain", "ft", "npo"])
    assert list(stats) == ["retrain", "ft", "npo"]
    ft = stats["ft"]
    # gaps per seed: AUC |0.70-0.60| = 0.10 and |0.66-0.62| = 0.04; test |48-50| = 2 and |45-52| = 7
    assert ft["auc_gap_to_retrain"] == {"mean": pytest.approx(0.07), "std": pytest.approx(0.06 / math.sqrt(2)), "n": 2}
    assert ft["test_gap_to_retrain"] == {"mean": pytest.approx(4.5), "std": pytest.approx(5 / math.sqrt(2)), "n": 2}
    # a p-value per seed (1.0 at seed 42, 0.25 at 87) and their median: no mean of p-values
    assert ft["forget_quality"] == {"median": 0.25, "per_seed": {"42": 1.0, "87": 0.25}, "n": 2}
    assert stats["npo"]["forget_quality"] == {"median": 1.0, "per_seed": {"42": 1.0}, "n": 1}
    assert ft["mia.df_member_rate"]["mean"] == pytest.approx(0.85) and ft["test.r_mean"]["n"] == 2
    assert stats["retrain"]["auc_gap_to_retrain"] == {"mean": 0.0, "std": 0.0, "n": 2}
    assert stats["npo"]["test_gap_to_retrain"] == {"mean": 20.0, "std": 0.0, "n": 1}
    # ranked by AUC gap among test gaps within the tolerance: npo (AUC gap 0.01) is closer but 20 points off
    assert rank(stats, 5.0) == {"by": "auc_gap_to_retrain", "tolerance": 5.0, "within": ["ft"], "as_original": [],
                                "outside": ["npo"]}
    assert rank(stats, 25.0)["within"] == ["npo", "ft"]
    assert rank(stats, 4.0)["within"] == []


def test_a_method_no_closer_to_retrain_than_the_untouched_original_is_not_ranked():
    """FT ranked 1 in a study where it forgot nothing (AUC gap 35.0 against the original's 31.5, Df as the
    original's) because MultiDelete, the one method that forgot, was 0.2 points over the test tolerance. The
    original, as each seed's Retrain evaluated it before unlearning, is the bar: a method must be closer."""
    from sessions.study import original_stats, study_ranking

    def retrain(auc, r_mean, original_auc, original_r_mean):
        return {**result(auc, r_mean, 0.5, [1, 2]),
                "original_metrics": {"df_dr_auc": original_auc, "test": {"r_mean": original_r_mean}}}

    runs = [("retrain", 42, retrain(0.80, 50.0, 0.50, 53.0)), ("retrain", 87, retrain(0.84, 52.0, 0.52, 55.0)),
            ("ft", 42, result(0.48, 51.0, 0.9, [1, 2])), ("ft", 87, result(0.50, 53.0, 0.9, [1, 2])),
            ("npo", 42, result(0.70, 49.0, 0.6, [1, 2])), ("npo", 87, result(0.72, 50.0, 0.6, [1, 2]))]
    stats = aggregate(runs, order=["retrain", "ft", "npo"])
    original = original_stats(runs)
    # the original's gaps per seed: AUC |0.50-0.80| = 0.30, |0.52-0.84| = 0.32; test |53-50| = 3, |55-52| = 3
    assert original["auc_gap_to_retrain"]["mean"] == pytest.approx(0.31)
    assert original["test_gap_to_retrain"] == {"mean": 3.0, "std": 0.0, "n": 2}
    assert original["df_dr_auc"]["mean"] == pytest.approx(0.51) and original["test.r_mean"]["mean"] == 54.0
    # FT's AUC gap (0.32, 0.34: 0.33) is no smaller than the original's over its seeds (0.31): not ranked
    ranking = study_ranking(stats, 5.0, (), original)
    assert ranking["within"] == ["npo"] and ranking["as_original"] == ["ft"]
    assert ranking["original_auc_gap"] == pytest.approx(0.31)
    assert rank_label(ranking, "ft") == "as orig." and rank_label(ranking, "npo") == "1"
    # runs without the original's numbers (older sessions) rank as before
    plain = [(m, seed, {k: v for k, v in r.items() if k != "original_metrics"}) for m, seed, r in runs]
    assert rank(aggregate(plain), 5.0)["within"] == ["npo", "ft"]
    # the bar is the same seeds' as the method's own gap: FT on seed 42 alone (0.32) against seed 42's original
    # (0.30) is no closer; against the mean over both seeds (0.31) it would read the same only by chance
    partial = aggregate([r for r in runs if not (r[0] == "ft" and r[1] == 87)])
    assert partial["ft"]["original_auc_gap_to_retrain"]["mean"] == pytest.approx(0.30)
    one_seed_better = [*runs[:2], ("ft", 42, result(0.52, 51.0, 0.9, [1, 2]))]   # gap 0.28 < seed 42's 0.30
    assert rank(aggregate(one_seed_better), 5.0)["within"] == ["ft"]
    # the grid shows the original's row under Retrain's, and the caption the bar
    document = {"spec": {"methods": ["retrain", "ft", "npo"]}, "methods": stats, "original": original,
                "ranking": {**ranking, "tolerance": 5.0}}
    headers, rows = grid(document, [("Df/Dr AUC", "df_dr_auc")], cost=False)
    assert [row[0] for row in rows] == ["retrain", "original (untouched)", "npo", "ft"]
    assert rows[1][2] == "51.0 ± 1.4" and rows[1][headers.index("AUC gap")] == "31.0 ± 1.4" and rows[1][-1] == "-"
    assert rows[3][-1] == "as orig." and "below the untouched original's over the same seeds (31.0 over all; " \
                                         "\"as orig.\": no closer to Retrain than doing nothing)" in grid_caption(document)


def test_cost_is_aggregated_as_mean_and_std_per_method():
    """Every number of a run's `cost` becomes ``cost.<field>``, mean ± std over the seeds; text fields (the
    device's name) are not aggregated. 10 s and 14 s: mean 12, std sqrt(((10-12)^2 + (14-12)^2) / 1) = sqrt(8)."""
    runs = []
    for seed, seconds, peak in ((42, 10.0, 500.0), (87, 14.0, 700.0)):
        run = result(0.7, 48.0, 0.9, [1, 2, 3], seconds=seconds)
        run["cost"] = {"unlearning_seconds": seconds, "peak_memory_mb": peak, "steps": 12, "device": "cpu",
                       "memory": "rss"}
        runs.append(("ft", seed, run))
    ft = aggregate(runs)["ft"]
    assert ft["cost.unlearning_seconds"] == {"mean": 12.0, "std": pytest.approx(math.sqrt(8)), "n": 2}
    assert ft["cost.peak_memory_mb"] == {"mean": 600.0, "std": pytest.approx(math.sqrt(20000)), "n": 2}
    assert ft["cost.steps"] == {"mean": 12.0, "std": 0.0, "n": 2}
    assert "cost.device" not in ft and "cost.memory" not in ft


def test_relative_scores_read_the_task_headline():
    run = {"metrics": {"df_dr_auc": 0.7, "test": {"accuracy": 61.0}}, "df_unit_scores": [1.0]}
    retrain = {"metrics": {"df_dr_auc": 0.5, "test": {"accuracy": 66.0}}}  # no Df scores: no forget quality
    assert relative_scores(run, retrain, forget_quality) == {"auc_gap_to_retrain": pytest.approx(0.2),
                                                             "test_gap_to_retrain": pytest.approx(5.0)}


def test_stored_per_pair_scores_give_no_p_value():
    """Sessions written before forget quality went per unit hold per-pair `df_scores` only: readable, but
    no p-value comes from them."""
    old = {"metrics": {"df_dr_auc": 0.7}, "df_scores": [1.0, 2.0, 3.0]}
    assert "forget_quality" not in relative_scores(old, dict(old), forget_quality)


def test_study_id_is_the_arguments_digest():
    one = study_id({"protocol": {"model": "clip-tiny", "data": "shapes-tiny"}, "methods": ["ft", "retrain"]})
    two = study_id({"methods": ["ft", "retrain"], "protocol": {"data": "shapes-tiny", "model": "clip-tiny"}})
    assert one == two and one.startswith("study-") and one != study_id({"methods": ["ft"]})


# --- the command --------------------------------------------------------------------------------------
def test_study_help_is_torch_free(tmp_path):
    code = ("import sys; sys.argv = ['mmul-workbench', 'study', '--help']\nfrom workbench.cli import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "print('HEAVY=' + ','.join(m for m in %r if m in sys.modules))" % (HEAVY,))
    out = subprocess.run([sys.executable, "-c", code], env=cli_env(tmp_path), cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY=", out.stdout + out.stderr


BAD = [
    (["--methods", "retrain,nope"], "unknown method 'nope'"),
    (["--methods", " , "], "--methods needs at least one method"),
    (["--seeds", ""], "--seeds needs at least one seed"),
    (["--seeds", "42,x7"], "'x7' is not a whole number"),
    (["--seeds", "42,-1"], "--seeds must be a whole number from 0"),
    (["--alpha", "2"], "none of the study's methods takes --alpha; it belongs to MultiDelete"),
    (["--methods", "retrain", "--stop-if", "df_dr_auc>0.6"],
     "none of the study's methods takes --stop-if; Retrain, the reference, runs the original's recipe whole"),
    (["--tolerance", "-1"], "--tolerance must be"),
    (["--delete", "100000"], "choose N <"),
    (["--delete-query", "owner nobody", "--granularity", "fact"], "no training fact has a text matching 'owner nobody'"),
]


@pytest.mark.parametrize("override,message", BAD)
def test_bad_input_is_one_line_exit_2_nothing_run(tmp_path, override, message):
    args = {"--methods": "retrain,ft", "--model": "clip-tiny", "--data": "shapes-tiny", "--delete": "4", "--seeds": "42"}
    for flag, value in zip(override[::2], override[1::2]):
        args[flag] = value
    out = run_cli(tmp_path, "study", *[x for pair in args.items() for x in pair])
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not (tmp_path / "sessions").exists() or not any((tmp_path / "sessions").glob("2*")), "a run was started"
    # nor a study record (an empty one, with its lock, was left by a deletion set refused headless)
    assert not (tmp_path / "studies").exists() or not any((tmp_path / "studies").iterdir())


def session_ids(home):
    return sorted(p.name for p in (home / "sessions").glob("2*")) if (home / "sessions").exists() else []


def test_study_runs_the_grid_and_resumes(home, monkeypatch):
    from sessions.store import SessionStore

    # seeds 42 and 7: the originals other tests of the shared home train too (the must-hold's 42,87 otherwise)
    args = ["--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "10", "--seeds", "42,7", "--epochs", "1"]
    before = set(session_ids(home))
    out = run_cli(home, "study", "--methods", "retrain,ft,multidelete", *args, "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert set(doc) >= {"study", "spec", "cells", "methods", "ranking"}
    assert doc["spec"]["methods"] == ["retrain", "ft", "multidelete"] and doc["spec"]["seeds"] == [42, 7]
    for method in ("retrain", "ft", "multidelete"):
        for metric in MUST_HOLD:
            stats = doc["methods"][method][metric]
            keys = {"median", "per_seed", "n"} if metric == "forget_quality" else {"mean", "std", "n"}
            assert set(stats) == keys and stats["n"] == 2, (method, metric, stats)
    retrain = doc["methods"]["retrain"]
    assert retrain["auc_gap_to_retrain"]["mean"] == 0.0 and retrain["forget_quality"]["median"] == pytest.approx(1.0)
    ft_quality = doc["methods"]["ft"]["forget_quality"]  # per seed, and their median; no mean of p-values
    assert set(ft_quality["per_seed"]) == {"42", "7"} and all(0.0 <= p <= 1.0 for p in ft_quality["per_seed"].values())
    assert ft_quality["median"] == min(ft_quality["per_seed"].values())  # of two seeds, the lower
    assert '"mean"' not in json.dumps([m["forget_quality"] for m in doc["methods"].values()])
    assert "median of" in run_cli(home, "study", "--methods", "retrain,ft,multidelete", *args).stdout
    assert doc["ranking"]["tolerance"] == 5.0 and doc["ranking"]["test_metric"] == "test.r_mean"
    for method in ("retrain", "ft", "multidelete"):  # what each cost, mean ± std over the two seeds
        for field in ("unlearning_seconds", "evaluation_seconds", "original_seconds", "examples_per_second",
                      "peak_memory_mb", "steps", "torch_threads"):
            assert set(doc["methods"][method][f"cost.{field}"]) == {"mean", "std", "n"}
            assert doc["methods"][method][f"cost.{field}"]["n"] == 2
    assert sorted(doc["ranking"]["within"] + doc["ranking"]["outside"]) == ["ft", "multidelete"]

    # each cell is an ordinary session, Retrain first for each seed, and carries its per-example Df scores
    cells = doc["cells"]
    assert [(c["method"], c["seed"]) for c in cells] == [(m, s) for s in (42, 7) for m in ("retrain", "ft", "multidelete")]
    assert all(c["state"] == "finished" for c in cells) and doc["state"] == "finished"   # it had none (a review)
    assert set(session_ids(home)) - before == {c["session"] for c in cells}
    store = SessionStore()
    for seed in (42, 7):
        created = {c["method"]: store.get(c["session"])["created"] for c in cells if c["seed"] == seed}
        assert created["retrain"] <= min(created["ft"], created["multidelete"])
    summary = store.get(cells[1]["session"])["summary"]
    # one Df score per unit (10 units of 5 captions), none per pair
    assert len(summary["df_unit_scores"]) == summary["deletion"]["units"] == 10 and summary["deletion"]["pairs"] == 50
    assert "df_scores" not in summary
    row = next(r for r in store.catalog_rows() if r["id"] == cells[1]["session"])
    assert "df_unit_scores" not in row["summary"]  # the catalog lists; the session keeps the per-unit scores
    assert len(summary["df_unit_ids"]) == 10 and "df_unit_ids" not in row["summary"]   # ... and the forgotten ids

    record = home / "studies" / f"{doc['study']}.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600 and stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    # the record keeps which session each cell is; the document adds what it ran at (lr, tuned)
    assert json.loads(record.read_text())["cells"] == [{k: v for k, v in c.items() if k not in ("lr", "tuned")}
                                                       for c in cells]
    assert all(c["lr"] > 0 and c["tuned"] is False for c in cells)

    # the same study again (methods in another order): nothing runs, the same numbers
    assert json.loads(record.read_text())["spec"]["tolerance"] == 5.0  # what the TUI's grid ranks by
    again = run_cli(home, "study", "--methods", "ft,multidelete,retrain", *args, "--tolerance", "3", "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "runs to go" not in again.stderr
    assert "all 6 runs finished before: their sessions are read back" in again.stderr  # it said nothing of them
    assert json.loads(record.read_text())["spec"]["tolerance"] == 3.0  # rerun with another: the record says so
    redo = json.loads(again.stdout)
    assert redo["study"] == doc["study"] and redo["cells"] == cells and redo["methods"] == doc["methods"]
    assert redo["ranking"]["tolerance"] == 3.0
    assert set(session_ids(home)) - before == {c["session"] for c in cells}

    # a missing cell (its session deleted) runs again, alone; a failed run fails the study (exit 1) after
    # the table (mean +/- std, the ranking's rule); run in process with the cell's runner stubbed, for speed
    from typer.testing import CliRunner

    import workbench.cli_study as cli_study
    from workbench.cli import app

    ran = []

    def failing_run(record, method, seed, spec, label, original):
        ran.append((method, seed, original is not None))
        record.set_cell(method, seed, None, "failed")
        return False, None

    store.delete(cells[4]["session"])
    monkeypatch.setattr(cli_study, "run_local_cell", failing_run)
    table = CliRunner().invoke(app, ["study", "--methods", "retrain,ft,multidelete", *args])
    assert table.exit_code == 1, table.output
    assert ran == [("ft", 7, True)]  # the seed's original metrics come from its finished cells
    assert "1 of 6 runs to go" in table.stderr and "1 of 6 runs of study" in table.stderr
    assert doc["study"] in table.stdout and "±" in table.stdout and "forget quality" in table.stdout
    assert "Ranked by closeness to Retrain" in table.stdout and "within 5 points" in table.stdout
    assert "train time" in table.stdout and "peak mem" in table.stdout  # the cost columns
    stored = json.loads(record.read_text())["cells"]
    assert stored[4] == {"method": "ft", "seed": 7, "session": None, "state": "failed"}
    recorded = [{k: v for k, v in c.items() if k not in ("lr", "tuned")} for c in cells]
    assert [c for i, c in enumerate(stored) if i != 4] == [c for i, c in enumerate(recorded) if i != 4]


def test_the_new_study_forms_refusals_name_what_is_wrong():
    """The TUI's New-study form plans `study ARGS` in its process: a value the parser refuses names its option
    (typer's vendored click raised past the old `click` catch as "BadParameter: ..."), and a missing deletion set
    is a SpecError naming it (it was a `fail` that printed under the TUI and left "the study's arguments were
    refused")."""
    from engine.errors import SpecError
    from workbench.cli_study import plan_from_args

    base = ["--methods", "ft", "--seeds", "1", "--model", "clip-tiny", "--data", "shapes-tiny"]
    with pytest.raises(SpecError, match="choose a deletion set: --delete N") as refused:
        plan_from_args(base)
    assert refused.value.field == "deletion"
    with pytest.raises(SpecError, match="Invalid value for '--lr'"):
        plan_from_args([*base, "--delete", "4", "--lr", "fast"])


def test_a_study_on_a_deployed_model_is_its_own_study(tmp_path):
    """`--original` is part of what a study is: the same command on another deployed model (or without one) must
    not resume and report the other study's cells (it did: the id left --original out)."""
    from workbench.cli_study import plan_from_args
    from engine.models.registry import tiny_model_dir
    from engine.data.shapes import build_shapes_world

    deployed = tiny_model_dir("clip-tiny", build_shapes_world("shapes-tiny"), 3, tmp_path / "models", task="retrieval")
    base = ["--methods", "ft", "--seeds", "42", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4"]
    plain, given = plan_from_args(base), plan_from_args([*base, "--original", str(deployed)])
    assert plain.id != given.id and given.spec["original"] == str(deployed) and "original" not in plain.spec


def test_a_cancelled_study_under_json_still_prints_its_document(tmp_path, monkeypatch):
    """A cancelled study printed nothing on stdout under --json, where a cancelled run prints its document."""
    import typer

    import workbench.cli_study as cli_study
    from conftest import run_in_process

    def cancelled(record, cells):
        raise typer.Exit(130)

    monkeypatch.setattr(cli_study, "run_cells", cancelled)
    out = run_in_process(tmp_path, "study", "--methods", "retrain,ft", "--seeds", "42", "--model", "clip-tiny",
                         "--data", "shapes-tiny", "--delete", "4", "--json")
    assert out.returncode == 130
    document = json.loads(out.stdout)
    assert document["state"] == "cancelled" and [c["method"] for c in document["cells"]] == ["retrain", "ft"]


def test_a_study_says_when_its_flags_change_how_retrain_trains():
    """`--epochs 3` took a tiny Retrain's test r_mean from 50.4 to 24.9 with no word, and it was still `ref`."""
    from workbench.cli_study import plan_from_args, reference_note

    args = ["--methods", "retrain,ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4", "--seeds", "42"]
    assert reference_note(plan_from_args(args)) is None
    assert reference_note(plan_from_args([*args, "--epochs", "3", "--lr", "1e-4"])) == (
        "note: Retrain, the reference, trains with --lr 0.0001, --epochs 3 too, not by the original's recipe: every "
        "gap to Retrain is measured against that model")
    assert reference_note(plan_from_args(["--methods", "ft", *args[2:], "--epochs", "3"])) is None   # no Retrain


def test_a_cell_resting_on_fewer_seeds_than_its_row_says_so():
    """A study row's n was its largest count: FT finished three seeds and Retrain two, and the test gap, over two,
    sat beside a test over three with nothing to tell them apart."""
    from sessions.study import grid

    runs = [("retrain", 42, result(0.60, 50.0, 0.5, [1, 2, 3])), ("retrain", 87, result(0.62, 52.0, 0.7, [4, 5, 6])),
            ("ft", 42, result(0.70, 48.0, 0.9, [1, 2, 3])), ("ft", 87, result(0.66, 45.0, 0.8, [9, 9, 9])),
            ("ft", 21, result(0.64, 20.0, 0.8, [7, 7, 7]))]
    document = {"methods": aggregate(runs, None, order=["retrain", "ft"]), "spec": {"methods": ["retrain", "ft"]}}
    document["ranking"] = rank(document["methods"], 5.0)
    headers, rows = grid(document, [("test r_mean", "test.r_mean")])
    ft = dict(zip(headers, next(row for row in rows if row[0] == "ft")))
    assert ft["n"] == "3" and ft["test r_mean"] == "37.7 ± 15.4"
    assert ft["test gap"] == "4.5 ± 3.5 (n 2)" and ft["AUC gap"].endswith("(n 2)")


def test_a_study_title_says_its_requests():
    """The title of a study run with --requests 4 read as if each method forgot its units in one go."""
    from workbench.cli_study import study_title

    spec = {"model": "clip-tiny", "data": "shapes-tiny", "deletion": {"strategy": "random", "n": 16, "seed": 0},
            "seeds": [42, 87]}
    assert study_title({"study": "study-x", "spec": {**spec, "requests": 4}}) == (
        "study study-x: clip-tiny on shapes-tiny, deleting 16 random units (drawn by each seed) in 4 requests, "
        "seeds 42, 87")
    assert " in 1 requests" not in study_title({"study": "study-x", "spec": {**spec, "requests": 1}})


def test_a_study_takes_the_evaluation_schedule_of_a_long_sequence():
    """`study --requests 100` evaluated every request in full, with no `--eval-every-requests` to bound it
    (`run` had it; the docs said a study took run's options)."""
    from engine.errors import SpecError
    from workbench.cli_study import plan_from_args

    base = ["--methods", "retrain,ga", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "10",
            "--seeds", "42", "--requests", "10"]
    plan = plan_from_args([*base, "--eval-every-requests", "5", "--eval-sample", "3"])
    specs_of = {method: spec for method, _, spec in plan.cells}
    assert (specs_of["ga"]["eval_every_requests"], specs_of["ga"]["eval_sample"]) == (5, 3)
    assert "eval_every_requests" not in specs_of["retrain"]   # the reference forgets in one request
    assert plan.id != plan_from_args(base).id   # another schedule, another study; without one, the id as before
    with pytest.raises(SpecError, match="--eval-every-requests applies to --requests K > 1"):
        plan_from_args([*base[:-2], "--eval-every-requests", "5"])


@pytest.mark.parametrize("flag, text, said", [
    ("seeds", "42,42", "'42' is given twice"),
    ("seeds", "42,087,87", "'87' is '087' again"),
    ("seeds", "42,,87", "has an empty entry between its commas"),
    ("seeds", " , ", "needs at least one seed"),
    ("methods", "ft,,retrain", "has an empty entry between its commas"),
    ("methods", "ft,neggrad,ft", "'ft' is given twice"),
])
def test_a_list_with_an_empty_or_repeated_entry_is_refused(flag, text, said):
    """`--seeds 42,42` ran one seed, and `--seeds 42,,87` or `--methods ft,,` passed the typo over, saying nothing."""
    from engine.errors import SpecError
    from engine.spec import parse_methods, parse_seeds

    with pytest.raises(SpecError, match=said):
        (parse_seeds if flag == "seeds" else parse_methods)(text)
    assert parse_seeds("42, 87,21") == [42, 87, 21] and parse_methods("ft,retrain") == ["retrain", "ft"]


def test_a_study_says_how_it_ran_and_each_cells_lr():
    """A tuned, matched-steps study printed the same title as a plain one, and the lr each cell ran at was in
    each session's log only (a review)."""
    from workbench.cli_study import learning_rates, study_title

    document = {"study": "study-x", "spec": {
        "model": "clip-tiny", "data": "shapes-tiny", "deletion": {"strategy": "random", "n": 8}, "seeds": [42, 87],
        "methods": ["retrain", "ft"], "params": {"budget": "matched-steps", "tune": True, "tune_against": "retrain"}},
        "cells": [{"method": "retrain", "seed": 42, "lr": 1e-4, "tuned": False},
                  {"method": "ft", "seed": 42, "lr": 5.56e-5, "tuned": True},
                  {"method": "ft", "seed": 87, "lr": 1.67e-4, "tuned": True}]}
    assert study_title(document).endswith("seeds 42, 87; budget matched-steps; lr tuned on validation (closest to "
                                          "a validation Retrain)")
    assert learning_rates(document)[1:] == ["  FT lr 5.6e-05 (s42), 1.7e-04 (s87), tuned on validation"]
    plain = {**document, "spec": {**document["spec"], "params": {}}}
    assert study_title(plain).endswith("seeds 42, 87")


def test_a_stopped_study_cell_says_how_the_study_goes_on(home):
    """Ctrl-C on a headless study printed "cancelled (session S kept)", and nothing said that the same command
    goes on (it does: the finished cells are read back)."""
    from workbench.execute import kept

    cell = {"name": "study-0123456789ab ft s42", "method": "ft", "params": {}, "requests": 1}
    assert kept(cell, "20261208-000000-abcd") == ("session 20261208-000000-abcd kept; the same `study` command again "
                                                  "reads the finished cells back and runs the rest")
    assert kept({**cell, "name": "my run"}, "20261208-000000-abcd") == "session 20261208-000000-abcd kept"
