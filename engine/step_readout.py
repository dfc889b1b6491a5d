"""How the loop reads its loss terms back: the `step` events and the NaN check (engine/loop.py).

Reading a value computed on a CUDA device waits until the device has finished every step queued before it,
so reading the terms at every step would keep the host from running ahead of the device. There the terms stay
on the device and are read together, one transfer every few steps or second, before an evaluation and at the
end; the NaN check reads them too, so it follows the same cadence (a run that fails was a few steps further).
On the CPU nothing is queued: each step is read at once and checked before its update, as it always was.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch

from engine.errors import RunFailed

READ_EVERY_STEPS = 16  # on CUDA, at most this many steps between reads...
READ_EVERY_SECONDS = 1.0  # ...and this long: the session writer flushes once a second, the monitor stays live


def scalar_terms(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: float(value.detach().float()) for name, value in losses.items()}


class StepReadout:
    def __init__(self, device: torch.device, emit: Callable[..., None], lr: float, phase: str, request: dict,
                 of: int | None = None):
        """`of`: the steps the phase plans (its step events carry it; None under a time budget, which has no plan)."""
        self.deferred = device.type == "cuda"
        self.emit, self.lr, self.phase, self.request = emit, lr, phase, request
        self.planned = {} if of is None else {"of": of}
        self.pending: list[tuple[int, dict, float, float]] = []  # step, terms (tensors or floats), lr, memory
        self.last_read = time.perf_counter()

    def before_update(self, step: int, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | dict[str, float]:
        """The step's terms to record: read and checked now on the CPU, left on the device on CUDA."""
        if self.deferred:
            return {name: value.detach() for name, value in losses.items()}
        terms = scalar_terms(losses)
        self.check(step, terms)
        return terms

    def after_update(self, step: int, terms: dict, lr: float, memory_mb: float) -> None:
        self.pending.append((step, terms, lr, memory_mb))
        if not self.deferred or len(self.pending) >= READ_EVERY_STEPS \
                or time.perf_counter() - self.last_read >= READ_EVERY_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Emit every pending step; on CUDA its terms come back in one transfer, then are checked."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        if self.deferred:
            flat = torch.stack([value.float() for _, terms, _, _ in pending for value in terms.values()]).tolist()
            values = iter(flat)
            pending = [(step, {name: next(values) for name in terms}, lr, memory) for step, terms, lr, memory in pending]
        for step, terms, lr, memory_mb in pending:
            if self.deferred:
                self.check(step, terms)
            self.emit("step", step=step, phase=self.phase, losses=terms, lr=lr, memory_mb=round(memory_mb, 1),
                      **self.planned, **self.request)
        self.last_read = time.perf_counter()

    def check(self, step: int, terms: dict[str, float]) -> None:
        if not math.isfinite(terms["total"]):
            bad = [name for name, value in terms.items() if not math.isfinite(value)]
            raise RunFailed(
                f"loss became {terms['total']} at step {step} (terms: {', '.join(bad)}); "
                f"lower --lr (now {self.lr:g}) or the method's loss weights"
            )
