"""Guardrails: `--stop-if` rules read before anything runs and firing as a logged event that ends the
unlearning; `--keep best` keeping the best qualifying evaluation's weights, by hand and through a run."""
from __future__ import annotations

import json
import subprocess

import pytest
import torch

from conftest import ROOT, cli, cli_env
from engine import spec as specs
from engine.errors import SpecError
from engine.protocols.guard import Guard
from engine.spec.guards import Rule, parse_rules

RUN = {"method": "neggrad", "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu", "seed": 7,
       "deletion": {"strategy": "random", "n": 9, "seed": 7}}


def test_rules_are_parsed_and_checked_against_the_task():
    assert parse_rules("test.r_mean<10, df_dr_auc>0.9", "retrieval") == (
        Rule("test.r_mean", "<", 10.0), Rule("df_dr_auc", ">", 0.9))
    assert Rule("test.r_mean", "<", 10.0).holds({"test.r_mean": 9.5})
    assert not Rule("test.r_mean", "<", 10.0).holds({"test.r_mean": 10.0})
    assert not Rule("test.r_mean", "<", 10.0).holds({})  # a metric the evaluation lacks never fires
    assert parse_rules("forget.image<0.2", "multiple_choice")[0].metric == "forget.image"
    with pytest.raises(SpecError, match="reports no metric 'test.accuracy'") as error:
        parse_rules("test.accuracy<50", "retrieval")
    assert error.value.field == "stop_if"
    with pytest.raises(SpecError, match="METRIC<VALUE"):
        parse_rules("test.r_mean <= 3", "retrieval")


def test_bad_guards_are_refused_before_anything_runs(home):
    with pytest.raises(SpecError, match="--keep best ranks evaluations by Df/Dr AUC"):
        specs.validate_pulse({"method": "ga", "model": "llava-tiny", "data": "people-tiny", "params": {"keep": "best"}})
    out = subprocess.run(cli("run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "5",
                             "--stop-if", "test.rmean<3"), cwd=ROOT, env=cli_env(home), capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == "" and out.stderr.strip().count("\n") == 0
    assert "reports no metric 'test.rmean'" in out.stderr and "Traceback" not in out.stderr


def _guard(**params):
    logged = []
    guard = Guard({"stop_if": None, "keep": "best", "keep_tolerance": 5.0, "target_auc": None, **params},
                  "retrieval", {"test.r_mean": 50.0, "df_dr_auc": 0.5}, lambda kind, **f: logged.append(f["message"]))
    weight = torch.nn.Parameter(torch.zeros(2))
    guard.begin(1, [weight])
    return guard, weight, logged


def _evaluate(guard, weight, step, value, auc, test):
    with torch.no_grad():
        weight.fill_(value)
    guard.consider(step, {"df_dr_auc": auc, "test.r_mean": test})


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

    guard, weight, logged = _guard()
    _evaluate(guard, weight, 5, 7.0, auc=0.9, test=1.0)      # nothing qualifies: the last weights stay
    assert guard.restore(last_step=5) is None and weight.data[0] == 7.0 and "the last weights stay" in logged[-1]


def test_stop_if_ends_the_unlearning_with_a_logged_event(home):
    from engine.jobs import run_job

    events = []

    class Writer:
        session_id = None

        @staticmethod
        def emit(kind, **fields):
            events.append((kind, fields))

    normal = specs.validate({**RUN, "requests": 2, "params": {"eval_every": 2, "epochs": 3, "stop_if": "test.r_mean<101"}})
    document = run_job(normal, Writer, lambda: False)
    assert document["stopped_by"] == {"rule": "test.r_mean<101", "value": pytest.approx(document["stopped_by"]["value"]),
                                      "step": 2, "request": 1}
    assert document["steps"] == 2 and len(document["requests"]) == 1  # request 2 never ran
    warnings = [f["message"] for kind, f in events if kind == "log" and f["level"] == "warning"]
    assert any(message.startswith("stop-if test.r_mean<101 held at step 2 (request 1)") for message in warnings)


def test_keep_best_through_the_cli(home):
    out = subprocess.run(cli("run", "--method", "neggrad", "--model", "clip-tiny", "--data", "shapes-tiny",
                             "--delete", "9", "--seed", "7", "--device", "cpu", "--epochs", "2", "--eval-every", "2",
                             "--keep", "best", "--keep-tolerance", "100", "--json"),
                         cwd=ROOT, env=cli_env(home), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    document = json.loads(out.stdout)
    entry = document["requests"][0]
    assert 1 <= entry["kept_step"] <= entry["steps"] and document["hyperparameters"]["keep"] == "best"
    from sessions.store import SessionStore

    events = SessionStore(home).events(document["session"])
    steps = {e["step"]: e["metrics"]["df_dr_auc"] for e in events if e["kind"] == "eval" and e.get("split") == "step"}
    # tolerance 100: every evaluation qualifies, so the kept one has the highest AUC of those logged during the
    # request, or is the last weights (the loop does not log an evaluation of its last step)
    if entry["kept_step"] != entry["steps"]:
        assert steps[entry["kept_step"]] == max(steps.values())
    assert any("keep best: request 1 keeps the weights evaluated at step" in e.get("message", "") for e in events)


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
