"""Where a run executes: on this engine's devices (the default), or sent to a Ray cluster (``--cluster``),
with the original-model cache and checkpoints on a path every node shares (``--artifacts``); and on how
many devices at once (``--devices N``, data-parallel ranks)."""
from __future__ import annotations

import re

from engine.errors import SpecError
from engine.spec.inputs import require_absolute

RAY_ADDRESS = re.compile(r"^ray://[\w.-]+:\d{1,5}$")


def check_cluster(value) -> str | None:
    """None (this machine), "ray" (the cluster at $RAY_ADDRESS, else a local Ray instance) or ray://HOST:PORT."""
    if value is None or value == "ray" or (isinstance(value, str) and RAY_ADDRESS.match(value)):
        return value
    raise SpecError(f"--cluster must be ray (the cluster at $RAY_ADDRESS, or a local Ray instance) or "
                    f"ray://HOST:PORT, got {value!r}", field="cluster")


MAX_DEVICES = 64


def check_devices(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DEVICES:
        raise SpecError(f"--devices must be a whole number of devices from 1 to {MAX_DEVICES}, got {value!r}",
                        field="devices")
    return value


def check_placement(spec: dict) -> dict:
    """The spec's ``cluster``, ``artifacts`` and ``devices`` fields, checked; absent keys for the defaults
    (here, one device)."""
    devices = check_devices(spec.get("devices", 1))
    cluster = check_cluster(spec.get("cluster"))
    artifacts = spec.get("artifacts")
    if artifacts is not None:
        if cluster is None:
            raise SpecError("--artifacts is the path all of a cluster's nodes share; it goes with --cluster",
                            field="artifacts")
        artifacts = str(require_absolute(artifacts, "artifacts", "the artifacts directory"))
    placed = {key: value for key, value in (("cluster", cluster), ("artifacts", artifacts)) if value is not None}
    return {**placed, "devices": devices} if devices > 1 else placed
