"""Tasks: what a batch is, the per-example scores, the original model's training and the evaluation of
one task type, for any model family that serves it (engine/spec/catalog.py `TASKS` and `FAMILIES`).

A task object is made per run by `task_for(spec, ...)` and offers the protocol (engine/protocols/) one
shape whatever the task:
- `load(source, device)` an adapter serving the task; `prepare(model)` encodes the data with its processors;
- `forget_units()` the deletion set as an ordered list of units (images, people), split into requests;
- `original_recipe()` / `train_original(model, emit, should_stop)` the original model f;
- `encode(model, units, unimodal)` the forget set of a request, `retain_set(model, forget_units, unimodal)` Dr;
  a task whose `TaskInfo.provides` names a capability a method requires takes it as a keyword of `encode`
  (`refusals=True`: each forget row also carries its prompt with a refusal answer, `refusal_*`);
- `evaluate(model, forgotten)` flat metrics; `entry(metrics)` their reported form; `unlearn_defaults()`;
- `result_fields()` what the task adds to the result document; `train_size` (n for Descent-to-Delete).
Retrieval and classification share the plumbing over units with texts (`units.py`: an image, an image pair
or a graph with all its texts); multiple-choice QA is over people.
"""
from __future__ import annotations

import importlib

from engine.spec import TASKS, data_kind


def task_name(data: str) -> str:
    """The task a data reference's records serve by default."""
    return data_kind(data)


def task_for(spec: dict, emit, should_stop, cache):
    # a run spec names its task (data serving several tasks, like `graph`, take `run --task`)
    module, _, attribute = TASKS[spec.get("task") or task_name(spec["data"])].target.partition(":")
    return getattr(importlib.import_module(module), attribute)(spec, emit, should_stop, cache)
