"""`--tune`: pick a method's lr and epochs on a validation deletion set, scored on the validation split.

The grid: lr in {lr/3, lr, 3 lr} (lr = the model's unlearning rate) x epochs in TUNE_EPOCHS; under a
matched budget the budget sets the steps, so only lr is tuned. Each grid point runs the same protocol
(requests, batch sizes, every other parameter) from the same cached original, on
- a validation deletion set: as many training units as the reported Df, drawn by another seed among the
  units outside it (disjoint from the reported Df),
- the world's validation split standing in for its test split (galleries, test metrics, the MIA's
  held-out half), so the reported test split is never read while tuning.
Two criteria, the one used named in the record (`against`, `criterion`):
- `auc` (a run's default): the guardrails' (`--keep best`, engine/protocols/guard.py): the highest
  validation Df/Dr AUC (or the closest to --target-auc) among the points whose validation test headline
  (r_mean, accuracy) stays within --keep-tolerance points of the original's on the validation split; when
  none does, the highest validation headline.
- `retrain` (what `study --tune` asks when Retrain is among its methods, so that tuning aims where the
  study ranks): a validation Retrain (the original's recipe on the training units outside the validation
  deletion set, scored on the same validation task) is trained once per protocol and seed and cached
  (`$MMUL_HOME/cache/tune-retrain`); the chosen point has the validation Df/Dr AUC closest to Retrain's
  among the points whose validation headline is within --keep-tolerance points of Retrain's; when none
  is, the point whose headline is closest to Retrain's.
Ties go to the earlier point (smaller lr, fewer epochs). A choice on an edge of the grid (the smallest or
largest lr, the most epochs) extends the grid once past that edge by the grid's own ratio (lr/9 or 9 lr;
9 epochs) at the chosen other coordinate, and the choice is made again over every point; the record lists
the added points (`extended`) and the grid marks them. Each point is one `log` line in the session; the
result is `tuned` in the run's document.
"""
from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path
from typing import Callable

from engine.cache import producing, publish, recorded_fingerprint, slug
from engine.data.deletion import select_units
from engine.data.fingerprint import digest
from engine.errors import SpecError
from engine.protocols.guard import Guard
from engine.spec.guards import as_validation, validation_name
from engine.protocols.originals import original_fingerprint
from engine.seeding import derive_seed
from engine.spec import COMMON_PARAMS, TASKS
from engine.spec.params import COMPILE, MAX_EPOCHS
from engine.tasks import task_for

TUNE_LR_FACTORS = (1 / 3, 1.0, 3.0)
TUNE_EPOCHS = (1, 3)
QUIET = {"step", "eval", "phase", "artifact"}  # a grid point's own events stay out of the session
RETRAIN_RESULT = "validation-retrain.json"


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
    task.with_validation_as_test()

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
    """Run the grid on validation data; returns {"lr", "epochs", "against", "criterion", "grid": [...], ...}.
    ``run_point(point, emit, task, original_metrics)`` runs one grid point's spec on the validation task and
    returns its result document (the caller's own protocol: this module runs none itself); with
    ``tune_against`` retrain it runs the validation Retrain too."""

    matched = spec["params"]["budget"] != "default"
    against_retrain = spec["params"].get("tune_against") == "retrain"
    points: list[dict] = []
    state: dict = {"original": None, "headline": None, "task": None}

    def quiet(kind: str, **fields) -> None:
        if kind not in QUIET:
            emit(kind, **fields)

    def run(lr: float, epochs: int | None, extension: str | None = None) -> None:
        point = {**spec, "params": {**spec["params"], "tune": False, "lr": lr, "epochs": epochs,
                                    "keep": "last", "stop_if": None}}
        point["params"].pop("tune_against", None)
        task = state["task"] = validation_task(point, quiet, should_stop, cache)
        document = run_point(point, quiet, task, state["original"])
        shutil.rmtree(document["checkpoint"], ignore_errors=True)
        state["original"] = state["original"] or flat(document["original_metrics"])
        metrics = flat(document["metrics"])
        headline = state["headline"] = state["headline"] or TASKS[task.name].test_metric
        points.append({"lr": lr, "epochs": epochs, "steps": document["steps"],  # epochs None: the budget's steps
                       "val.df_dr_auc": metrics.get("df_dr_auc"), validation_name(headline): metrics.get(headline),
                       **({"extension": extension} if extension else {})})
        budget = f"epochs {epochs}" if epochs is not None else f"the matched budget's {document['steps']} steps"
        emit("log", level="info", message=f"tune: lr {lr:.3g}, {budget}: validation Df/Dr AUC "
             f"{fmt(metrics.get('df_dr_auc'))}, {validation_name(headline)} {fmt(metrics.get(headline))}"
             + (f" ({extension})" if extension else ""))

    emit("phase", name="tune")
    reference = None
    if against_retrain:
        reference = validation_retrain(spec, quiet, should_stop, cache, run_point, state)
        emit("log", level="info", message=f"tune: validation Retrain: Df/Dr AUC {fmt(reference['val.df_dr_auc'])}, "
             f"{validation_name(reference['headline'])} {fmt(reference['headline_value'])}"
             + (" (cached)" if reference["cached"] else ""))
    for lr, epochs in grid(base_lr, matched):
        run(lr, epochs)
    task, headline, original = state["task"], state["headline"], state["original"]
    guard = Guard(spec["params"], task.name, as_validation(original), emit)

    def pick() -> dict:
        if reference is not None:
            return choose_closest(points, reference, headline, guard.tolerance)
        return choose(points, guard, headline)

    chosen = pick()
    extended = []
    for lr, epochs, edge in past_edges(points, chosen):
        run(lr, epochs, f"past the {edge}")
        extended.append({"lr": lr, "epochs": epochs, "past": edge})
    if extended:
        chosen = pick()
    epochs = "the matched budget's steps" if chosen['epochs'] is None else f"epochs {chosen['epochs']}"
    emit("log", level="info", message=f"tune: chose lr {chosen['lr']:.3g} and {epochs}")
    name = validation_name(headline)
    if reference is not None:
        criterion = (f"validation Df/Dr AUC closest to the validation Retrain's ({fmt(reference['val.df_dr_auc'])}) "
                     f"among grid points whose {name} is within --keep-tolerance ({guard.tolerance:g}) "
                     f"points of Retrain's ({fmt(reference['headline_value'])}); else the validation headline "
                     "closest to Retrain's (study --tune with Retrain: the study ranks by the same closeness)")
    else:
        criterion = ("highest validation Df/Dr AUC (closest to --target-auc when given) among grid points whose "
                     f"{name} stays within --keep-tolerance ({guard.tolerance:g}) points of the "
                     "original's; else the highest validation headline (no Retrain to aim at)")
    return {"lr": chosen["lr"], "epochs": chosen["epochs"], "grid": points, "headline": headline,
            "against": "retrain" if reference is not None else "auc", "criterion": criterion,
            "extended": extended,
            "validation_original": {"val.df_dr_auc": original.get("df_dr_auc"), name: original.get(headline)},
            **({"validation_retrain": {"val.df_dr_auc": reference["val.df_dr_auc"], name: reference["headline_value"],
                                       "steps": reference["steps"], "cached": reference["cached"]}}
               if reference is not None else {}),
            "deletion": {"units": len(task.deletion), "seed": derive_seed(spec["seed"], "tune")}}


def choose(points: list[dict], guard: Guard, headline: str) -> dict:
    name = validation_name(headline)
    scored = [(guard.distance({"df_dr_auc": p["val.df_dr_auc"], name: p[name]}), k)
              for k, p in enumerate(points) if p["val.df_dr_auc"] is not None]
    qualifying = [(distance, k) for distance, k in scored if distance is not None]
    if qualifying:
        return points[min(qualifying)[1]]
    return points[max(range(len(points)), key=lambda k: (points[k][name] or float("-inf"), -k))]


def choose_closest(points: list[dict], reference: dict, headline: str, tolerance: float) -> dict:
    """The point whose validation Df/Dr AUC is closest to the validation Retrain's among those whose
    validation headline is within ``tolerance`` points of Retrain's; when none is, the point whose headline
    is closest to Retrain's. Ties: the earlier point."""
    name, auc, level = validation_name(headline), reference["val.df_dr_auc"], reference["headline_value"]

    def headline_gap(p: dict) -> float:
        return abs(p[name] - level) if p.get(name) is not None and level is not None else float("inf")

    within = [(abs(p["val.df_dr_auc"] - auc), k) for k, p in enumerate(points)
              if p["val.df_dr_auc"] is not None and auc is not None and headline_gap(p) <= tolerance]
    if within:
        return points[min(within)[1]]
    return points[min(range(len(points)), key=lambda k: (headline_gap(points[k]), k))]


def past_edges(points: list[dict], chosen: dict) -> list[tuple[float, int | None, str]]:
    """The points one grid step past each edge the choice sits on, at the chosen other coordinate: lr past
    the smallest or largest lr (by the ratio of the two outermost), epochs past the most (by their ratio;
    never under 1 or over the catalogue's bound). None when the choice is inside the grid."""
    out = []
    rates = sorted({p["lr"] for p in points})
    if len(rates) > 1 and chosen["lr"] == rates[-1]:
        out.append((rates[-1] * rates[-1] / rates[-2], chosen["epochs"], "largest lr"))
    elif len(rates) > 1 and chosen["lr"] == rates[0]:
        out.append((rates[0] * rates[0] / rates[1], chosen["epochs"], "smallest lr"))
    counts = sorted({p["epochs"] for p in points if p["epochs"] is not None})
    if len(counts) > 1 and chosen["epochs"] == counts[-1]:
        more = round(counts[-1] * counts[-1] / counts[-2])
        if more <= MAX_EPOCHS:
            out.append((chosen["lr"], more, "most epochs"))
    return out


def retrain_spec(spec: dict) -> dict:
    """The validation Retrain's spec: the run's protocol, Retrain's method and the common parameters it
    takes, with nothing of the method's own choosing (no lr, epochs, budget, tuning, guard)."""
    common = {p.name for p in COMMON_PARAMS} | {COMPILE.name}
    params = {name: value for name, value in spec["params"].items() if name in common}
    params.update(lr=None, epochs=None, budget="default", budget_seconds=None, tune=False, keep="last",
                  stop_if=None, target_auc=None)
    return {**spec, "method": "retrain", "requests": 1, "params": params}


def validation_retrain(spec: dict, emit, should_stop, cache, run_point: Callable[..., dict], state: dict) -> dict:
    """Retrain on the validation task ({"val.df_dr_auc", "headline", "headline_value", "steps", "cached"}):
    trained once per protocol and seed, its validation numbers kept under ``<cache>/tune-retrain`` (keyed by
    the original's fingerprint, the Retrain spec and the validation deletion set), so the methods of one
    study seed share it."""
    retrain = retrain_spec(spec)
    task = validation_task(retrain, emit, should_stop, cache)
    units = validation_units(task.world, select_units(task.world.train, spec["deletion"]), spec["seed"])
    # "base": 2: before, a registered tiny base was built for the validation view's world (another tokenizer,
    # engine/tasks/units.py model_world), so the entries cached then are not this Retrain's
    fingerprint = json.loads(json.dumps({"original": original_fingerprint(task, spec), "units": units, "base": 2,
                                         "spec": {k: v for k, v in retrain.items() if k not in ("name", "kind")}},
                                        default=str))
    directory = Path(cache) / "tune-retrain" / f"{slug(spec['model'])}-seed{spec['seed']}-{digest(fingerprint)}"

    def stored() -> dict | None:
        try:
            if recorded_fingerprint(directory) == fingerprint:
                return {**json.loads((directory / RETRAIN_RESULT).read_text(encoding="utf-8")), "cached": True}
        except (OSError, ValueError):
            pass
        return None

    found = stored()
    if found is not None:
        return found
    with producing(directory, should_stop):
        found = stored()
        if found is not None:
            return found
        document = run_point(retrain, emit, task, state["original"])
        shutil.rmtree(document["checkpoint"], ignore_errors=True)
        state["original"] = state["original"] or flat(document["original_metrics"])
        metrics, headline = flat(document["metrics"]), TASKS[task.name].test_metric
        result = {"val.df_dr_auc": metrics.get("df_dr_auc"), "headline": headline,
                  "headline_value": metrics.get(headline), "steps": document["steps"]}
        publish(directory, lambda staging: (staging / RETRAIN_RESULT).write_text(json.dumps(result), encoding="utf-8"),
                fingerprint)
    return {**result, "cached": False}


def flat(entry: dict) -> dict[str, float]:
    from sessions.metric_names import flatten

    return flatten(entry)


def fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"
