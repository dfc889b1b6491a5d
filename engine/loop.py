"""The one training loop: every method, the original model and Retrain go through `run_loop`.

The loop owns the optimizer (AdamW, weight decay on >=2-D weights only), the cosine schedule,
gradient clipping, bf16 autocast on CUDA, the evaluation cadence, stop requests, NaN and OOM
handling, and the events (`step` with every loss term; evaluation events come from `evaluate`).
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from engine.checkpointing import disable_checkpointing, enable_checkpointing
from engine.compiled import compile_blocks, compile_failures_explained, uncompile
from engine.errors import Cancelled, RunFailed
from engine.parallel import clip_gradients, is_sharded
from engine.parallel import current as current_parallel
from engine.step_readout import StepReadout

MAX_TIMED_STEPS = 10**9  # a time budget ends the loop; this only bounds it


@dataclass
class LoopConfig:
    lr: float
    epochs: int
    iterates: str  # "forget" or "retain": the set whose passes count as epochs
    forget_batch_size: int = 16
    retain_batch_size: int = 64
    weight_decay: float = 0.05
    max_grad_norm: float = 1.0
    eval_every: int = 0  # 0: at each epoch end
    seed: int = 42
    max_steps: int | None = None
    budget_steps: int | None = None  # exactly this many steps, whatever the epochs (--budget matched-steps)
    # --budget matched-time: train until this many training seconds (evaluation excluded) have passed, stopping
    # at the first step boundary past it; the cosine schedule then runs over the seconds, not the steps
    budget_seconds: float | None = None
    clock: Callable[[], float] = time.perf_counter  # injected by tests (a fake clock)
    phase: str = "unlearn"
    request: int | None = None


@dataclass
class LoopResult:
    steps: int
    seconds: float  # training time: evaluation during the loop excluded
    evaluation_seconds: float = 0.0  # the evaluations during the loop
    examples: int = 0  # Df and Dr rows drawn for the steps taken, over every rank


class BatchStream:
    """Endless shuffled batches over a PairSet, reshuffled at each pass."""

    def __init__(self, pairs, batch_size: int, generator: torch.Generator, device, parallel=None):
        self.pairs, self.generator, self.device, self.parallel = pairs, generator, device, parallel
        self.batch_size = min(batch_size, len(pairs))
        self._order, self._cursor = torch.empty(0, dtype=torch.long), 0

    @property
    def steps_per_pass(self) -> int:
        return math.ceil(len(self.pairs) / self.batch_size)

    def next(self) -> dict:
        if self._cursor >= len(self._order):
            self._order, self._cursor = torch.randperm(len(self.pairs), generator=self.generator), 0
        indices = self._order[self._cursor : self._cursor + self.batch_size]
        self._cursor += self.batch_size
        self.last_rows = len(indices)  # the global batch's rows, before a rank takes its share
        if self.parallel is not None:  # every rank drew the same global batch; each trains on its share
            indices = self.parallel.shard(indices)
        # the rows' positions in their set, on the host: a method caches the frozen original's rows by them
        return {**self._placed(indices), "example_index": indices}

    def _placed(self, indices: torch.Tensor) -> dict:
        if torch.device(self.device).type != "cuda":
            return self.pairs.batch(indices, self.device)
        # gathered on the host into pinned memory, then copied without blocking the host
        return {key: value.pin_memory().to(self.device, non_blocking=True) if hasattr(value, "pin_memory")
                else value for key, value in self.pairs.batch(indices, "cpu").items()}


def build_optimizer(parameters, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay = [p for p in parameters if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in parameters if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if any(is_sharded(p) for p in parameters):  # AdamW's foreach kernels take FSDP shards or whole tensors, not both
        groups = [{**group, "params": [p for p in group["params"] if is_sharded(p) == sharded]}
                  for group in groups for sharded in (True, False)]
    # foreach: one kernel per step for all tensors (CUDA's default) on the CPU too: the same weights to the bit
    # (measured on CLIP, BLIP and LLaVA runs), and a tiny CLIP's run 22 s to 17 s, whose many small tensors each
    # paid the per-tensor loop's overhead
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, foreach=True)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: allocated on a CUDA device; on the CPU, the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def shard(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's part of an FSDP (DTensor) parameter or gradient; a plain tensor itself."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


class UpdateCheck:
    """The guard every run passes at its first optimizer step: some gradient reached the trainable weights and
    the step changed at least one of them. Neither holds when gradient checkpointing runs LoRA on frozen inputs
    that never require grad (lora_B stays zero), when a loss is detached from the weights, or when the
    optimizer holds other tensors than the model's; the run fails there, in one line, instead of training
    nothing for hours. A cheap checksum (each weight's float64 sum) is compared; weight decay alone moves
    weights with no gradient, hence the gradient check beside it. Under --devices N it fails only when no rank
    saw a gradient or a change (a rank's FSDP shard may hold only weights the step leaves alone)."""

    def __init__(self, parameters: list, parallel=None):
        self.parameters, self.parallel, self.sums = parameters, parallel, None

    def checksum(self):
        local = [shard(p) for p in self.parameters]
        return torch.stack([p.detach().sum(dtype=torch.float64) for p in local]) if local else torch.zeros(0)

    def before_step(self) -> None:
        self.sums = self.checksum()

    def check_loss(self, total: torch.Tensor) -> None:
        """Before the first backward: a loss that no weight produced (reentrant checkpointing over frozen inputs
        gives one) would fail inside autograd with a traceback; it fails here in one line instead."""
        if not total.requires_grad:
            raise RunFailed(self.no_gradient)

    @property
    def no_gradient(self) -> str:
        return (f"no gradient reached the {len(self.parameters)} trainable weights at the first step: the loss does "
                "not depend on them (with --grad-checkpointing and LoRA the inputs must require grad; a loss "
                "detached from the model); nothing would be unlearned")

    def after_step(self) -> None:
        # an FSDP parameter and its gradient are DTensors: this rank's shard of each is what it holds
        reached = any(p.grad is not None and bool(shard(p.grad).detach().ne(0).any()) for p in self.parameters)
        moved = not torch.equal(self.sums, self.checksum())
        if self.parallel is not None:
            reached, moved = self.parallel.any(reached), self.parallel.any(moved)
        if not reached:
            raise RunFailed(self.no_gradient)
        if not moved:
            raise RunFailed(f"the first optimizer step changed none of the {len(self.parameters)} trainable weights "
                            "although gradients reached them: the optimizer does not update the model's weights "
                            "(or the lr is too small to change them); nothing would be unlearned")


def run_loop(
    method,
    forget,
    retain,
    config: LoopConfig,
    emit: Callable[..., None],
    should_stop: Callable[[], bool] = lambda: False,
    evaluate: Callable[[int], bool | None] | None = None,
) -> LoopResult:
    """Train until the step budget is spent; an `evaluate(step)` that returns True (a guardrail's
    stop rule held) ends the loop there."""
    model = method.model.model
    device = method.model.device
    generator = torch.Generator().manual_seed(config.seed)
    parallel = current_parallel()  # a rank of a --devices N job, or None
    forget_stream = BatchStream(forget, config.forget_batch_size, generator, device, parallel) if method.uses_forget else None
    retain_stream = BatchStream(retain, config.retain_batch_size, generator, device, parallel) if method.uses_retain else None
    driver = forget_stream if config.iterates == "forget" else retain_stream
    if driver is None:  # a method that reads only the other set (e.g. FT iterating Dr) drives with it
        driver = forget_stream or retain_stream
    total_steps = config.epochs * driver.steps_per_pass
    max_steps = getattr(method, "max_steps", None) or config.max_steps
    if max_steps:
        total_steps = min(total_steps, max_steps)
    if config.budget_steps:
        total_steps = config.budget_steps
    if config.budget_seconds:  # a method defined by its step count (Descent-to-Delete's one step) keeps it
        total_steps = getattr(method, "max_steps", None) or MAX_TIMED_STEPS
    clock = config.clock
    trained = [0.0]  # training seconds so far, for a time budget's schedule and stop

    trainable = method.trainable_parameters()
    chosen = {id(p) for p in trainable}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in chosen)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    request = {} if config.request is None else {"request": config.request}
    readout = StepReadout(device, emit, config.lr, config.phase, request,
                          of=None if config.budget_seconds else total_steps)

    def draw() -> tuple[dict | None, dict | None, int]:  # always Df then Dr: the generator's draws keep their order
        forget_batch = forget_stream.next() if forget_stream else None
        retain_batch = retain_stream.next() if retain_stream else None
        return forget_batch, retain_batch, sum(s.last_rows for s in (forget_stream, retain_stream) if s is not None)

    checkpointing = enable_checkpointing(model) if (method.params or {}).get("grad_checkpointing") else 0
    if checkpointing:
        emit("log", level="info", message=f"gradient checkpointing: {checkpointing} layers recompute their "
             "activations in the backward pass")
    model.train()
    started = clock()
    method.before_training(forget if forget_stream else None, retain if retain_stream else None)
    # --strategy fsdp: sharded after the method's look at the whole sets, which reads the plain model
    sharded = parallel.shard_model(model, trainable) if parallel and parallel.strategy == "fsdp" else None
    if sharded is not None:
        held, total = parallel.held
        emit("log", level="info", message=f"fsdp: rank {parallel.rank} holds {held:,} of the model's {total:,} "
             f"parameter values ({held / max(total, 1):.0%}), {len(sharded.blocks)} layers sharded one by one")
    compiled = compile_blocks(model, device) if (method.params or {}).get("compile") else []
    if compiled:
        emit("log", level="info", message=f"compile: {len(compiled)} blocks go through torch.compile; the first "
             "steps compile them")
    optimizer = build_optimizer(sharded.trainable if sharded is not None else trainable, config.lr, config.weight_decay)
    if sharded is not None:
        sharded.optimizer = optimizer  # its state follows the shards when an evaluation takes them off
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * (
            min(trained[0] / config.budget_seconds, 1.0) if config.budget_seconds
            else min(step, total_steps) / max(total_steps, 1))))
    )
    evaluating = 0.0  # the time spent in evaluate() is not training time: seconds leaves it out
    examples = 0
    movement = UpdateCheck(sharded.trainable if sharded is not None else trainable, parallel)
    step = 0
    upcoming = draw()
    for step in range(1, total_steps + 1):
        if parallel.any(should_stop()) if parallel else should_stop():
            readout.flush()
            raise Cancelled(f"stopped before step {step}")
        forget_batch, retain_batch, rows = upcoming
        try:
            with autocast, compile_failures_explained(bool(compiled)):
                if sharded is not None:
                    losses = sharded.losses(functools.partial(method.losses, forget_batch, retain_batch))
                else:
                    losses = method.losses(forget_batch, retain_batch)
            terms = readout.before_update(step, parallel.average_terms(losses) if parallel else losses)
            optimizer.zero_grad(set_to_none=True)
            if step == 1:
                movement.check_loss(losses["total"])
            with compile_failures_explained(bool(compiled)):  # the backward graph compiles at the first backward
                losses["total"].backward()
            if parallel:  # FSDP's reduce-scatter averaged the shards' gradients; the whole scalars are left
                parallel.average_gradients(sharded.whole_trainable if sharded is not None else trainable)
            if config.max_grad_norm > 0 and sharded is not None:  # the shards of now: an evaluation renews them
                clip_gradients(sharded.trainable, config.max_grad_norm)
            elif config.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            if step == 1:  # the first step, at the full lr (> 0): a step that moves nothing is a broken setup
                movement.before_step()
            optimizer.step()
            if step == 1:
                movement.after_step()
            trained[0] = clock() - started - evaluating
            schedule.step()
            # the next step's batches, prepared while the device still runs this one's queued work
            upcoming = draw() if step < total_steps else (None, None, 0)
        except torch.OutOfMemoryError:
            optimizer.zero_grad(set_to_none=True)
            raise RunFailed(
                f"out of memory on {device} at step {step}; lower --batch-size ({config.forget_batch_size}) "
                f"or --retain-batch-size ({config.retain_batch_size})"
            ) from None
        examples += rows
        readout.after_update(step, terms, optimizer.param_groups[0]["lr"], peak_memory_mb(device))
        at_epoch_end = step % driver.steps_per_pass == 0 or step == total_steps
        due = step % config.eval_every == 0 if config.eval_every else at_epoch_end
        out_of_time = config.budget_seconds is not None and trained[0] >= config.budget_seconds
        if evaluate is not None and due and step != total_steps and not out_of_time:
            readout.flush()
            model.eval()
            evaluation_started = clock()
            if sharded is not None:  # evaluation (and a kept best) reads the plain model's full weights
                sharded.gather()
            with compile_failures_explained(bool(compiled)):
                stop = evaluate(step)
            if sharded is not None and not stop:
                sharded.shard()
            evaluating += clock() - evaluation_started
            if stop:
                break
            model.train()
        if out_of_time:
            break
    readout.flush()
    if sharded is not None and sharded.active:
        sharded.gather()
    uncompile(compiled)
    if checkpointing:
        disable_checkpointing(model)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return LoopResult(steps=step, seconds=clock() - started - evaluating, evaluation_seconds=evaluating,
                      examples=examples)
