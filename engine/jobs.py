"""The job entry points shared by the headless CLI and the engine daemon."""
from __future__ import annotations

from typing import Callable

from engine import spec as specs


def validate(spec: dict, alone: bool = True) -> dict:
    """A normalised run spec the engine can run here, or SpecError with one line saying what is wrong (and
    which field): the spec's shape (engine.spec), then this machine's devices and the data's records
    (engine.preflight; `alone=False` for a study's cells). Nothing is queued or written before this passes."""
    from engine.preflight import preflight

    normal = specs.validate_pulse(spec) if isinstance(spec, dict) and spec.get("kind") == "pulse" else specs.validate(spec)
    preflight(normal, alone)
    return normal


def queue_device(spec: dict) -> str:
    """The device a job queues on: "auto" resolved (cuda:0 where CUDA is, else cpu) and "cuda" as
    cuda:0, so one device never gets two queues that would run jobs on it at once."""
    from engine.devices import auto_device

    device = str(spec.get("device") or "auto")  # validated: auto, cpu, cuda or cuda:N that exists here
    if device == "auto":
        return auto_device()
    return "cuda:0" if device == "cuda" else device


def run_job(spec: dict, writer, should_stop: Callable[[], bool], original_metrics: dict | None = None) -> dict:
    """Run a validated spec, emitting events through `writer.emit`; returns the result document."""
    if spec.get("devices", 1) > 1:
        from engine.execution.parallel_run import run_parallel

        return run_parallel(spec, writer.emit, should_stop, getattr(writer, "session_id", None))
    from engine.protocols.requests import run_requests

    return run_requests(spec, writer.emit, should_stop, session_id=getattr(writer, "session_id", None),
                        original_metrics=original_metrics)
