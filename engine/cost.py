"""What a run cost: the `cost` of every result document and of each of its request entries.

Seconds are split by what they were spent on, so that two runs' figures compare: `original_seconds` training
the original model in this run (0 when it came from the cache or was given with --original, so a warm cache
no longer hides inside the unlearning time), `unlearning_seconds` in the training loop (the method's own look
at the sets before its first step included, evaluations during the loop excluded; `seconds` of the document
is this figure, as before), `evaluation_seconds` evaluating (the original's before, during the loop, after each
request, the guardrails' validation evaluations, the forget-quality scores), and `wall_seconds` the whole
run (loading, encoding, tuning and saving included). `examples_per_second` counts the examples the loop drew
(Df and Dr rows, over every rank) per unlearning second. `peak_memory_mb` is the device's peak: on CUDA
`torch.cuda.max_memory_allocated` since the run started (`memory` = "cuda_max_allocated"), on the CPU the
process's peak resident set (`memory` = "rss"), reset where Linux allows (/proc/self/clear_refs), so each
run in a process (the demo's methods) reports its own peak.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.cpu_kernels import cpu_model


def reset_peak_memory(device) -> None:
    """Start the peak over: CUDA's allocator counter, or on Linux the process's resident high-water mark."""
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS (Linux >= 4.0)
    except OSError:
        pass  # elsewhere the peak is the process's since it started


def memory_measure(device) -> str:
    return "cuda_max_allocated" if device.type == "cuda" else "rss"


def device_name(device) -> str:
    """The device's own name: the GPU's model, or the CPU's (from /proc/cpuinfo where there is one)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return cpu_model() or platform.processor() or "cpu"


@dataclass
class Cost:
    """Seconds, steps and examples accumulated over a run (or one request), turned into `cost` by `record`."""

    original_seconds: float = 0.0
    unlearning_seconds: float = 0.0
    evaluation_seconds: float = 0.0
    steps: int = 0
    examples: int = 0
    started: float = field(default_factory=time.perf_counter)

    @contextmanager
    def evaluating(self):
        """Count the block's seconds as evaluation."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.evaluation_seconds += time.perf_counter() - began

    def snapshot(self) -> "Cost":
        """The figures so far, stamped now: ``since`` turns them into the cost of what follows."""
        return replace(self, started=time.perf_counter())

    def since(self, earlier: "Cost") -> "Cost":
        """What was spent after ``earlier`` (a snapshot, or the run's own start)."""
        return Cost(self.original_seconds - earlier.original_seconds,
                    self.unlearning_seconds - earlier.unlearning_seconds,
                    self.evaluation_seconds - earlier.evaluation_seconds, self.steps - earlier.steps,
                    self.examples - earlier.examples, started=earlier.started)

    def state(self) -> dict:
        """The figures so far, for a resume point (engine/protocols/resume.py)."""
        return {"original_seconds": self.original_seconds, "unlearning_seconds": self.unlearning_seconds,
                "evaluation_seconds": self.evaluation_seconds, "steps": self.steps, "examples": self.examples,
                "wall_seconds": time.perf_counter() - self.started}

    def restore(self, state: dict) -> None:
        """Go on from a resume point's figures: the wall clock counts on from what had passed then."""
        self.original_seconds, self.unlearning_seconds = state["original_seconds"], state["unlearning_seconds"]
        self.evaluation_seconds, self.steps, self.examples = state["evaluation_seconds"], state["steps"], state["examples"]
        self.started = time.perf_counter() - state["wall_seconds"]

    def add_loop(self, result) -> None:
        self.unlearning_seconds += result.seconds
        self.evaluation_seconds += result.evaluation_seconds
        self.steps += result.steps
        self.examples += result.examples

    def record(self, device, devices: int, peak_memory_mb: float) -> dict:
        import torch

        return {"original_seconds": round(self.original_seconds, 3),
                "unlearning_seconds": round(self.unlearning_seconds, 3),
                "evaluation_seconds": round(self.evaluation_seconds, 3),
                "wall_seconds": round(time.perf_counter() - self.started, 3),
                "steps": self.steps, "examples": self.examples,
                "examples_per_second": round(self.examples / self.unlearning_seconds, 3)
                if self.unlearning_seconds > 0 else 0.0,
                "peak_memory_mb": round(peak_memory_mb, 1), "memory": memory_measure(device),
                "device": device_name(device), "device_count": devices, "torch_threads": torch.get_num_threads(),
                "cpu_kernels": torch.backends.cpu.get_cpu_capability()}  # engine/cpu_kernels.py
