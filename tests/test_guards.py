"""Guardrails: `--stop-if` rules read before anything runs and firing as a logged event that ends the
unlearning; `--keep best` keeping the best qualifying evaluation's weights, by hand and through a run."""
from __future__ import annotations

import json
import subprocess

import pytest
import torch

from conftest import ROOT, cli, cli_env, run_in_process
from engine import spec as specs
from engine.errors import SpecError
from engine.protocols.guard import Guard
from engine.spec.guards import Rule, parse_rules

RUN = {"method": "neggrad", "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu", "seed": 7,
       "deletion": {"strategy": "random", "n": 9, "seed": 7}}


def test_rules_are_parsed_and_checked_against_the_task():
    assert parse_rules("val.r_mean<10, df_dr_auc>0.9", "retrieval") == (
        Rule("val.r_mean", "<", 10.0), Rule("df_dr_auc", ">", 0.9))
    assert Rule("val.r_mean", "<", 10.0).holds({"val.r_mean": 9.5})
    assert not Rule("val.r_mean", "<", 10.0).holds({"val.r_mean": 10.0})
    assert not Rule("val.r_mean", "<", 10.0).holds({})  # a metric the evaluation lacks never fires
    assert parse_rules("forget.image<0.2", "multiple_choice")[0].metric == "forget.image"
    with pytest.raises(SpecError, match="reports no metric 'val.accuracy'") as error:
        parse_rules("val.accuracy<50", "retrieval")
    assert error.value.field == "stop_if"
    with pytest.raises(SpecError, match="METRIC<VALUE"):
        parse_rules("val.r_mean <= 3", "retrieval")


def test_a_rule_outside_its_metrics_range_or_empty_is_refused():
    """`df_dr_auc>95` (percent, where the AUC is a fraction) was taken and could never fire; `--stop-if ''` was
    taken as no rule."""
    with pytest.raises(SpecError, match=r"df_dr_auc is a fraction, 0..1; did you mean df_dr_auc>0.95\?"):
        parse_rules("df_dr_auc>95", "retrieval")
    with pytest.raises(SpecError, match="val.r_mean is in percent, 0..100"):
        parse_rules("val.r_mean<150", "retrieval")
    with pytest.raises(SpecError, match="forget.image is a fraction"):
        parse_rules("forget.image<20", "multiple_choice")
    with pytest.raises(SpecError, match="--stop-if is empty"):
        parse_rules(" ", "retrieval")
    # the example a malformed rule is given is in its metric's units (on people data it read `forget.text<10`, which
    # the next try was refused for)
    with pytest.raises(SpecError, match=r"e\.g\. forget\.text<0\.1\)"):
        parse_rules("forget.image<", "multiple_choice")
    with pytest.raises(SpecError, match=r"e\.g\. val\.r_mean<10\)"):
        parse_rules("val.r_mean<", "retrieval")
    assert parse_rules("val.r_mean<0.5, mia.val_member_rate>0.9", "retrieval")[1].threshold == 0.9


def test_rules_never_read_the_reported_test_split():
    """Choices are made on validation data (ANCHORS.md section 2, Selection): a rule on test is refused with
    the name to use instead, and MMBench (reported, no validation split) is no rule's to read."""
    with pytest.raises(SpecError, match="judged on the validation split, never on test: name val.r_mean"):
        parse_rules("test.r_mean<10", "retrieval")
    with pytest.raises(SpecError, match="name mia.val_member_rate"):
        parse_rules("mia.test_member_rate>0.9", "classification")
    with pytest.raises(SpecError, match="mmbench is a reported set with no validation split"):
        parse_rules("mmbench<0.2", "multiple_choice")


def test_bad_guards_are_refused_before_anything_runs(home):
    with pytest.raises(SpecError, match="--keep best ranks evaluations by Df/Dr AUC"):
        specs.validate_pulse({"method": "ga", "model": "llava-tiny", "data": "people-tiny", "params": {"keep": "best"}})
    out = subprocess.run(cli("run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "5",
                             "--stop-if", "val.rmean<3"), cwd=ROOT, env=cli_env(home), capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == "" and out.stderr.strip().count("\n") == 0
    assert "reports no metric 'val.rmean'" in out.stderr and "Traceback" not in out.stderr


def _guard(**params):
    logged = []
    guard = Guard({"stop_if": None, "keep": "best", "keep_tolerance": 5.0, "target_auc": None, **params},
                  "retrieval", {"val.r_mean": 50.0, "df_dr_auc": 0.5}, lambda kind, **f: logged.append(f["message"]))
    weight = torch.nn.Parameter(torch.zeros(2))
    guard.begin(1, [weight])
    return guard, weight, logged


def _evaluate(guard, weight, step, value, auc, test):
    with torch.no_grad():
        weight.fill_(value)
    guard.consider(step, {"df_dr_auc": auc, "val.r_mean": test})


def test_keep_best_by_hand():
    guard, weight, logged = _guard()
    _evaluate(guard, weight, 10, 1.0, auc=0.60, test=49.0)
    _evaluate(guard, weight, 20, 2.0, auc=0.70, test=46.0)   # the best: highest AUC with test >= 45
    _evaluate(guard, weight, 30, 3.0, auc=0.90, test=20.0)   # more AUC, but collapsed: does not qualify
    _evaluate(guard, weight, 40, 4.0, auc=0.65, test=50.0)
    assert guard.restore(last_step=40) == 20 and torch.equal(weight.data, torch.full((2,), 2.0))
    assert "step 20" in logged[-1]

    guard, weight, _ = _guard(target_auc=0.62)   # closest to a target (e.g. Retrain's AUC)
    for step, (value, auc) in enumerate([(1.0, 0.55), (2.0, 0.61), (3.0, 0.70)], start=1):
        _evaluate(guard, weight, step, value, auc=auc, test=50.0)
    assert guard.restore(last_step=3) == 2 and weight.data[0] == 2.0

    levels = []
    guard = Guard({"stop_if": None, "keep": "best", "keep_tolerance": 5.0, "target_auc": None}, "retrieval",
                  {"val.r_mean": 50.0, "df_dr_auc": 0.5}, lambda kind, **f: levels.append((f["level"], f["message"])))
    for request in (1, 2, 3):
        guard.begin(request, [weight])
        _evaluate(guard, weight, 5, 7.0, auc=0.9, test=1.0)  # nothing qualifies: the last weights stay
        assert guard.restore(last_step=5) is None and weight.data[0] == 7.0
    # the first is a warning; a drifted sequence's later requests count on in info lines (a 100-request run warned 99x)
    assert [level for level, _ in levels] == ["warning", "info", "info"]
    assert "the last weights stay" in levels[0][1] and levels[-1][1].endswith("(3 requests so far)")


def test_stop_if_ends_the_unlearning_with_a_logged_event(home):
    from engine.jobs import run_job

    events = []

    class Writer:
        session_id = None

        @staticmethod
        def emit(kind, **fields):
            events.append((kind, fields))

    normal = specs.validate({**RUN, "requests": 2, "params": {"eval_every": 2, "epochs": 3, "stop_if": "val.r_mean<100"}})
    document = run_job(normal, Writer, lambda: False)
    assert document["stopped_by"] == {"rule": "val.r_mean<100", "value": pytest.approx(document["stopped_by"]["value"]),
                                      "step": 2, "request": 1}
    assert document["selected_on"] == "validation" and document["judged"][0]["step"] == 2
    assert document["steps"] == 2 and len(document["requests"]) == 1  # request 2 never ran
    # Dr is still the units outside the whole deletion set (it said the train size less the part forgotten; a review)
    n = RUN["deletion"]["n"]
    assert document["deletion"]["units"] < n and document["deletion"]["retain_units"] == 160 - n
    warnings = [f["message"] for kind, f in events if kind == "log" and f["level"] == "warning"]
    assert any(message.startswith("stop-if val.r_mean<100 held at step 2 (request 1)") for message in warnings)


def test_keep_best_through_the_cli(home):
    out = run_in_process(home, "run", "--method", "neggrad", "--model", "clip-tiny", "--data", "shapes-tiny",
                         "--delete", "9", "--seed", "7", "--device", "cpu", "--epochs", "2", "--eval-every", "2",
                         "--keep", "best", "--keep-tolerance", "100", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    document = json.loads(out.stdout)
    entry = document["requests"][0]
    assert 1 <= entry["kept_step"] <= entry["steps"] and document["hyperparameters"]["keep"] == "best"
    assert document["selected_on"] == "validation"
    from sessions.store import SessionStore

    events = SessionStore(home).events(document["session"])
    # tolerance 100: every evaluation qualifies, so the kept one has the highest validation AUC of those judged
    # during the request (the last weights included: the loop does not evaluate its last step)
    during = [j for j in document["judged"][:-1]]  # the last entry judges the request's final weights
    assert {"val.r_mean", "df_dr_auc"} <= set(during[0]["metrics"]) and not any(
        name.startswith("test.") for j in document["judged"] for name in j["metrics"])
    best = max(during, key=lambda j: j["metrics"]["df_dr_auc"])
    assert entry["kept_step"] == best["step"]
    # the final weights' entry says so and carries the kept step (it read as a second evaluation of the last step)
    final = document["judged"][-1]
    assert final.get("final") is True and final["step"] == entry["kept_step"]
    assert not any(j.get("final") for j in during)
    assert any("keep best: request 1 keeps the weights evaluated at step" in e.get("message", "") for e in events)


def test_the_choice_reads_no_test_split_score(home, monkeypatch):
    """A spy on the evaluations: every one the guard reads ran on the world's validation split (its `test` is
    the world's `val`), and none of the reported (test-split) evaluations reaches it."""
    from engine.jobs import run_job
    from engine.protocols import guard as guard_module
    from engine.protocols import requests as requests_module
    from engine.spec.guards import as_validation as renaming
    from engine.tasks.retrieval import Retrieval

    class Evaluation(dict):
        split = ""

    evaluate, read, renamed = Retrieval.evaluate, [], []

    def tagged(self, model, forgotten):
        result = Evaluation(evaluate(self, model, forgotten))
        result.split = "val" if self.world.test is self.world.val else "test"
        return result

    def as_validation(metrics):
        renamed.append(metrics.split)
        return renaming(metrics)

    def spying(method):
        def spy(self, step, metrics):
            read.append(metrics)
            return method(self, step, metrics)
        return spy

    monkeypatch.setattr(Retrieval, "evaluate", tagged)
    monkeypatch.setattr(requests_module, "as_validation", as_validation)
    monkeypatch.setattr(guard_module.Guard, "consider", spying(guard_module.Guard.consider))
    monkeypatch.setattr(guard_module.Guard, "check", spying(guard_module.Guard.check))

    class Writer:
        session_id = None

        @staticmethod
        def emit(kind, **fields):
            pass

    normal = specs.validate({**RUN, "params": {"eval_every": 2, "epochs": 2, "keep": "best", "keep_tolerance": 100.0,
                                               "stop_if": "val.r_mean<0"}})
    document = run_job(normal, Writer, lambda: False)
    assert read and renamed and set(renamed) == {"val"}       # every judged evaluation ran on the validation split
    assert not any(isinstance(metrics, Evaluation) for metrics in read)  # no reported evaluation reached the guard
    assert all(not name.startswith("test.") for metrics in read for name in metrics)
    assert document["selected_on"] == "validation" and "kept_step" in document["requests"][0]


def test_matched_steps_budget_gives_every_method_multideletes_steps(home):
    from engine.jobs import run_job
    from engine.protocols.requests import matched_steps

    assert matched_steps(45, 16, 5) == 15 and matched_steps(10, 16, 2) == 2  # a batch never exceeds the set
    with pytest.raises(SpecError, match="both set the steps"):
        specs.validate({**RUN, "params": {"budget": "matched-steps", "epochs": 2}})
    with pytest.raises(SpecError, match="Retrain is the reference"):
        specs.validate({**RUN, "method": "retrain", "params": {"budget": "matched-steps"}})

    class Writer:
        session_id = None

        @staticmethod
        def emit(kind, **fields):
            pass

    steps = {}
    for method in ("multidelete", "neggrad", "ft"):  # iterating Df, Df, Dr: each gets MultiDelete's steps
        normal = specs.validate({**RUN, "method": method, "requests": 2,
                                 "params": {"budget": "matched-steps", "eval_every": 10**6}})  # no mid-run evaluations
        steps[method] = [entry["steps"] for entry in run_job(normal, Writer, lambda: False)["requests"]]
    assert steps["neggrad"] == steps["ft"] == steps["multidelete"] and all(s > 1 for s in steps["multidelete"])
