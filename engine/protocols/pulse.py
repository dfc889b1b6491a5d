"""PULSE on an LMM: sequential deletion requests of people, evaluated after the original and after each one.

1. The original model: the starting weights (`llava-tiny` from random init, or a LLaVA checkpoint) trained
   in the people data's two phases: "pretrain" (general shape questions + people set P) and then
   "finetune" (people set F, plus a replay sample of the pretraining items for the tiny model: a 2-layer
   model trained from scratch otherwise forgets P catastrophically, which a real LMM fine-tuned with
   LoRA on a small set does not). Cached under $MMUL_HOME/cache/originals keyed by data, model, seed and
   recipe, written atomically (the helpers of protocols/single.py); never modified afterwards.
2. The forget people: `--forget N` people of P (`--knowledge pretrained`) or F (`finetuned`), drawn by
   seed; the other people of that set are the retain people (their training items are Dr).
3. `--requests K` splits them into K requests, unlearned one after another on the same model. For each
   request the model before it is the reference (NPO's pi_ref, GA+KLR's and MultiDelete's f); LoRA factors
   (update `llm` / `proj+llm`) are attached for the request and merged into the weights after it.
4. After the original and after every request: four-option accuracy of the forgotten people so far
   (`forget`), of the retain people (`retain`), each split into image+question and text-only, of the
   people of the other phase (`other`), and on the MMBench-format general set (`mmbench`, with its
   retention in percent of the original's).
"""
from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path
from typing import Callable

from engine.errors import SpecError
from engine.protocols.single import _save_atomically, method_class, original_key, resolve_device
from engine.spec import MODELS, PEOPLE_WORLDS
from sessions.paths import cache_dir

WORLD_SEED = 0  # the built-in world is fixed; --seed varies the model init and the forget people

# Original-model recipes. "tiny": llava-tiny learns everything from scratch (measured on people-tiny:
# P 70% image / 100% text, F 100% / 100%, 25 s on one CPU core; every fact is asked 8 times an epoch). "tiny:people": the same for the 40-person
# world, which needs more passes (and more replay, as its pretraining set is mostly shape questions) for the
# vision tower trained from scratch to tell the faces apart. "pretrained": a real LLaVA checkpoint is taught
# the people with LoRA, as MLLMU-Bench fine-tunes on its fictitious profiles.
LMM_RECIPES = {
    "tiny": {
        "pretrain": {"lr": 3e-3, "epochs": 25, "batch_size": 32, "update": "full"},
        "finetune": {"lr": 3e-3, "epochs": 25, "batch_size": 32, "update": "full", "replay": 1.0},
        "unlearn_lr": 1e-3,
        "unlearn_epochs": 5,
    },
    # Measured on `people`: P 70% image / 90% text, F 76% / 95%, MMBench-format set 63.5%; 567 s on one core.
    "tiny:people": {
        "pretrain": {"lr": 3e-3, "epochs": 80, "batch_size": 32, "update": "full"},
        "finetune": {"lr": 2e-3, "epochs": 60, "batch_size": 32, "update": "full", "replay": 2.0},
        # GA on one request of 10 people at 1e-3 takes every person and MMBench to chance; 1e-4 barely moves
        # the forget people; 5e-4 (x 5 epochs, LoRA r16) takes them most of the way (same for every method).
        "unlearn_lr": 5e-4,
        "unlearn_epochs": 5,
    },
    "pretrained": {
        "pretrain": {"lr": 2e-4, "epochs": 3, "batch_size": 8, "update": "llm"},
        "finetune": {"lr": 2e-4, "epochs": 3, "batch_size": 8, "update": "llm", "replay": 0.0},
        "unlearn_lr": 1e-5,
        "unlearn_epochs": 5,
    },
}


def lmm_recipe(model: str, data: str | None = None) -> dict:
    """The recipe for `model` on `data`: a tiny model's may be tuned per built-in world ("tiny:<world>")."""
    import copy

    if model not in MODELS:
        return copy.deepcopy(LMM_RECIPES["pretrained"])
    return copy.deepcopy(LMM_RECIPES.get(f"tiny:{data}", LMM_RECIPES["tiny"]))


class _DataName:
    """What the model registry needs of the data to build a tiny model once: a name and a vocabulary."""

    def __init__(self, name: str, data):
        self.name, self._data = name, data

    def vocabulary(self) -> list[str]:
        return self._data.vocabulary()


def load_people(ref: str):
    if ref in PEOPLE_WORLDS:
        from engine.data.people import build_people_world

        return build_people_world(ref, seed=WORLD_SEED)
    fmt, _, location = ref.partition(":")
    if fmt != "mllmu":
        raise SpecError(f"unknown people data {ref!r}; choose {', '.join(PEOPLE_WORLDS)} or mllmu:DIR")
    from engine.data.mllmu import read_mllmu

    return read_mllmu(location)


def load_general(spec: dict, data):
    if spec.get("general"):
        from engine.data.mmbench import read_mmbench

        return read_mmbench(spec["general"].partition(":")[2], require_answer=True)
    return getattr(data, "general_eval", None)


def data_name(ref: str) -> str:
    if ref in PEOPLE_WORLDS:
        return ref
    return "mllmu-" + hashlib.sha1(str(Path(ref.partition(":")[2]).expanduser().resolve()).encode()).hexdigest()[:8]


class PulseRun:
    def __init__(self, spec: dict, emit: Callable[..., None], should_stop: Callable[[], bool]):
        self.spec, self.emit, self.should_stop = spec, emit, should_stop
        self.cache = cache_dir()
        self.device = resolve_device(spec["device"])
        self.recipe = lmm_recipe(spec["model"], spec["data"])
        self.data = load_people(spec["data"])
        self.general = load_general(spec, self.data)
        self.name = _DataName(data_name(spec["data"]), self.data)
        params = spec["params"]
        self.scoring = params["mc_scoring"] if params["mc_scoring"] != "auto" else (
            "option" if spec["model"] in MODELS else "letter")

    def load(self, source: str):
        from engine.models.registry import load_llava_adapter

        return load_llava_adapter(source, self.name, self.spec["seed"], self.cache).to(self.device)

    # --- the original ---------------------------------------------------------------------------
    def original_dir(self) -> Path:
        key = original_key(self.spec["model"], self.name.name, self.spec["seed"],
                           {k: self.recipe[k] for k in ("pretrain", "finetune")} | {"kind": "pulse"})
        directory = self.cache / "originals" / key
        if (directory / "config.json").exists():
            self.emit("log", level="info", message=f"reusing the cached original model {directory}")
            return directory
        model = self.load(self.spec["model"])
        pretrain_items = self.data.train_items("pretrain")
        started = time.perf_counter()
        for phase in ("pretrain", "finetune"):
            step = self.recipe[phase]
            items = list(self.data.train_items(phase))
            replay = step.get("replay", 0.0)
            if phase == "finetune" and replay and pretrain_items:
                count = min(len(pretrain_items), int(round(replay * len(items))))
                items += random.Random(f"replay:{self.spec['seed']}").sample(pretrain_items, count)
            if not items:
                continue
            self.emit("phase", name=f"original:{phase}")
            self._train(model, items, step, phase=f"original:{phase}")
        _save_atomically(model, directory)
        self.emit("log", level="info",
                  message=f"original model trained in {time.perf_counter() - started:.1f}s, saved to {directory}")
        return directory

    def _train(self, model, items, step: dict, phase: str) -> None:
        from engine.data.people_batches import encode_items
        from engine.loop import LoopConfig, run_loop
        from engine.methods.finetune import FineTune
        from engine.models import lora

        train = encode_items(model, self.data, items)
        lora.attach(model, step["update"])
        config = LoopConfig(lr=step["lr"], epochs=step["epochs"], iterates="retain",
                            retain_batch_size=step["batch_size"], weight_decay=0.0, seed=self.spec["seed"],
                            phase=phase)
        run_loop(FineTune({}, model), None, train, config, self.emit, self.should_stop)
        lora.merge(model)

    # --- evaluation -----------------------------------------------------------------------------
    def questions(self, people: set[str], with_image: bool):
        return [q for q in self.data.eval_questions if q.person_id in people and q.with_image == with_image]

    def evaluate(self, model, groups: dict[str, set[str]], original_mmbench: float | None) -> dict:
        from engine.metrics.multiple_choice import accuracy

        metrics = {}
        for group, people in groups.items():
            for mode, with_image in (("image", True), ("text", False)):
                value = accuracy(model, self.questions(people, with_image), self.scoring) if people else None
                if value is not None:
                    metrics[f"{group}.{mode}"] = value
        if self.general:
            mmbench = accuracy(model, self.general, self.scoring)
            if mmbench is not None:
                metrics["mmbench"] = mmbench
                reference = mmbench if original_mmbench is None else original_mmbench
                if reference:
                    metrics["mmbench_retention"] = 100.0 * mmbench / reference
        return metrics


def _pair(metrics: dict, group: str) -> dict | None:
    if f"{group}.image" not in metrics and f"{group}.text" not in metrics:
        return None
    return {"image": metrics.get(f"{group}.image"), "text": metrics.get(f"{group}.text")}


def _entry(metrics: dict) -> dict:
    entry = {group: _pair(metrics, group) for group in ("forget", "retain", "forget_all", "other")}
    entry = {k: v for k, v in entry.items() if v is not None}
    entry["mmbench"] = metrics.get("mmbench")
    entry["mmbench_retention"] = metrics.get("mmbench_retention")
    return entry


def run_pulse(spec: dict, emit: Callable[..., None], should_stop: Callable[[], bool],
              session_id: str | None = None) -> dict:
    """Run a validated PULSE spec; returns the result document (`--json`)."""
    import torch

    started = time.perf_counter()
    run = PulseRun(spec, emit, should_stop)
    threads = torch.get_num_threads()
    if run.device.type == "cpu" and spec["model"] in MODELS:
        torch.set_num_threads(1)  # a tiny model is op-overhead bound: one thread is fastest, and immune to contention
    try:
        return _run(run, spec, emit, should_stop, session_id, started)
    finally:
        torch.set_num_threads(threads)


def _run(run: PulseRun, spec, emit, should_stop, session_id, started) -> dict:
    from engine.data.deletion import split_requests
    from engine.data.people_batches import encode_items
    from engine.loop import LoopConfig, run_loop
    from engine.models import lora
    from engine.spec import METHODS

    data, params, knowledge = run.data, spec["params"], spec["knowledge"]
    phase = {"pretrained": "pretrain", "finetuned": "finetune"}[knowledge]
    pool = [p.person_id for p in data.people if p.phase == phase]
    count = spec["forget"] if spec["forget"] is not None else max(spec["requests"], (len(pool) + 1) // 2)
    forget_people = data.forget_people(knowledge, count, spec["seed"])
    requests = split_requests(forget_people, spec["requests"])
    retain_people = sorted(set(pool) - set(forget_people))
    other_people = sorted(p.person_id for p in data.people if p.phase != phase)
    emit("log", level="info", message=f"forget {len(forget_people)} {knowledge} people in {len(requests)} "
         f"request(s); {len(retain_people)} retain people; scoring {run.scoring}")

    original_dir = run.original_dir()
    cls = method_class(spec["method"])
    info = METHODS[spec["method"]]
    emit("phase", name="prepare")
    model = run.load(str(original_dir))
    groups = {"forget": set(forget_people), "forget_all": set(forget_people), "retain": set(retain_people),
              "other": set(other_people)}
    original_metrics = run.evaluate(model, groups, None)
    emit("eval", step=0, phase="original", split="request", request=0, metrics=original_metrics)
    original_mmbench = original_metrics.get("mmbench")

    multimodal = spec["method"] == "multidelete"
    by_person: dict[str, list] = {}
    for item in data.person_train:
        by_person.setdefault(item.person_id, []).append(item)
    retain_set = None
    if cls.uses_retain:
        retain_items = [item for pid in retain_people for item in by_person.get(pid, [])]
        if not retain_items:
            raise SpecError(f"no retain people left among the {knowledge} people for {info.title} (it needs Dr); "
                            "choose a smaller --forget N")
        retain_set = encode_items(model, data, retain_items, multimodal=multimodal)

    lr = params["lr"] or run.recipe["unlearn_lr"]
    epochs = params["epochs"] or run.recipe["unlearn_epochs"]
    entries, forgotten, total_steps, unlearn_seconds = [], set(), 0, 0.0
    final_metrics = original_metrics
    for number, people in enumerate(requests, start=1):
        emit("phase", name="unlearn", request=number)
        forget_items = [item for pid in people for item in by_person.get(pid, [])]
        forget_set = encode_items(model, data, forget_items, multimodal=multimodal)
        reference = model.frozen_copy() if cls.needs_original else None
        lora.attach(model, params["update"], r=params["lora_r"], alpha=params["lora_alpha"],
                    dropout=params["lora_dropout"])
        method = cls(params, model, reference)
        config = LoopConfig(lr=lr, epochs=epochs, iterates=info.iterates, forget_batch_size=params["batch_size"],
                            retain_batch_size=params["retain_batch_size"], weight_decay=params["weight_decay"],
                            max_grad_norm=params["max_grad_norm"], eval_every=params["eval_every"],
                            seed=spec["seed"] + number, phase="unlearn", request=number)
        result = run_loop(method, forget_set, retain_set, config, emit, should_stop)
        lora.merge(model)
        del reference, method
        total_steps += result.steps
        unlearn_seconds += result.seconds
        forgotten |= set(people)
        emit("phase", name="eval", request=number)
        groups["forget"] = set(forgotten)
        final_metrics = run.evaluate(model, groups, original_mmbench)
        emit("eval", step=total_steps, phase="unlearn", split="request", request=number, metrics=final_metrics)
        entries.append({"request": number, "people": list(people), "steps": result.steps,
                        "seconds": round(result.seconds, 3), **_entry(final_metrics)})

    run_dir = run.cache / "runs" / (session_id or f"pulse-{spec['method']}-{int(time.time() * 1000)}")
    _save_atomically(model, run_dir)
    emit("artifact", name="checkpoint", path=str(run_dir))
    original_entry = _entry({k: v for k, v in original_metrics.items() if k != "mmbench_retention"})
    original_entry["mmbench_retention"] = 100.0 if original_mmbench else None
    return {
        "session": session_id,
        "kind": "pulse",
        "method": spec["method"],
        "model": spec["model"],
        "data": spec["data"],
        "general": spec.get("general"),
        "knowledge": knowledge,
        "update": params["update"],
        "scoring": run.scoring,
        "device": str(run.device),
        "seconds": round(unlearn_seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
        "steps": total_steps,
        "forget_people": forget_people,
        "retain_people": retain_people,
        "hyperparameters": {**params, "lr": lr, "epochs": epochs},
        "recipe": run.recipe,
        "original": original_entry,
        "requests": entries,
        "metrics": _entry(final_metrics),
        "original_metrics": original_entry,
        "checkpoint": str(run_dir),
        "original_checkpoint": str(original_dir),
    }
