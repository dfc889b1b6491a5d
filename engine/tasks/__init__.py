"""Tasks: what a batch is, the per-example scores, the original model's training and the evaluation of
one task type, for any model family that serves it (engine/spec/catalog.py `TASKS` and `FAMILIES`).

A task object is made per run by `task_for(spec, ...)` and offers the protocol (engine/protocols/) one
shape whatever the task:
- `load(source, device)` an adapter serving the task; `prepare(model)` encodes the data with its processors;
- `forget_units()` the deletion set as an ordered list of units (images, people), split into requests;
- `original_recipe()` / `train_original(model, emit, should_stop)` the original model f;
- `encode(model, units, unimodal)` the forget set of a request, `retain_set(model, forget_units, unimodal)` Dr;
- `evaluate(model, forgotten)` flat metrics; `entry(metrics)` their reported form; `unlearn_defaults()`;
- `result_fields()` what the task adds to the result document; `train_size` (n for Descent-to-Delete).
"""
from __future__ import annotations

import importlib

from engine.spec import DATA_FORMATS, PEOPLE_WORLDS, TASKS, WORLDS


def task_name(data: str) -> str:
    """The task a data reference's records serve."""
    for table in (WORLDS, PEOPLE_WORLDS):
        if data in table:
            return table[data].kind
    return DATA_FORMATS[data.partition(":")[0]].kind


def task_for(spec: dict, emit, should_stop, cache):
    module, _, attribute = TASKS[task_name(spec["data"])].target.partition(":")
    return getattr(importlib.import_module(module), attribute)(spec, emit, should_stop, cache)
