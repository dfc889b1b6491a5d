"""Deletion requests, one or K in sequence, for every task and family (K = 1 is the single request).

1. The original f (engine/protocols/originals.py): trained once, cached, evaluated with the whole
   deletion set as Df (`before`).
2. The deletion set (the task's units: images with their captions, people) is split into K requests of
   near-equal size, in order; the retain data Dr stays the same throughout (PULSE's protocol).
3. For each request, on the same model: the model before it is the reference (NPO's pi_ref, GA+KLR's and
   MultiDelete's f), the family readies its update (LoRA for LMMs) and folds it in after; the method's
   loss terms drive the one loop; then the task evaluates with Df = the units forgotten so far (`after`,
   with the request number): every unit forgotten so far, or between full evaluations a fixed-size sample
   of them (`--eval-every-requests`), and every request's own forget set re-scored (the history:
   engine/protocols/history.py).
Every phase seeds every RNG from --seed and its own label (engine/seeding.py), so the same spec gives
the same metrics whatever ran before it in the process. Retrain (starts from the initial weights) takes
one request only.
"""
from __future__ import annotations

import importlib
import math
import time
from typing import Callable

from engine.data.deletion import split_requests
from engine.data.fingerprint import data_identity
from engine.devices import resolve_device
from engine.errors import RunFailed, SpecError
from engine.loop import LoopConfig, run_loop
from engine.parallel import is_main
from engine.protocols.budget import time_budget
from engine.protocols import tune as tuning
from engine.protocols.guard import Guard
from engine.protocols.history import EVAL_SAMPLE_DEFAULT, History
from engine.cache import checkpoint_fingerprint
from engine.cost import Cost, reset_peak_memory
from engine.loop import peak_memory_mb
from engine.parallel import current as current_parallel
from engine.parallel import rank_threads
from engine.protocols.originals import original_dir, original_record, run_lineage, save_atomically, trained_original
from engine.protocols.resume import (Cadence, check_original, discard, kept_original, read_point, restore_weights,
                                     save_point)
from engine.seeding import derive_seed, generator, seed_everything
from engine.spec import CAPABILITIES, METHODS, check_method_fits
from engine.spec.catalog import method_variant
from engine.spec.guards import SELECTED_ON, as_validation
from engine.tasks import task_for
from engine.tasks.units import finite_weights
from engine.telemetry import DeviceTelemetry
from sessions.paths import cache_dir


def matched_steps(forget_examples: int, batch_size: int, epochs: int) -> int:
    """The steps MultiDelete takes on a request: its epochs over the request's Df examples in batches of
    --batch-size (as the loop's batch stream counts a pass)."""
    return epochs * math.ceil(forget_examples / max(1, min(batch_size, forget_examples)))


def method_class(name: str):
    module, _, attribute = METHODS[name].target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def run_requests(spec: dict, emit: Callable[..., None], should_stop: Callable[[], bool],
                 session_id: str | None = None, original_metrics: dict | None = None) -> dict:
    """Run a validated spec; returns the result document (`--json`). `original_metrics` (flat) skips
    re-evaluating an original that a caller has just evaluated on the same deletion set (the demo)."""
    import torch

    threads = torch.get_num_threads()
    requests = Requests(spec, emit, should_stop, resolve_device(spec["device"]))
    if requests.device.type == "cpu" and requests.task.cpu_threads:
        torch.set_num_threads(requests.task.cpu_threads)
    reset_peak_memory(requests.device)  # the document's peak is this run's
    try:
        with DeviceTelemetry(requests.device, emit):  # the device event, and on CUDA its samples
            return requests.run(session_id, original_metrics)
    finally:
        torch.set_num_threads(threads)


def prepare_original(spec: dict, emit: Callable[..., None], should_stop: Callable[[], bool]) -> None:
    """Train and cache the run's original model unless it is cached: a --devices N job does this before its
    ranks start, so that they only read it. On the CPU it trains at the thread count each rank will compute
    with (its share of the cores, or the task's own count), which is part of the original's key: trained at
    this process's count, the ranks looked for another key, and one of them trained it inside the process group
    while the other waited for it, for good."""
    import torch

    cache = cache_dir(spec.get("artifacts"))
    device = resolve_device(spec["device"])
    task = task_for(spec, emit, should_stop, cache)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(task.cpu_threads or rank_threads(spec.get("devices", 1)))
    try:
        original_dir(task, spec, device, emit, should_stop, cache)
    finally:
        torch.set_num_threads(threads)


class HeldBack:
    """The run's emit, which holds back the events of a resumed run's setup (the session has the old run's, copied
    when it was created): only warnings and errors go through while `holding`."""

    def __init__(self, emit: Callable[..., None], holding: bool):
        self.emit, self.holding = emit, holding

    def __call__(self, kind: str, **fields) -> None:
        if not self.holding or (kind == "log" and fields.get("level") in ("warning", "error")):
            self.emit(kind, **fields)


class Requests:
    def cost_record(self, cost: Cost) -> dict:
        parallel = current_parallel()
        return cost.record(self.device, parallel.world if parallel else 1, peak_memory_mb(self.device))

    def __init__(self, spec: dict, emit, should_stop, device, task=None):
        self.spec, self.should_stop, self.device = spec, should_stop, device
        self.emit = HeldBack(emit, holding=bool(spec.get("resumes")))
        self.cache = cache_dir(spec.get("artifacts"))
        self.task = task or task_for(spec, self.emit, should_stop, self.cache)  # tuning passes its validation task
        self.info = METHODS[spec["method"]]
        self.cls = method_class(spec["method"])

    def run(self, session_id: str | None, original_metrics: dict | None) -> dict:
        import torch

        spec, task, cls, emit, seed = self.spec, self.task, self.cls, self.emit, self.spec["seed"]
        started = time.perf_counter()
        cost = Cost(started=started)
        timed = time_budget(spec)  # read before anything trains: a missing source is bad input
        if timed is not None:
            emit("log", level="info", message=f"time budget: {', '.join(f'{s:.2f}' for s in timed['seconds'])} s "
                 f"of training per request ({timed['source']})")
        resumes = spec.get("resumes")
        point = read_point(self.cache, resumes["session"], resumes["request"]) if resumes else None
        # on the CPU the thread count is part of the arithmetic (and of the cached original's key): a resume
        # computes at the point's count, whatever this process's, so it goes on with the same original and numbers
        threads_were = torch.get_num_threads()
        if point is not None and self.device.type == "cpu" and point[0]["torch_threads"] != threads_were:
            torch.set_num_threads(point[0]["torch_threads"])
        units = task.forget_units()
        requests = split_requests(units, spec["requests"])
        kept = kept_original(point[0]) if point is not None and not spec.get("original") else None
        original, cost.original_seconds = (kept, 0.0) if kept is not None else trained_original(
            task, spec, self.device, emit, self.should_stop, self.cache)

        emit("phase", name="prepare")
        seed_everything(seed, "prepare")
        retraining = cls.starts_from == "init"
        model = task.load(spec["model"] if retraining else str(original), self.device)
        check_method_fits(self.info, task.name, model.family)  # a hub id's family is known only now
        task.prepare(model)
        history = History(task, requests, emit, seed, spec.get("eval_every_requests", 1),
                          spec.get("eval_sample", EVAL_SAMPLE_DEFAULT))
        seed_everything(seed, "evaluate", 0)
        with cost.evaluating():
            original_model = task.load(str(original), self.device) if retraining else model
            if not finite_weights(original_model):   # it read as "loss became nan after the last update" at step 0
                raise RunFailed(f"the original {original} holds nan or inf weights before anything is unlearned; "
                                "give an original with finite weights (one whose training did not diverge)")
            if original_metrics is None:
                original_metrics = task.evaluate(original_model, units)
        emit("eval", step=0, phase="original", split="before", metrics=original_metrics)
        with cost.evaluating():
            history.score(original_model, 0, 0, original_metrics)
        del original_model
        retain = task.retain_set(model, cls.reads_unimodal) if cls.uses_retain else None
        # what the method requires of the task's forget batches (validated: the task provides it); the preserve
        # sets are whole sets of their own, handed to the method below
        views = {need: True for need in self.info.requires
                 if CAPABILITIES[need][0] == "task" and need != "preserve_sets"}

        defaults = task.unlearn_defaults(retraining)
        params = spec["params"]
        tuned = None
        if point is not None:  # tuned before the point was written: its choice stands
            params, tuned = point[0]["params"], point[0]["tuned"]
        elif params.get("tune"):  # lr and epochs picked on validation data (engine/protocols/tune.py)
            def run_point(point: dict, quiet, validation, original: dict | None) -> dict:
                return Requests(point, quiet, self.should_stop, self.device, task=validation).run(None, original)

            tuned = tuning.tune(spec, params["lr"] or defaults["lr"], emit, self.should_stop, self.cache, run_point)
            params = {**params, "lr": tuned["lr"], "epochs": tuned["epochs"]}
        lr = params["lr"] or defaults["lr"]
        epochs = params["epochs"] or defaults["epochs"] or self.info.epochs
        retain_batch_size = defaults["retain_batch_size"] or params["retain_batch_size"]
        entries, forgotten, total_steps, seconds = [], [], 0, 0.0
        metrics = original_metrics
        # the guardrails judge validation evaluations, never the reported test split (engine/spec/guards.py)
        guard = Guard(params, task.name, {}, emit)
        validation = None
        if guard.active:
            validation = task.validation_view(model)
            seed_everything(seed, "evaluate", 0)
            with cost.evaluating():
                judged_original = (as_validation(validation.evaluate(
                    task.load(str(original), self.device) if retraining else model, units)) if validation
                    else original_metrics)
            guard = Guard(params, task.name, judged_original, emit)

        def judged(step: int, forgotten_now: list, reported: dict, final: bool = False) -> dict:
            """What the guard reads at this evaluation: the validation view's, or on people data the reported one."""
            return guard.judging(step, as_validation(validation.evaluate(model, forgotten_now)) if validation
                                 else reported, final)
        done = 0
        if point is not None:  # go on after the point's request as if the run had never stopped
            state, weights = point
            check_original(state, original, bool(spec.get("original")))
            if state["forgotten"] != [unit for request in requests[:state["request"]] for unit in request]:
                raise SpecError(f"the deletion set is not the one session {resumes['session']}'s resume point "
                                "was written for (did the data change?); run its command again instead", field="resumes")
            restore_weights(task, model, weights)
            done, entries, forgotten, metrics = state["request"], state["entries"], state["forgotten"], state["metrics"]
            total_steps, seconds, guard.judged = state["total_steps"], state["seconds"], state["judged"]
            history.restore(state["history"])
            retrained = cost.original_seconds  # an original gone from the cache trains again (bit for bit) first
            cost.restore(state["cost"])
            cost.original_seconds += retrained
            started = cost.started  # the document's total_seconds counts the time before the stop too
            emit.holding = False
            if retrained:
                emit("log", level="warning", message=f"the original model was not in the cache: it trained again "
                     f"({retrained:.1f} s) before the run went on")
            emit("log", level="info", message=f"resumed session {resumes['session']} after request {done} of "
                 f"{len(requests)}")
            for problem in resumes.get("unusable") or []:
                emit("log", level="warning", message=f"a resume point could not be used, so the run went on from an "
                     f"older one (after request {done}; the requests after it run again): {problem}")
            if state["torch_threads"] != threads_were and self.device.type == "cpu":
                emit("log", level="info", message=f"computing at the resume point's {state['torch_threads']} torch "
                     f"threads (this process had {threads_were}), so that the numbers are those of a run never stopped")
        cadence = Cadence(spec, len(requests))
        data = None  # the data's identity, read at the first point (a real folder's is a walk of its files)
        request_start = cost.snapshot() if done else Cost(started=started)  # the first request's counts from the start
        for number, request in enumerate(requests, start=1):
            if number <= done:
                continue
            seed_everything(seed, "request", number)
            emit("phase", name="unlearn", request=number)
            forget = task.encode(model, request, cls.reads_unimodal, **views) if cls.uses_forget else None
            reference = model.frozen_copy() if cls.needs_original else None
            model.begin_update(params)
            method = cls(params, model, reference, generator(seed, "method", number))
            if "preserve_sets" in self.info.requires:  # MMUnlearner's masks read sets beyond Df and Dr
                method.preserve_sets = task.preserve_sets(model)
            config = LoopConfig(lr=lr, epochs=epochs, iterates=self.info.iterates, forget_batch_size=params["batch_size"],
                                retain_batch_size=retain_batch_size, weight_decay=params["weight_decay"],
                                max_grad_norm=params["max_grad_norm"], eval_every=params["eval_every"],
                                seed=derive_seed(seed, "batches", number), phase="unlearn", request=number)
            if params["budget"] == "matched-steps":
                multidelete = method_class("multidelete")  # its Df, as it would encode it
                config.budget_steps = matched_steps(
                    len(task.encode(model, request, multidelete.reads_unimodal)), params["batch_size"],
                    defaults["epochs"] or METHODS["multidelete"].epochs)
            if timed is not None:
                config.budget_seconds = timed["seconds"][number - 1]
            now_forgotten = forgotten + list(request)
            guard.begin(number, method.trainable_parameters())

            def evaluate(step: int) -> bool:
                step_metrics = task.evaluate(model, now_forgotten)
                emit("eval", step=total_steps + step, phase="unlearn", split="step", request=number, metrics=step_metrics)
                if not guard.active:
                    return False
                judged_metrics = judged(step, now_forgotten, step_metrics)
                guard.consider(step, judged_metrics)
                return guard.check(step, judged_metrics)

            result = run_loop(method, forget, retain, config, emit, self.should_stop, evaluate)
            cost.add_loop(result)
            kept = None
            if guard.keep_best:
                if guard.fired is None:  # the loop does not evaluate its last step: the last weights compete too
                    with cost.evaluating():
                        guard.consider(result.steps, judged(result.steps, now_forgotten, {}))
                kept = guard.restore(result.steps)
            method.after_training(task.train_size, result.steps)
            method_record, resolved, caveats = method.record(), method.resolved(), method.caveats()
            for caveat in caveats:
                emit("log", level="warning", message=f"request {number}: {caveat}" if len(requests) > 1 else caveat)
            model.end_update()
            del reference, method
            total_steps += result.steps
            seconds += result.seconds
            forgotten = now_forgotten
            emit("phase", name="eval", request=number)
            seed_everything(seed, "evaluate", number)
            with cost.evaluating():
                evaluated = history.evaluated(number, forgotten)
                metrics = task.evaluate(model, evaluated)
            # what was scored: a sample that covered every unit forgotten so far is a full evaluation (the entry said
            # "sample" where the stored event, the monitor and replay did not)
            evaluation = "sample" if len(evaluated) < len(forgotten) else "full"
            if guard.active and guard.fired is None:  # the request's final weights (noise and merges included)
                with cost.evaluating():
                    at = kept if kept is not None else result.steps
                    guard.check(at, judged(at, forgotten, metrics, final=True))
            if guard.fired is not None and evaluation == "sample":  # the run ends here: its last evaluation is full
                evaluation, evaluated = "full", forgotten
                seed_everything(seed, "evaluate", number)
                with cost.evaluating():
                    metrics = task.evaluate(model, forgotten)
            emit("eval", step=total_steps, phase="unlearn", split="after", request=number, metrics=metrics,
                 **({"evaluation": "sample"} if evaluation == "sample" else {}))
            with cost.evaluating():
                history.score(model, number, total_steps, metrics)
            request_cost, request_start = cost.since(request_start), cost.snapshot()
            entries.append({"request": number, "steps": result.steps, "seconds": round(result.seconds, 3),
                            "cost": self.cost_record(request_cost),
                            "evaluation": evaluation, "evaluated_units": len(evaluated),
                            **({"kept_step": kept} if kept is not None else {}),
                            **({"method_record": method_record} if method_record else {}),
                            **({"caveats": caveats} if caveats else {}),   # the verdict says them (sessions/verdict.py)
                            **task.request_entry(request, metrics)})
            if guard.fired is not None:
                break  # a collapse rule held: no further request runs
            if session_id is not None and cadence.due(number, len(requests)) and is_main():
                if resumes and cadence.points == 1:  # its first point's event is written by now (a request's phase
                    discard(self.cache, resumes["session"])  # event flushes it): the points it went on from can go
                directory = save_point(model, self.cache, session_id, {
                    "spec": spec, "request": number, "forgotten": forgotten,
                    "entries": entries, "metrics": metrics, "total_steps": total_steps, "seconds": seconds,
                    "history": history.state(), "judged": guard.judged, "params": params, "tuned": tuned,
                    "cost": cost.state(), "torch_threads": torch.get_num_threads(),
                    "original": {"model": str(original), "fingerprint": checkpoint_fingerprint(str(original))},
                    "data": (data := data or data_identity(spec["data"]))})
                cadence.written()
                emit("artifact", name="resume_point", request=number, path=str(directory))
        # per-unit mean Df losses of the final model (tasks over units): a study's forget quality against Retrain
        with cost.evaluating():
            df_unit_scores = task.df_unit_scores(model, forgotten) if hasattr(task, "df_unit_scores") else None

        run_dir = self.cache / "runs" / (session_id or f"{spec['method']}-{int(time.time() * 1000)}")
        if is_main():  # of a --devices N job's ranks, rank 0 alone writes the checkpoint; its resume points stay
            # until the session's finish is on disk (sessions.resuming.drop_points_of_finished): a kill in between
            # must leave a run that can be resumed
            save_atomically(model, run_dir, run_lineage(task, spec, original, retraining))
        emit("artifact", name="checkpoint", path=str(run_dir))
        return {
            "session": session_id,
            "kind": spec.get("kind", "run"),
            "method": spec["method"],
            "variant": method_variant(spec["method"], params), **({"resolved": resolved} if resolved else {}),
            "model": spec["model"],
            "data": spec["data"],
            "task": task.name,
            "device": str(self.device),
            "seed": seed,
            "seeds": {"run": seed, "original": derive_seed(seed, "original"),
                      "requests": [derive_seed(seed, "request", k) for k in range(1, len(requests) + 1)]},
            "seconds": round(seconds, 3),
            "steps": total_steps,
            "total_seconds": round(time.perf_counter() - started, 3),
            **({"resumed": resumes} if resumes else {}),
            "cost": self.cost_record(cost),
            "hyperparameters": {**params, "lr": lr, "epochs": epochs},
            **task.result_fields(forgotten),
            "requests": entries,
            "history": history.document(),
            **({"stopped_by": guard.fired} if guard.fired is not None else {}),
            **({"selected_on": SELECTED_ON, "judged": guard.judged} if guard.active else {}),
            **({"time_budget": timed} if timed is not None else {}),
            **({"tuned": tuned} if tuned is not None else {}),
            "metrics": task.entry(metrics),
            "original_metrics": task.entry(original_metrics),
            **({"df_unit_scores": df_unit_scores} if df_unit_scores is not None else {}),
            "checkpoint": str(run_dir),
            "original_checkpoint": str(original),
            # the base (--model: where an original and Retrain start) and the model unlearned (the original)
            "base": {"model": spec["model"], "fingerprint": checkpoint_fingerprint(spec["model"])},
            "original": {"model": str(original), "fingerprint": checkpoint_fingerprint(str(original)),
                         "given": bool(spec.get("original"))},
            # what the original was made from (data, checkpoint, task, seed, recipe), as its cache key says
            "fingerprints": original_record(original),
        }
