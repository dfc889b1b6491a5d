"""One deletion request on an image-text model: original (trained once, cached), method, evaluation.

`--model` names the starting weights (a registered tiny model, a checkpoint directory, a hub id).
The original model f is those weights trained on all training data with the model's recipe, cached
under $MMUL_HOME/cache/originals keyed by world, model, seed and recipe; Retrain trains the same
starting weights on Dr only with the same recipe. The original on disk is never modified: every run
writes its result to a new directory under $MMUL_HOME/cache/runs/.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from engine.errors import SpecError
from engine.spec import METHODS, MODELS, RECIPES
from sessions.paths import cache_dir

DR_EVAL_IMAGES_MAX = 300


def resolve_device(requested: str):
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError(f"--device {requested} asked for, but this machine has no CUDA device; use --device cpu")
    return torch.device(requested)


def recipe_for(model: str) -> dict:
    return dict(RECIPES["tiny" if model in MODELS else "pretrained"])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")[:60]


def original_key(model: str, world_name: str, seed: int, recipe: dict) -> str:
    digest = hashlib.sha1(json.dumps([model, world_name, seed, recipe], sort_keys=True).encode()).hexdigest()[:10]
    return f"{_slug(model)}-{_slug(world_name)}-seed{seed}-{digest}"


def _save_atomically(adapter, directory: Path) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        adapter.save(staging)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def method_class(name: str):
    module, _, attribute = METHODS[name].target.partition(":")
    return getattr(importlib.import_module(module), attribute)


class ImageTextRun:
    """Shared state of one request: the world, the deletion set, the splits, the original model."""

    def __init__(self, spec: dict, emit: Callable[..., None], should_stop: Callable[[], bool]):
        from engine.data.registry import load_world

        self.spec, self.emit, self.should_stop = spec, emit, should_stop
        self.cache = cache_dir()
        self.device = resolve_device(spec["device"])
        self.recipe = recipe_for(spec["model"])
        self.world = load_world(spec["data"])
        from engine.data.deletion import select_units

        self.forget_units = select_units(self.world.train, spec["deletion"])
        emit("log", level="info", message=f"deletion set: {len(self.forget_units)} of {len(self.world.train)} units")

    # --- models -------------------------------------------------------------------------------
    def load(self, source: str):
        from engine.models.registry import load_adapter

        return load_adapter(source, self.world, self.spec["seed"], self.cache).to(self.device)

    def original_dir(self) -> Path:
        from engine.data.pairs import encode_units
        from engine.loop import LoopConfig, run_loop
        from engine.methods.retrain import Retrain

        key = original_key(self.spec["model"], self.world.name, self.spec["seed"], self.recipe)
        directory = self.cache / "originals" / key
        if (directory / "config.json").exists():
            self.emit("log", level="info", message=f"reusing the cached original model {directory}")
            return directory
        self.emit("phase", name="original")
        base = self.load(self.spec["model"])
        pairs = encode_units(self.world.train, base)
        config = LoopConfig(lr=self.recipe["lr"], epochs=self.recipe["epochs"], iterates="retain",
                            retain_batch_size=self.recipe["batch_size"], seed=self.spec["seed"], phase="original")
        result = run_loop(Retrain({}, base), None, pairs, config, self.emit, self.should_stop)
        _save_atomically(base, directory)
        self.emit("log", level="info", message=f"original model trained in {result.seconds:.1f}s, saved to {directory}")
        return directory

    # --- data ----------------------------------------------------------------------------------
    def splits(self, adapter):
        from engine.data.pairs import encode_units
        from engine.metrics.evaluate import Splits

        train = encode_units(self.world.train, adapter)
        forget_set = set(self.forget_units)
        retain_images = [i for i in range(train.n_images) if i not in forget_set]
        eval_images = random.Random(self.spec["seed"]).sample(
            range(len(retain_images)), min(len(retain_images), max(len(self.world.test), 1), DR_EVAL_IMAGES_MAX))
        retain = train.select_images(retain_images)
        return Splits(
            forget=train.select_images(self.forget_units),
            retain=retain,
            retain_eval=retain.select_images(eval_images),
            test=encode_units(self.world.test, adapter),
        )


def run_single(spec: dict, emit: Callable[..., None], should_stop: Callable[[], bool],
               session_id: str | None = None, original_metrics: dict | None = None) -> dict:
    """Run one method on one deletion set; returns the result document (`--json`)."""
    from engine.loop import LoopConfig, run_loop
    from engine.metrics.evaluate import evaluate_image_text, nest

    started = time.perf_counter()
    run = ImageTextRun(spec, emit, should_stop)
    info, params = METHODS[spec["method"]], spec["params"]
    original_dir = run.original_dir()
    cls = method_class(spec["method"])

    emit("phase", name="prepare")
    retraining = cls.starts_from == "init"
    model = run.load(spec["model"] if retraining else str(original_dir))
    splits = run.splits(model)
    if original_metrics is None:
        reference = run.load(str(original_dir)) if retraining else model
        original_metrics = evaluate_image_text(reference, splits, spec["seed"])
    emit("eval", step=0, phase="original", split="before", metrics=original_metrics)
    original = model.frozen_copy() if cls.needs_original else None

    epochs = params["epochs"] or (run.recipe["epochs"] if retraining else info.epochs)
    lr = params["lr"] or (run.recipe["lr"] if retraining else run.recipe["unlearn_lr"])
    config = LoopConfig(
        lr=lr, epochs=epochs, iterates=info.iterates,
        forget_batch_size=params["batch_size"],
        retain_batch_size=run.recipe["batch_size"] if retraining else params["retain_batch_size"],
        weight_decay=params["weight_decay"], max_grad_norm=params["max_grad_norm"],
        eval_every=params["eval_every"], seed=spec["seed"], phase="unlearn",
    )
    method = cls(params, model, original)

    def evaluate(step: int) -> None:
        emit("eval", step=step, phase="unlearn", split="step", metrics=evaluate_image_text(model, splits, spec["seed"]))

    emit("phase", name="unlearn")
    result = run_loop(method, splits.forget, splits.retain, config, emit, should_stop, evaluate)
    method.after_training(len(splits.forget) + len(splits.retain))

    emit("phase", name="eval")
    final = evaluate_image_text(model, splits, spec["seed"])
    emit("eval", step=result.steps, phase="unlearn", split="after", metrics=final)
    run_dir = run.cache / "runs" / (session_id or f"{spec['method']}-{int(time.time() * 1000)}")
    _save_atomically(model, run_dir)
    emit("artifact", name="checkpoint", path=str(run_dir))
    return {
        "session": session_id,
        "method": spec["method"],
        "model": spec["model"],
        "data": spec["data"],
        "device": str(run.device),
        "seconds": round(result.seconds, 3),
        "steps": result.steps,
        "total_seconds": round(time.perf_counter() - started, 3),
        "deletion": {"units": len(splits.forget.unit_ids), "pairs": len(splits.forget)},
        "hyperparameters": {**params, "lr": lr, "epochs": epochs},
        "metrics": nest(final),
        "original_metrics": nest(original_metrics),
        "checkpoint": str(run_dir),
    }
