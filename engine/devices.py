"""The devices this machine has, as the engine sees them. A spec naming a device the machine lacks (cuda
on a CPU-only machine, cuda:3 on a one-GPU box) is refused before anything is queued or written, so the
daemon only ever starts worker threads for devices that exist."""
from __future__ import annotations

from engine.errors import SpecError


def available_devices() -> list[str]:
    """``cpu`` and ``cuda:0`` .. ``cuda:N-1``."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["cpu", *(f"cuda:{index}" for index in range(count))]


def check_available(device: str) -> None:
    """SpecError (field ``device``) unless ``device`` (auto, cpu, cuda, cuda:N) exists here."""
    if device in ("auto", "cpu"):
        return
    available = available_devices()
    wanted = "cuda:0" if device == "cuda" else device
    if wanted in available:
        return
    gpus = [d for d in available if d != "cpu"]
    have = f"its CUDA devices are {', '.join(gpus)}" if gpus else "it has no CUDA device"
    raise SpecError(f"--device {device}: the engine's machine has no such device ({have}); use --device "
                    f"{'cpu' if not gpus else ' or '.join(['auto', *gpus])}", field="device")
