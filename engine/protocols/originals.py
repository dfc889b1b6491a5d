"""The original model f, trained once and cached, and the pieces every protocol shares with it: the
device, atomic checkpoint writes, and plain training (task loss on a set) through the one loop.

The original is the starting weights (a registered tiny model, a checkpoint directory, a hub id) trained
with the task's recipe, cached under $MMUL_HOME/cache/originals keyed by model, data, seed and recipe, and
never modified afterwards: every run writes its result to a new directory under $MMUL_HOME/cache/runs/.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from engine.errors import SpecError
from engine.seeding import derive_seed, seed_everything


def resolve_device(requested: str):
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError(f"--device {requested} asked for, but this machine has no CUDA device; use --device cpu",
                        field="device")
    return torch.device(requested)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")[:60]


def original_key(model: str, data_name: str, seed: int, recipe: dict) -> str:
    digest = hashlib.sha1(json.dumps([model, data_name, seed, recipe], sort_keys=True).encode()).hexdigest()[:10]
    return f"{slug(model)}-{slug(data_name)}-seed{seed}-{digest}"


def save_atomically(adapter, directory: Path) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        adapter.save(staging)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class Trainer:
    """Plain training (the task loss on one set) for the original's phases, through the one loop."""

    def __init__(self, seed: int, emit, should_stop):
        self.seed, self.emit, self.should_stop = seed, emit, should_stop

    def __call__(self, model, dataset, *, lr: float, epochs: int, batch_size: int, phase: str,
                 update: str | None = None, weight_decay: float = 0.05):
        from engine.loop import LoopConfig, run_loop
        from engine.methods.finetune import FineTune

        seed_everything(self.seed, phase)
        self.emit("phase", name=phase)
        model.begin_update({"update": update} if update else {})
        config = LoopConfig(lr=lr, epochs=epochs, iterates="retain", retain_batch_size=batch_size,
                            weight_decay=weight_decay, seed=derive_seed(self.seed, phase, "batches"), phase=phase)
        result = run_loop(FineTune({}, model), None, dataset, config, self.emit, self.should_stop)
        model.end_update()
        return result


def original_dir(task, spec: dict, device, emit, should_stop, cache: Path) -> Path:
    """The cached original for this model, data, seed and recipe; trained (and cached) when missing."""
    directory = cache / "originals" / original_key(spec["model"], task.data_name, spec["seed"], task.original_recipe())
    if (directory / "config.json").exists():
        emit("log", level="info", message=f"reusing the cached original model {directory}")
        return directory
    started = time.perf_counter()
    seed_everything(spec["seed"], "original")
    model = task.load(spec["model"], device)
    task.train_original(model, Trainer(spec["seed"], emit, should_stop))
    try:
        save_atomically(model, directory)
    except OSError:
        if not (directory / "config.json").exists():  # another run cached the same original first: use it
            raise
    emit("log", level="info", message=f"original model trained in {time.perf_counter() - started:.1f}s, saved to {directory}")
    return directory
