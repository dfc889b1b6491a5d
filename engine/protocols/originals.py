"""The original model f, trained once and cached, and the pieces every protocol shares with it: the
device, atomic checkpoint writes, and plain training (task loss on a set) through the one loop.

The original is the starting weights (a registered tiny model, a checkpoint directory, a hub id) trained
with the task's recipe, cached under $MMUL_HOME/cache/originals and never modified afterwards: every run
writes its result to a new directory under $MMUL_HOME/cache/runs/. The cache key is made from content
(engine/cache.py): the fingerprint of the data actually read, of the starting checkpoint, the task, the
seed and the recipe, so a same-named data set or a checkpoint edited in place never reuses an original
made from something else. Two runs that need the same original at once train it once.

`--original CKPT` names a deployed model instead (ANCHORS.md section 5): it is the original as it is, nothing is
trained for it, and it is read where it lies (not copied into the cache: a 7B model would double its disk);
the document records its fingerprint. `--model` stays the base that Retrain trains on Dr. Every checkpoint
saved here carries its lineage (engine/spec/lineage.py); a base that already saw the run's data is refused by
validation and the engine's preflight, before a session exists.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from engine.cache import (checkpoint_fingerprint, damaged_weights, entry_matches, producing, publish,
                          recorded_fingerprint, slug, staged)
from engine.data.fingerprint import data_fingerprint, data_identity, digest
from engine.errors import RunFailed
from engine.seeding import derive_seed, seed_everything
from engine.spec import data_kind
from engine.spec.lineage import read_lineage, write_lineage


def original_key(model: str, data_name: str, seed: int, fingerprint: dict) -> str:
    """A readable name (model, data, seed) and the digest of everything the original is made from."""
    return f"{slug(model)}-{slug(data_name)}-seed{seed}-{digest(fingerprint)}"


def original_fingerprint(task, spec: dict) -> dict:
    """What the original is made from: the data read (`task.data_fingerprint`, or the data reference's),
    the starting checkpoint, the task, the seed and the task's recipe, and on the CPU its arithmetic."""
    data = getattr(task, "data_fingerprint", None) or data_fingerprint(spec["data"])
    return {"data": data, "model": checkpoint_fingerprint(spec["model"]), "model_ref": spec["model"],
            "task": task.name, "seed": spec["seed"], "recipe": task.original_recipe(),
            **cpu_arithmetic(spec.get("device", "auto"))}


def cpu_arithmetic(device: str) -> dict:
    """On the CPU, what changes a trained model's float sums beside its recipe: torch's thread count (how a sum is
    split) and its kernels (AVX2 or AVX-512; engine/cpu_kernels.py). An original trained at 1 thread and one at 2
    differ in their last bits, and a run at 2 threads gave other numbers from the one cached at 1 than from one
    it trained itself; each count now has its own original. Nothing on a GPU (its runs are not bit-for-bit)."""
    from engine.devices import resolve_device

    if resolve_device(device).type != "cpu":
        return {}
    import torch

    return {"cpu": {"threads": torch.get_num_threads(), "kernels": torch.backends.cpu.get_cpu_capability()}}


def data_entry(task, spec: dict, excluding: list | None = None) -> dict:
    """A lineage entry: the weights were trained on this data (all of it, or all but `excluding`'s units)."""
    data = getattr(task, "data_fingerprint", None) or data_fingerprint(spec["data"])
    entry = {"data": data, "data_ref": spec["data"], "identity": data_identity(spec["data"]), "task": task.name}
    return {**entry, "excluding": {"units": len(excluding), "digest": digest(sorted(map(str, excluding)))}} \
        if excluding is not None else entry


def run_lineage(task, spec: dict, original: Path, retraining: bool) -> list[dict]:
    """What a run's output checkpoint was trained on: Retrain's, the base's lineage and Dr (the data but its
    deletion set); an unlearned model's, its original's, which saw all of the data (a deployed model given with
    --original saw it by definition, whatever its own files say)."""
    if retraining:
        split = getattr(task, "fact_split", None)  # --granularity fact: Retrain saw all but the facts
        excluded = split.fact_ids if split is not None else list(task.deletion)
        return read_lineage(spec["model"]) + [data_entry(task, spec, excluding=excluded)]
    entry = data_entry(task, spec)
    return [e for e in read_lineage(str(original)) if e.get("data") != entry["data"] or e.get("excluding")] + [entry]


def save_atomically(adapter, directory: Path, lineage: list[dict] | None = None) -> None:
    """Write a run's checkpoint to `directory` all at once (staged beside it, then renamed); a full disk raises
    `DiskFull` naming it, with nothing left behind (engine.cache.staged)."""
    with staged(directory) as staging:
        adapter.save(staging)
        if lineage is not None:
            write_lineage(staging, lineage)
        os.replace(staging, directory)


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
    """The original's directory (`trained_original` without its seconds)."""
    return trained_original(task, spec, device, emit, should_stop, cache)[0]


def trained_original(task, spec: dict, device, emit, should_stop, cache: Path) -> tuple[Path, float]:
    """(directory, seconds this call spent training it: 0 when cached, given or the checkpoint itself). The cached original made from exactly this data, checkpoint, task, seed and recipe; trained (and
    cached) when missing. Another run training the same original is waited for, then its entry is used. A task
    whose original is the starting checkpoint itself (`original_is_checkpoint`: a real LMM's pretrained
    knowledge) gets that checkpoint back: nothing to train, and nothing worth copying; so does a deployed model
    given with --original."""
    if spec.get("original"):
        emit("log", level="info", message=f"the original is the deployed model given with --original, untouched: "
             f"{spec['original']} (--model {spec['model']} is the base Retrain starts from)")
        return Path(spec["original"]), 0.0
    if getattr(task, "original_is_checkpoint", False):
        emit("log", level="info", message=f"the original is the checkpoint itself, untouched: {spec['model']}")
        return Path(spec["model"]), 0.0
    # data serving several tasks (graph) trains one original per task; the default task keeps the plain name
    data_name = task.data_name if task.name == data_kind(spec["data"]) else f"{task.data_name}-{task.name}"
    fingerprint = original_fingerprint(task, spec)
    directory = cache / "originals" / original_key(spec["model"], data_name, spec["seed"], fingerprint)
    emit("log", level="info", message=f"original model key {directory.name} (data fingerprint {fingerprint['data']}, "
         f"checkpoint fingerprint {fingerprint['model']})")
    if entry_matches(directory, fingerprint):
        emit("log", level="info", message=f"reusing the cached original model {directory}")
        return directory, 0.0
    if directory.is_dir() and (damage := damaged_weights(directory)) is not None:
        emit("log", level="warning", message=f"the cached original model {directory} is damaged ({damage}); training "
                                             "it again")
    from engine.parallel import current as current_parallel

    if current_parallel() is not None:  # a rank: training here would wait on the other ranks, and they on it
        raise RunFailed(f"the original prepared for the ranks is not cached under their key {directory.name}; "
                        "run the job again (it prepares the original before the ranks start)")

    def waiting() -> None:  # a warning, so the terminal shows it (headless and --engine alike), not the log alone
        emit("log", level="warning", message=f"waiting for another run that is training the same original model "
             f"({directory.name}); this run goes on once it is cached")

    with producing(directory, should_stop, waiting):
        if entry_matches(directory, fingerprint):
            emit("log", level="info", message=f"reusing the original model another run just cached: {directory}")
            return directory, 0.0
        started = time.perf_counter()
        seed_everything(spec["seed"], "original")
        model = task.load(spec["model"], device)
        task.train_original(model, Trainer(spec["seed"], emit, should_stop))
        lineage = read_lineage(spec["model"]) + [data_entry(task, spec)]

        def write(staging: Path) -> None:
            model.save(staging)
            write_lineage(staging, lineage)

        publish(directory, write, fingerprint)
    seconds = time.perf_counter() - started
    emit("log", level="info", message=f"original model trained in {seconds:.1f}s, saved to {directory}")
    return directory, seconds


def original_record(directory: Path) -> dict | None:
    """What a cached original says it was made from (the result document records it)."""
    return recorded_fingerprint(directory)
