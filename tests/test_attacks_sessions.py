"""Attacks on a finished clip-tiny / shapes-tiny session, end to end: each a new session linked to its parent,
the same session and seed giving the same recovery (also when the unlearned model must be re-derived from the
parent's spec), the Retrain baseline when the home holds one, and one-line refusals through the real CLI."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli, cli_env, link_shared_originals


@pytest.fixture(scope="module")
def attack_home(tmp_path_factory):
    """A home of its own (the catalog is read whole) holding one finished NegGrad run on 8 units of shapes-tiny."""
    home = tmp_path_factory.mktemp("attack-home")
    link_shared_originals(home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMUL_HOME", str(home))
        from engine.spec import validate
        from workbench.execute import run_session

        spec = validate({"method": "neggrad", "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu", "seed": 42,
                         "deletion": {"strategy": "random", "n": 8, "seed": 42}, "params": {}})
        result = run_session(spec, label="neggrad")
        yield home, result


@pytest.fixture
def parent(attack_home, monkeypatch):
    home, result = attack_home
    monkeypatch.setenv("MMUL_HOME", str(home))
    return result


def attack(kind: str, session: str, **options) -> dict:
    from workbench.cli_attack import attack_session

    return attack_session(kind, session, {"seed": None, **options}, as_json=True)


def test_relearn_links_its_parent_and_repeats_itself(parent, capsys):
    from sessions.attacks import attacks_of
    from sessions.store import SessionStore
    from workbench.cli_sessions import list_lines

    first = attack("relearn", parent["session"], steps=3, on="df-sample", units=2, lr=None, batch_size=8)
    assert json.loads(capsys.readouterr().out)["recovery"] == first["recovery"]  # --json: the attack's document
    assert first["parent"] == parent["session"] and first["attack"]["kind"] == "relearn"
    assert first["record"]["steps"] == 3 and len(first["record"]["units"]) == 2
    # recovery on the headline Df metric, from the document's own numbers
    original, unlearned, attacked = (first[k]["df"] for k in ("original", "unlearned", "attacked"))
    assert first["headline"] == "df.r_mean" and original == parent["original_metrics"]["df"]["r_mean"]
    assert unlearned == parent["metrics"]["df"]["r_mean"]  # as the session stored it
    assert first["recovery"]["points"] == pytest.approx(attacked - unlearned)
    assert first["recovery"]["fraction"] == pytest.approx((attacked - unlearned) / (original - unlearned))
    assert first["retrain"] is None

    # the unlearned checkpoint gone: re-derived from the parent's spec and seed, and the same recovery again (the
    # same model: the relearned model scores the same)
    shutil.rmtree(parent["checkpoint"])
    second = attack("relearn", parent["session"], steps=3, on="df-sample", units=2, lr=None, batch_size=8)
    assert Path(parent["checkpoint"]).is_dir()
    assert second["recovery"] == first["recovery"] and second["record"]["units"] == first["record"]["units"]
    assert second["attacked"] == first["attacked"] and second["session"] != first["session"]

    store = SessionStore()
    linked = attacks_of(store, parent["session"])
    assert [a["id"] for a in linked] == [first["session"], second["session"]]
    assert linked[0]["kind"] == "relearn" and linked[0]["recovery"] == first["recovery"]["fraction"]
    assert store.get(first["session"])["spec"]["parent"] == parent["session"]
    listed = "\n".join(list_lines(store.list(), None))
    assert f"{first['session']}\trelearn on neggrad" in listed and "attack:relearn" in listed


def test_quantize_and_rephrase_with_the_retrain_baseline(parent, tmp_path, capsys):
    from sessions.store import SessionStore

    store = SessionStore()
    parent_meta = store.get(parent["session"])
    # a finished Retrain of the same deletion set (here it holds the original's weights: the lookup and the
    # baseline's arithmetic are what is checked, not Retrain's training)
    writer = store.create({**parent_meta["spec"], "method": "retrain"})
    writer.finish("finished", summary={"session": writer.session_id, "method": "retrain",
                                       "metrics": parent["original_metrics"], "checkpoint": parent["original_checkpoint"]})
    quantized = attack("quantize", parent["session"], bits=4)
    assert quantized["record"]["bits"] == 4 and 0 < quantized["record"]["quantised_weights"] < quantized["record"]["weights"]
    theirs = quantized["retrain"]
    assert theirs["session"] == writer.session_id
    original = quantized["original"]["df"]
    assert theirs["unlearned"]["df"] == pytest.approx(original)  # the original's weights: nothing was forgotten
    assert theirs["recovery"]["fraction"] is None  # so there is no gap to recover
    assert "Retrain under the same attack" in quantized["verdict"]
    # Retrain relearned beside the run: its steps are the baseline's, not the attack session's own (they were counted
    # as a second run of its steps: "20 unlearning steps" for 10)
    from sessions.series import BASELINE_PHASE, unlearning_steps

    relearned = attack("relearn", parent["session"], steps=3, on="df-sample", units=None, lr=None, batch_size=16)
    events = store.events(relearned["session"])
    assert unlearning_steps(events) == relearned["record"]["steps"] == 3
    assert sum(e["kind"] == "step" and e["phase"] == BASELINE_PHASE for e in events) == 3

    from engine.data.deletion import select_units
    from engine.data.registry import load_data

    world = load_data("shapes-tiny")
    first_df = world.train[select_units(world.train, parent_meta["spec"]["deletion"])[0]]  # a Df unit
    paraphrases = tmp_path / "p.tsv"
    paraphrases.write_text(f"{first_df.captions[0]}\tthe picture shows a shape\n")
    rephrased = attack("rephrase", parent["session"], paraphrases=paraphrases)
    assert rephrased["record"]["paraphrases"] == "file" and rephrased["record"]["paraphrased_texts"] == 1
    assert rephrased["original_attacked"]["df"] is not None and rephrased["retrain"]["session"] == writer.session_id
    # a file that names no Df text paraphrases nothing, and the operator is told so (it ran silently before)
    unmatched = tmp_path / "none.tsv"
    unmatched.write_text("a caption no picture has\tanother one\n")
    capsys.readouterr()
    media_only = attack("rephrase", parent["session"], paraphrases=unmatched)
    assert media_only["record"]["paraphrased_texts"] == 0
    assert (f"--paraphrases {unmatched} changed none of the 40 forget texts (an original must equal a text exactly, "
            "and its paraphrase differ from it); only the media were transformed") in capsys.readouterr().err
    store.delete(writer.session_id)


def test_bad_input_is_one_line_and_exit_2(parent, attack_home):
    from sessions.store import SessionStore

    home = attack_home[0]
    store = SessionStore()
    running = store.create({"method": "neggrad", "model": "clip-tiny", "data": "shapes-tiny"})
    damaged = store.create({"method": "neggrad", "model": "clip-tiny", "data": "shapes-tiny"})
    damaged.finish("finished", summary={"metrics": {}})
    session_file = store.session_dir(damaged.session_id) / "session.json"
    session_file.write_bytes(session_file.read_bytes()[: session_file.stat().st_size // 2])  # truncated
    try:
        for args, message in [
            (("attack", "relearn", "nosuchsession"), "no session"),
            (("attack", "quantize", parent["session"], "--bits", "3"), "--bits 3 is not offered; choose 8 or 4"),
            (("attack", "relearn", parent["session"], "--on", "everything"), "choose df-sample or neighbours"),
            (("attack", "rephrase", running.session_id), "is running; an attack needs a finished session"),
            (("attack", "quantize", damaged.session_id), "damaged"),
        ]:
            out = subprocess.run(cli(*args), env=cli_env(home), capture_output=True, text=True, timeout=120)
            assert out.returncode == 2, out.stderr
            assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
            assert out.stdout == ""
    finally:
        running.finish("cancelled")
        for sid in (running.session_id, damaged.session_id):
            store.delete(sid)


def test_an_attack_on_a_study_cell_is_named_without_the_study_id(parent):
    """`quantize on study-65948cbad682 npo s42 e1ed` lost its method and id to the home's 24-character cut."""
    from sessions.store import SessionStore
    from workbench.cli_attack import checked_spec

    meta = SessionStore().get(parent["session"])
    spec = checked_spec("quantize", {**meta, "name": "study-0123456789ab npo s42"}, {"seed": None})
    assert spec["name"] == f"quantize on npo s42 {meta['id'][-4:]}"


def test_an_attacks_points_in_its_parents_detail_are_the_ones_its_own_line_shows():
    """The parent's detail said "-3.7 points" where the attack's own verdict said "54.2 -> 50.4, 3.8 points lower" (a
    review): both are read from the scores as shown now."""
    from sessions.attacks import attack_entry

    summary = {"attack": {"kind": "quantize"}, "headline": "df.r_mean", "original": {"df": 77.3},
               "unlearned": {"df": 54.16}, "attacked": {"df": 50.42},
               "recovery": {"points": 50.42 - 54.16, "fraction": -0.16, "gap": 23.1, "unit": "points"}}
    assert attack_entry({"id": "a", "state": "finished", "summary": summary})["points"] == -3.8
    rephrased = {**summary, "attack": {"kind": "rephrase"}, "original_attacked": {"df": 41.9},
                 "recovery": {"points": 1.0, "fraction": 0.1, "gap": 23.1, "unit": "points", "against": "x"}}
    assert attack_entry({"id": "b", "state": "finished", "summary": rephrased})["points"] == round(23.1 - (41.9 - 50.4), 1)
