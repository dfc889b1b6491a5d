"""Device telemetry: the device a run is on, and on CUDA its utilisation and memory over the run.

``DeviceTelemetry(device, emit)`` wraps a run. Entering it emits one ``device`` event (sessions.schema)
naming the resolved device; on CUDA a background thread then samples the device through NVML
(nvidia-ml-py's ``pynvml``, imported here only) every ``interval`` seconds and emits each sample as a
``device`` event, so the live monitor and a replay show the same numbers. Leaving it stops the thread
before the run's last events. Telemetry never fails a run: NVML missing or failing gives one ``log``
event saying so, and no samples.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable

SAMPLE_INTERVAL = 2.0  # seconds between samples: fine enough for a status line, ~1,800 events an hour
MB = 2**20             # the unit of every memory figure the engine reports (as the step events' memory_mb)


def unsampled(name: str) -> dict:
    """A device entry with nothing measured (the CPU, or a CUDA device NVML cannot read)."""
    return {"name": name, "util": None, "mem_used_mb": None, "mem_total_mb": None}


def visible_device_id(index: int, visible: str | None) -> int | str:
    """The NVML id of torch's CUDA device ``index``: torch counts only the devices CUDA_VISIBLE_DEVICES
    lists (by index or UUID, in its order), NVML counts every device of the machine."""
    if not visible:
        return index
    entries = [entry.strip() for entry in visible.split(",")]
    entry = entries[index] if index < len(entries) else str(index)
    return int(entry) if entry.isdigit() else entry


class NvmlDevice:
    """One CUDA device read through NVML; ``sample()`` raises whatever NVML raises."""

    def __init__(self, nvml: Any, label: str, index: int):
        self.nvml, self.label = nvml, label
        device_id = visible_device_id(index, os.environ.get("CUDA_VISIBLE_DEVICES"))
        self.handle = (nvml.nvmlDeviceGetHandleByIndex(device_id) if isinstance(device_id, int)
                       else nvml.nvmlDeviceGetHandleByUUID(device_id))
        model = nvml.nvmlDeviceGetName(self.handle)
        self.name = f"{label} ({model.decode() if isinstance(model, bytes) else model})"

    def sample(self) -> dict:
        memory = self.nvml.nvmlDeviceGetMemoryInfo(self.handle)
        return {"name": self.name, "util": float(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu),
                "mem_used_mb": memory.used / MB, "mem_total_mb": memory.total / MB}


class DeviceTelemetry:
    """Context manager around a run on ``device`` (a torch.device or its string: cpu, cuda, cuda:N)."""

    def __init__(self, device: Any, emit: Callable[..., Any], interval: float = SAMPLE_INTERVAL):
        # torch.device("cuda") (what --device auto resolves to) is the current device: cuda:0 unless a
        # caller chose another with torch.cuda.set_device, which the engine never does
        self.label = "cuda:0" if str(device) == "cuda" else str(device)
        self.emit, self.interval = emit, interval
        self.nvml: Any = None
        self.reader: NvmlDevice | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "DeviceTelemetry":
        if not self.label.startswith("cuda"):
            self.emit("device", devices=[unsampled(self.label)])
            return self
        index = int(self.label.partition(":")[2] or 0)
        first = self._open_nvml(index)
        self.emit("device", devices=[first or unsampled(self.label)])
        if first is not None:
            self._thread = threading.Thread(target=self._sample_loop, name=f"telemetry-{self.label}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.nvml is not None:
            self._quietly(self.nvml.nvmlShutdown)

    def _open_nvml(self, index: int) -> dict | None:
        """The first sample, or None (and one log event) when NVML cannot read the device."""
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.reader = NvmlDevice(pynvml, self.label, index)
            return self.reader.sample()
        except Exception as error:  # ImportError, NVMLError (no driver library, no such device), ...
            self._say_off(error)
            return None

    def _sample_loop(self) -> None:
        assert self.reader is not None
        while not self._stop.wait(self.interval):
            try:
                sample = self.reader.sample()
            except Exception as error:  # a device lost mid-run: the run goes on without telemetry
                self._say_off(error)
                return
            if self._stop.is_set():  # the run ended while NVML answered: its last events are its own
                return
            self._quietly(self.emit, "device", devices=[sample])

    def _say_off(self, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        self._quietly(self.emit, "log", level="warning",
                      message=f"device telemetry off for {self.label}: NVML could not read it ({reason})")

    @staticmethod
    def _quietly(call: Callable[..., Any], *args, **kwargs) -> None:
        try:
            call(*args, **kwargs)
        except Exception:  # telemetry never fails a run
            pass
