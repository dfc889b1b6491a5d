"""The devices this machine has, as the engine sees them. A spec naming a device the machine lacks (cuda
on a CPU-only machine, cuda:3 on a one-GPU box) is refused before anything is queued or written, so the
daemon only ever starts queues for devices that exist."""
from __future__ import annotations

import functools
import subprocess
import sys

from engine.errors import SpecError

COUNT_CUDA = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"


def available_devices() -> list[str]:
    """``cpu`` and ``cuda:0`` .. ``cuda:N-1``."""
    return ["cpu", *(f"cuda:{index}" for index in range(cuda_device_count()))]


def auto_device() -> str:
    """What ``--device auto`` means here: the first CUDA device where there is one, else the CPU."""
    return "cuda:0" if cuda_device_count() else "cpu"


@functools.cache
def cuda_device_count() -> int:
    """torch's count of CUDA devices. A process that has not imported torch (the daemon, which never
    does, so it never holds a CUDA context) asks a short-lived child instead, once."""
    if "torch" in sys.modules:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    probe = subprocess.run([sys.executable, "-c", COUNT_CUDA], capture_output=True, text=True, timeout=600)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise SpecError(f"could not ask torch for this machine's devices ({last}); check the torch install")
    return int(probe.stdout.split()[-1])


def resolve_device(requested: str):
    """The torch device a job runs on (in the job's process, which imports torch)."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError(f"--device {requested} asked for, but this machine has no CUDA device; use --device cpu",
                        field="device")
    return torch.device(requested)


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
    raise SpecError(f"--device {device}: this machine has no such device ({have}); use --device "
                    f"{'cpu' if not gpus else ' or '.join(['auto', *gpus])}", field="device")


def check_device_count(device: str, count: int) -> None:
    """SpecError (field ``devices``) unless ``count`` ranks of ``device`` fit this machine: any number of CPU
    ranks; on CUDA, one device per rank (cuda:0 .. cuda:count-1)."""
    if count == 1 or device == "cpu" or (device == "auto" and not cuda_device_count()):
        return
    if device not in ("auto", "cuda"):
        raise SpecError(f"--devices {count} runs its ranks on cuda:0 .. cuda:{count - 1}; give --device cuda "
                        f"(or auto), not {device}", field="device")
    have = cuda_device_count()
    if count > have:
        raise SpecError(f"--devices {count}: this machine has {have} CUDA device(s); use --devices {have} or fewer, "
                        "or --device cpu", field="devices")
