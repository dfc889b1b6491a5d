"""Where a run executes: on this engine's devices (the default), or sent to a Ray cluster (``--cluster``),
with the original-model cache and checkpoints on a path every node shares (``--artifacts``); on how
many devices at once (``--devices N``, data-parallel ranks), and how the ranks hold the model
(``--strategy``)."""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from engine.errors import SpecError
from engine.spec.inputs import blocking_file, require_absolute

RAY_ADDRESS = re.compile(r"^ray://[\w.-]+:\d{1,5}$")


def check_cluster(value) -> str | None:
    """None (this machine), "ray" (the cluster at $RAY_ADDRESS, else a local Ray instance) or ray://HOST:PORT."""
    if value is None or value == "ray" or (isinstance(value, str) and RAY_ADDRESS.match(value)):
        return value
    raise SpecError(f"--cluster must be ray (the cluster at $RAY_ADDRESS, or a local Ray instance) or "
                    f"ray://HOST:PORT, got {value!r}", field="cluster")


LOCAL = "a local Ray instance"


def resolve_address(cluster: str) -> str:
    """The cluster a run's `cluster` names, read with the engine's environment: ray://HOST:PORT, else $RAY_ADDRESS,
    else a local Ray instance."""
    if cluster.startswith("ray://"):
        return cluster
    return os.environ.get("RAY_ADDRESS") or LOCAL


def already_on(current: str, wanted: str) -> str:
    return f"this engine already sends runs to {current}; stop it (`mmul-workbench engine stop`) to use {wanted}"


MAX_DEVICES = 64


def check_devices(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DEVICES:
        raise SpecError(f"--devices must be a whole number of devices from 1 to {MAX_DEVICES}, got {value!r}",
                        field="devices")
    return value


# How the ranks of --devices N hold the model: whole on each, gradients all-reduced (ddp); weights, gradients and
# AdamW state sharded by torch's FSDP2 (fsdp); sharded by DeepSpeed ZeRO-3 (zero3).
STRATEGIES = ("ddp", "fsdp", "zero3")


def check_strategy(value, devices: int) -> str:
    if value is None:
        return "ddp"
    if not isinstance(value, str) or value not in STRATEGIES:
        shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:21] + "..."
        raise SpecError(f"--strategy must be ddp, fsdp or zero3, got {shown}", field="strategy")
    if value == "zero3":
        if importlib.util.find_spec("deepspeed") is None:
            raise SpecError("--strategy zero3 needs DeepSpeed: pip install deepspeed, or use --strategy fsdp (the "
                            "same ZeRO-3 sharding in torch)", field="strategy")
        raise SpecError("--strategy zero3 (DeepSpeed) is not wired into the loop yet; use --strategy fsdp (the same "
                        "ZeRO-3 sharding in torch)", field="strategy")
    if value != "ddp" and devices == 1:
        raise SpecError(f"--strategy {value} shards the model over the ranks of --devices N; give --devices 2 or "
                        "more (one device holds the whole model)", field="strategy")
    return value


def check_placement(spec: dict) -> dict:
    """The spec's ``cluster``, ``artifacts``, ``devices`` and ``strategy`` fields, checked; absent keys for the
    defaults (here, one device; the strategy is recorded with more than one)."""
    devices = check_devices(spec.get("devices", 1))
    strategy = check_strategy(spec.get("strategy"), devices)
    cluster = check_cluster(spec.get("cluster"))
    artifacts = spec.get("artifacts")  # --cache-dir (--artifacts): with --cluster, a path every node shares
    if artifacts is not None:
        artifacts = str(require_absolute(artifacts, "artifacts", "the model cache directory (--cache-dir)"))
        if (blocking := blocking_file(Path(artifacts))) is not None:
            raise SpecError(f"--cache-dir {artifacts} cannot be a directory: {blocking} is a file; give a directory "
                            "(made if missing)", field="artifacts")
    placed = {key: value for key, value in (("cluster", cluster), ("artifacts", artifacts)) if value is not None}
    return {**placed, "devices": devices, "strategy": strategy} if devices > 1 else placed
