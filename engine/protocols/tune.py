"""`--tune`: pick a method's lr and epochs on a validation deletion set, scored on the validation split.

The grid: lr in {lr/3, lr, 3 lr} (lr = the model's unlearning rate) x epochs in TUNE_EPOCHS; under a
matched budget the budget sets the steps, so only lr is tuned. Each grid point runs the same protocol
(requests, batch sizes, every other parameter) from the same cached original, on
- a validation deletion set: as many training units as the reported Df, drawn by another seed among the
  units outside it (disjoint from the reported Df),
- the world's validation split standing in for its test split (galleries, test metrics, the MIA's
  held-out half), so the reported test split is never read while tuning.
The criterion is the guardrails' (`--keep best`, engine/protocols/guard.py): the highest validation Df/Dr
AUC (or the closest to --target-auc) among the points whose validation test headline (r_mean, accuracy)
stays within --keep-tolerance points of the original's on the validation split; when none does, the
highest validation headline. Ties go to the earlier point (smaller lr, fewer epochs). Each point is one
`log` line in the session; the result is `tuned` in the run's document.
"""
from __future__ import annotations

import dataclasses
import random
import shutil
from typing import Callable

from engine.data.deletion import select_units
from engine.errors import SpecError
from engine.protocols.guard import Guard
from engine.seeding import derive_seed
from engine.spec import TASKS
from engine.tasks import task_for

TUNE_LR_FACTORS = (1 / 3, 1.0, 3.0)
TUNE_EPOCHS = (1, 3)
QUIET = {"step", "eval", "phase", "artifact"}  # a grid point's own events stay out of the session


def validation_units(world, reported: list[int], seed: int) -> list[int]:
    """As many training units as the reported Df, drawn by another seed among those outside it."""
    outside = sorted(set(range(len(world.train))) - set(reported))
    return sorted(random.Random(derive_seed(seed, "tune")).sample(outside, min(len(reported), len(outside))))


def validation_task(spec: dict, emit, should_stop, cache):
    """The run's task with the world's validation split in place of its test split and the validation
    deletion set in place of the reported one."""
    task = task_for(spec, emit, should_stop, cache)
    world = getattr(task, "world", None)
    if not dataclasses.is_dataclass(world) or not getattr(world, "val", None):
        raise SpecError(f"--tune needs data with a validation split; {spec['data']} has none", field="tune")
    units = validation_units(world, select_units(world.train, spec["deletion"]), spec["seed"])
    task.world = dataclasses.replace(world, test=world.val)

    def forget_units() -> list[int]:
        task.deletion = units
        emit("log", level="info", message=f"tune: validation deletion set of {len(units)} units, disjoint from Df")
        return units

    task.forget_units = forget_units
    return task


def grid(lr: float, matched_budget: bool) -> list[tuple[float, int | None]]:
    epochs = (None,) if matched_budget else TUNE_EPOCHS
    return [(lr * factor, count) for factor in TUNE_LR_FACTORS for count in epochs]


def tune(spec: dict, base_lr: float, emit, should_stop, cache, run_point: Callable[..., dict]) -> dict:
    """Run the grid on validation data; returns {"lr", "epochs", "criterion", "grid": [...], ...}.
    ``run_point(point, emit, task, original_metrics)`` runs one grid point's spec on the validation task and
    returns its result document (the caller's own protocol: this module runs none itself)."""

    matched = spec["params"]["budget"] != "default"
    points, original, headline = [], None, None

    def quiet(kind: str, **fields) -> None:
        if kind not in QUIET:
            emit(kind, **fields)

    emit("phase", name="tune")
    for lr, epochs in grid(base_lr, matched):
        point = {**spec, "params": {**spec["params"], "tune": False, "lr": lr, "epochs": epochs,
                                    "keep": "last", "stop_if": None}}
        task = validation_task(point, quiet, should_stop, cache)
        document = run_point(point, quiet, task, original)
        shutil.rmtree(document["checkpoint"], ignore_errors=True)
        original = original or flat(document["original_metrics"])
        metrics = flat(document["metrics"])
        headline = headline or TASKS[task.name].test_metric
        points.append({"lr": lr, "epochs": epochs, "steps": document["steps"],  # epochs None: the budget's steps
                       "val.df_dr_auc": metrics.get("df_dr_auc"), validation_name(headline): metrics.get(headline)})
        emit("log", level="info", message=f"tune: lr {lr:.3g} epochs {points[-1]['epochs']}: validation Df/Dr AUC "
             f"{fmt(metrics.get('df_dr_auc'))}, {validation_name(headline)} {fmt(metrics.get(headline))}")
    guard = Guard(spec["params"], task.name, original, emit)
    chosen = choose(points, guard, headline)
    epochs = "the matched budget's steps" if chosen['epochs'] is None else f"epochs {chosen['epochs']}"
    emit("log", level="info", message=f"tune: chose lr {chosen['lr']:.3g} and {epochs}")
    return {"lr": chosen["lr"], "epochs": chosen["epochs"], "grid": points, "headline": headline,
            "validation_original": {"val.df_dr_auc": original.get("df_dr_auc"),
                                    validation_name(headline): original.get(headline)},
            "criterion": "highest validation Df/Dr AUC (closest to --target-auc when given) among grid points whose "
                         f"validation {headline} stays within --keep-tolerance ({guard.tolerance:g}) points of the "
                         "original's; else the highest validation headline",
            "deletion": {"units": len(task.deletion), "seed": derive_seed(spec["seed"], "tune")}}


def choose(points: list[dict], guard: Guard, headline: str) -> dict:
    name = validation_name(headline)
    scored = [(guard.distance({"df_dr_auc": p["val.df_dr_auc"], headline: p[name]}), k)
              for k, p in enumerate(points) if p["val.df_dr_auc"] is not None]
    qualifying = [(distance, k) for distance, k in scored if distance is not None]
    if qualifying:
        return points[min(qualifying)[1]]
    return points[max(range(len(points)), key=lambda k: (points[k][name] or float("-inf"), -k))]


def validation_name(headline: str) -> str:
    """`test.r_mean` measured on the validation split: `val.r_mean`."""
    return "val." + headline.partition(".")[2]


def flat(entry: dict) -> dict[str, float]:
    from sessions.metric_names import flatten

    return flatten(entry)


def fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"
