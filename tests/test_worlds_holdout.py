"""Every evaluation on a built-in world scores its holdout sets (engine/data/facts.py) as metric blocks next to
test: retrieval ranks them as Df is ranked, classification gives their accuracy."""
from __future__ import annotations

import numpy as np
import torch

from engine.seeding import derive_seed
from engine.spec import validate
from engine.tasks import task_for
from engine.tasks.classification import Scored
from engine.tasks.retrieval import gallery_recall
from engine.tasks.retrieval_scoring import scoring_for


def built_task(tmp_path, model: str, data: str):
    spec = validate({"method": "ft", "model": model, "data": data, "deletion": {"strategy": "random", "n": 6}})
    task = task_for(spec, lambda *a, **k: None, lambda: False, tmp_path / "cache")
    adapter = task.load(model, torch.device("cpu"))  # untrained: enough to score
    task.prepare(adapter)
    return task, adapter, task.forget_units()


def test_retrieval_ranks_the_holdout_sets(tmp_path):
    task, adapter, forgotten = built_task(tmp_path, "clip-tiny", "shapes-tiny")
    metrics = task.evaluate(adapter, forgotten)
    identity = task.world.holdout_identity(forgotten)
    assert identity and task.world.holdout_association(forgotten)
    for name in ("holdout_identity", "holdout_association"):
        assert {f"{name}.{k}" for k in ("txt_r1", "img_r1", "r_mean")} <= set(metrics)
    # the identity block is the identity units' recall in test-sized galleries filled with test units, drawn
    # after test's, Df's and Dr's galleries from the evaluation's gallery generator
    test_units = list(range(task.train.n_units, task.joint.n_units))
    retain = [i for i in range(task.train.n_units) if i not in set(forgotten)]
    galleries = np.random.default_rng(derive_seed(derive_seed(task.spec["seed"], "evaluate"), "galleries"))
    scoring = scoring_for(adapter, task.joint)
    for units, fill in ((test_units, []), (sorted(forgotten), test_units),
                        ([retain[i] for i in task.retain_eval_units(len(retain))], test_units)):
        gallery_recall(scoring, units, fill, len(test_units), galleries)
    expected = gallery_recall(scoring, identity, test_units, len(test_units), galleries)
    assert metrics["holdout_identity.r_mean"] == expected["r_mean"]


def test_classification_scores_the_holdout_sets(tmp_path):
    task, adapter, forgotten = built_task(tmp_path, "gcn-bert-tiny", "graph-tiny")
    metrics = task.evaluate(adapter, forgotten)
    for name in ("holdout_identity", "holdout_association"):
        units = task.world.holdout_sets(forgotten)[name]
        assert units
        assert metrics[f"{name}.accuracy"] == Scored(adapter, task.train.select_units(units)).accuracy()


def test_a_large_holdout_set_is_scored_on_a_seeded_sample():
    from engine.tasks.units import DR_EVAL_UNITS_MAX, UnitTask

    class World:
        def holdout_sets(self, deletion):
            return {"holdout_identity": list(range(1000, 1000 + 2 * DR_EVAL_UNITS_MAX)), "holdout_association": []}

    task = UnitTask.__new__(UnitTask)
    task.world, task.deletion, task.spec = World(), [0], {"seed": 7}
    chosen = task.holdout_units()
    assert set(chosen) == {"holdout_identity"}  # an empty set has no block
    units = chosen["holdout_identity"]
    assert len(units) == DR_EVAL_UNITS_MAX and units == sorted(set(units)) and units == task.holdout_units()["holdout_identity"]
    assert all(1000 <= u < 1000 + 2 * DR_EVAL_UNITS_MAX for u in units)


def test_an_evaluation_of_diverged_weights_fails_in_one_line():
    """A step's loss can be finite while its update leaves nan weights (NegGrad at --lr 10 on shapes-tiny):
    the evaluation then fails the run as a nan loss does, not with sklearn's 'Input contains NaN'."""
    import pytest

    from engine.errors import RunFailed
    from engine.tasks.units import UnitTask

    class Model:
        model = torch.nn.Linear(2, 2)

    UnitTask.check_finite(Model())
    with torch.no_grad():
        Model.model.weight[0, 0] = float("nan")
    with pytest.raises(RunFailed, match="loss became nan after the last update.*lower --lr"):
        UnitTask.check_finite(Model())
