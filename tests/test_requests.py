"""The requests protocol on image-text models: K sequential deletion requests for every method that starts
from the model before each request, and the same metrics for the same spec whatever ran before it."""
import json

import pytest

from conftest import ROOT, cli, cli_env, run_in_memory, run_in_process
from engine.data.deletion import select_units
from engine.data.shapes import build_shapes_world
from engine.errors import SpecError
from engine.spec import validate


def spec(method="multidelete", model="clip-tiny", requests=3, **params):
    return validate({"method": method, "model": model, "data": "shapes-tiny", "device": "cpu", "seed": 7,
                     "deletion": {"strategy": "random", "n": 9, "seed": 7}, "requests": requests,
                     "params": {"epochs": 1, **params}})


run = run_in_memory


@pytest.mark.parametrize("method", ["multidelete", "ft", "neggrad", "ga_klr", "npo"])
def test_three_requests_on_clip(home, method):
    document, events = run(spec(method))
    assert [entry["request"] for entry in document["requests"]] == [1, 2, 3]
    assert [entry["units"] for entry in document["requests"]] == [3, 3, 3]
    for entry in document["requests"]:
        assert 0.0 <= entry["metrics"]["df_dr_auc"] <= 1.0 and "r_mean" in entry["metrics"]["test"]
        assert {"df_member_rate", "auc"} <= set(entry["metrics"]["mia"])
    assert document["metrics"] == document["requests"][-1]["metrics"]
    evals = [(e["split"], e.get("request")) for e in events if e["kind"] == "eval" and e["split"] not in ("step", "history")]
    assert evals == [("before", None), ("after", 1), ("after", 2), ("after", 3)]
    assert {e["request"] for e in events if e["kind"] == "step" and e["phase"] == "unlearn"} == {1, 2, 3}
    # Df grows request by request: after request k, Df recall is measured on the 3k units forgotten so far
    df_pairs = [e for e in events if e["kind"] == "eval" and e["split"] == "after"]
    assert len(df_pairs) == 3 and document["deletion"]["units"] == 9
    assert document["seeds"]["run"] == 7 and len(set(document["seeds"]["requests"])) == 3
    # the document names what it forgot by the data's own ids (a random draw was recorded only as its seed)
    train = build_shapes_world("shapes-tiny").train
    chosen = select_units(train, {"strategy": "random", "n": 9, "seed": 7})
    assert sorted(document["df_unit_ids"]) == sorted(train[i].unit_id for i in chosen)


def test_two_requests_on_a_deployed_blip(home, tmp_path):
    # the requests on BLIP's scoring are the point, so the model to unlearn is a deployed one given with --original
    # (a tiny BLIP, untrained: nothing trains before the requests; an original's training is the loop and task loss
    # that the requests' own steps run)
    from engine.data.shapes import build_shapes_world
    from engine.models.registry import tiny_model_dir

    deployed = tiny_model_dir("blip-tiny", build_shapes_world("shapes-tiny"), 7, tmp_path, task="retrieval")
    document, events = run({**spec("multidelete", model="blip-tiny", requests=2), "original": str(deployed)})
    assert document["original"]["model"] == str(deployed)
    assert {e["phase"] for e in events if e["kind"] == "step"} == {"unlearn"}  # no original:* training step
    assert [entry["units"] for entry in document["requests"]] == [5, 4]
    assert all(0.0 <= entry["metrics"]["df_dr_auc"] <= 1.0 for entry in document["requests"])
    # BLIP pairs scored by the ITC cosine by default, recorded; the pair's match is the attacks' one token
    assert document["pair_score"] == "itc" and document["hyperparameters"]["pair_score"] == "auto"
    # its evaluation re-ranked each query's top 16 by ITM (the tiny worlds' k_test), recorded beside the option
    assert document["k_test"] == 16 and document["hyperparameters"]["k_test"] is None
    mia = document["metrics"]["mia"]
    assert {"loss_auc", "zlib_auc", "mink_auc"} <= set(mia) and mia["mink_auc"] == mia["loss_auc"]


def test_retrain_takes_one_request_and_says_so():
    with pytest.raises(SpecError) as raised:
        spec("retrain", requests=2)
    assert raised.value.field == "requests" and "use K=1" in str(raised.value)
    with pytest.raises(SpecError) as raised:
        spec("ft", requests=10)
    assert raised.value.field == "requests" and "larger than the 9 units" in str(raised.value)


def test_same_spec_same_metrics_after_another_method_in_one_process(home):
    first, _ = run(spec("multidelete", requests=1))
    run(spec("npo", requests=1))  # draws from every RNG in between
    run(spec("d2d", requests=1))
    again, _ = run(spec("multidelete", requests=1))
    assert json.dumps(first["metrics"], sort_keys=True) == json.dumps(again["metrics"], sort_keys=True)
    assert json.dumps(first["original_metrics"]) == json.dumps(again["original_metrics"])


def test_same_spec_byte_identical_metrics_across_processes(home):
    import subprocess

    args = ("run", "--method", "multidelete", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "9",
            "--requests", "2", "--epochs", "1", "--seed", "7", "--device", "cpu", "--json")
    # a fresh process and this one (whose RNGs earlier tests have drawn from) at once: whatever the other does,
    # each gives the same bytes
    process = subprocess.Popen(cli(*args), cwd=ROOT, env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    here = run_in_process(home, *args)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0 and here.returncode == 0, (err[-2000:], here.stderr[-2000:])
    documents = [json.loads(out), json.loads(here.stdout)]
    assert len(documents[0]["requests"]) == 2
    assert json.dumps(documents[0]["metrics"]) == json.dumps(documents[1]["metrics"])
    assert json.dumps(documents[0]["requests"][0]["metrics"]) == json.dumps(documents[1]["requests"][0]["metrics"])


class FakeClock:
    """Time that moves only when told: each training step costs 0.5 s, each evaluation 100 s."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_budget_stops_at_the_first_step_past_it_and_leaves_evaluation_out():
    import math

    import torch

    from engine.loop import LoopConfig, run_loop
    from engine.methods.base import Method

    clock = FakeClock()

    class Toy:  # an adapter: one trainable weight
        model = torch.nn.Linear(2, 1)
        device = torch.device("cpu")

        def parameter_groups(self):
            return {"all": list(self.model.parameters())}

    class Rows:  # a set the loop draws batches from
        def __len__(self):
            return 8

        def batch(self, indices, device):
            return {"x": torch.ones(len(indices), 2)}

    class Descend(Method):
        uses_forget = True

        def losses(self, forget, retain):
            clock.now += 0.5
            return {"total": self.model.model(forget["x"]).pow(2).mean()}

    def evaluate(step):
        clock.now += 100.0
        return False

    events = []
    config = LoopConfig(lr=0.1, epochs=1, iterates="forget", forget_batch_size=4, eval_every=1,
                        budget_seconds=2.2, clock=clock)
    result = run_loop(Descend({}, Toy()), Rows(), None, config, lambda kind, **f: events.append(f), lambda: False,
                      evaluate)
    # 1 epoch would be 2 steps; the budget gives 5: 2.0 s after step 4 < 2.2 <= 2.5 s after step 5
    assert result.steps == 5 and result.seconds == pytest.approx(2.5)
    # the cosine schedule runs over the seconds: after step k, lr = 0.1 * (1 + cos(pi * min(0.5 k / 2.2, 1))) / 2
    expected = [0.05 * (1 + math.cos(math.pi * min(0.5 * k / 2.2, 1.0))) for k in range(1, 6)]
    assert [e["lr"] for e in events] == pytest.approx(expected)
    assert not any("of" in e for e in events)  # a time budget plans no step count
    events.clear()
    planned = LoopConfig(lr=0.1, epochs=3, iterates="forget", forget_batch_size=4, clock=clock)
    run_loop(Descend({}, Toy()), Rows(), None, planned, lambda kind, **f: events.append(f), lambda: False, None)
    assert [(e["step"], e["of"]) for e in events] == [(k, 6) for k in range(1, 7)]  # 3 epochs of 2 steps


def test_matched_time_reads_multideletes_seconds_from_its_session_of_the_same_protocol(tmp_path, monkeypatch):
    from engine.protocols.budget import time_budget
    from sessions.store import SessionStore

    home = tmp_path  # its own home: no MultiDelete session of this protocol from another test
    monkeypatch.setenv("MMUL_HOME", str(home))
    timed = spec("npo", budget="matched-time", epochs=None)
    with pytest.raises(SpecError, match="run --method multidelete with the same protocol first"):
        time_budget(timed)
    store = SessionStore(home)
    for method, batch, seconds in (("multidelete", 16, [1.5, 2.0, 2.5]), ("multidelete", 8, [9.0, 9.0, 9.0]),
                                   ("npo", 16, [7.0, 7.0, 7.0])):  # another batch size, another method: not read
        writer = store.create(spec(method, epochs=None, batch_size=batch))
        writer.finish("finished", summary={"requests": [{"seconds": s} for s in seconds]})
        if method == "multidelete" and batch == 16:
            source = writer.session_id
    budget = time_budget(timed, store)
    assert budget == {"seconds": [1.5, 2.0, 2.5], "source": f"multidelete session {source}"}
    assert time_budget(spec("npo", budget="matched-time", budget_seconds=3.0, epochs=None)) == {
        "seconds": [3.0, 3.0, 3.0], "source": "--budget-seconds"}
    assert time_budget(spec("multidelete", budget="matched-time", epochs=None)) is None  # it is the reference
    with pytest.raises(SpecError, match="--budget-seconds applies to --budget matched-time"):
        spec("npo", budget_seconds=3.0)
