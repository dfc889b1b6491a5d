"""Device telemetry (engine/telemetry.py): the `device` event a run starts with (in a real run: test_cli.py's
end-to-end run), the CUDA sampler read through a fake NVML module (hand-checked numbers), NVML absent or
failing (one log line, the run goes on), and the schema of the new event kind."""
from __future__ import annotations

import sys
import threading
import types

import pytest

from engine.telemetry import DeviceTelemetry, visible_device_id
from sessions.schema import check_fields

GIB = 2**30


class NVMLError(Exception):
    pass


def fake_nvml(fail_init: bool = False, fail_sample_after: int | None = None) -> types.ModuleType:
    """pynvml's calls the sampler makes: one H200 with 37% utilisation and 3 of 140 GiB in use, the memory
    rising by 1 GiB a sample; `calls` records what was asked."""
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = NVMLError
    nvml.calls = []
    state = {"samples": 0}

    def init():
        nvml.calls.append("init")
        if fail_init:
            raise NVMLError("NVML Shared Library Not Found")

    def memory(handle):
        if fail_sample_after is not None and state["samples"] >= fail_sample_after:
            raise NVMLError("GPU is lost")
        used = (3 + state["samples"]) * GIB
        state["samples"] += 1
        return types.SimpleNamespace(used=used, total=140 * GIB, free=140 * GIB - used)

    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: nvml.calls.append("shutdown")
    nvml.nvmlDeviceGetHandleByIndex = lambda index: nvml.calls.append(("index", index)) or f"handle{index}"
    nvml.nvmlDeviceGetHandleByUUID = lambda uuid: nvml.calls.append(("uuid", uuid)) or f"handle-{uuid}"
    nvml.nvmlDeviceGetName = lambda handle: b"NVIDIA H200"  # older bindings return bytes
    nvml.nvmlDeviceGetUtilizationRates = lambda handle: types.SimpleNamespace(gpu=37, memory=12)
    nvml.nvmlDeviceGetMemoryInfo = memory
    return nvml


class Recorder:
    """An `emit` that checks every event against the schema and signals when `want` device events came."""

    def __init__(self, want: int = 1):
        self.events: list[dict] = []
        self.want = want
        self.enough = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, kind, **fields):
        check_fields(kind, fields)
        with self.lock:
            self.events.append({"kind": kind, **fields})
            if sum(e["kind"] == "device" for e in self.events) >= self.want:
                self.enough.set()

    def kinds(self) -> list[str]:
        return [e["kind"] for e in self.events]


def test_cpu_is_one_device_event_and_no_sampler():
    # a real run's device event is checked in tests/test_cli.py::test_end_to_end_run_json
    emit = Recorder()
    with DeviceTelemetry("cpu", emit, interval=0.01):
        assert not any(t.name.startswith("telemetry") for t in threading.enumerate())
    assert emit.events == [{"kind": "device", "devices": [{"name": "cpu", "util": None, "mem_used_mb": None,
                                                           "mem_total_mb": None}]}]


def test_cuda_sampler_reads_nvml_every_interval_and_stops_with_the_run(monkeypatch):
    nvml = fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    emit = Recorder(want=3)
    with DeviceTelemetry("cuda:0", emit, interval=0.01):
        assert emit.enough.wait(timeout=10), emit.events
    settled = list(emit.events)
    assert not any(t.name == "telemetry-cuda:0" for t in threading.enumerate())  # joined on exit
    assert emit.events == settled and nvml.calls[-1] == "shutdown"
    assert nvml.calls[:2] == ["init", ("index", 0)]
    first, second, third = (e["devices"] for e in settled[:3])
    # 37% busy; 3 GiB = 3072 MiB used of 140 GiB = 143360 MiB, one GiB more each sample
    assert first == [{"name": "cuda:0 (NVIDIA H200)", "util": 37.0, "mem_used_mb": 3072.0, "mem_total_mb": 143360.0}]
    assert second[0]["mem_used_mb"] == 4096.0 and third[0]["mem_used_mb"] == 5120.0
    assert set(emit.kinds()) == {"device"}


@pytest.mark.parametrize("case", ["absent", "init fails", "lost mid-run"])
def test_nvml_absent_or_failing_is_one_log_line_never_a_failure(monkeypatch, case):
    if case == "absent":
        monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    else:
        monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(fail_init=case == "init fails",
                                                         fail_sample_after=2 if case == "lost mid-run" else None))
    emit = Recorder(want=2 if case == "lost mid-run" else 1)
    with DeviceTelemetry("cuda:1", emit, interval=0.01):
        assert emit.enough.wait(timeout=10)
        if case == "lost mid-run":  # wait for the sampler to notice the lost device and stop
            for thread in [t for t in threading.enumerate() if t.name == "telemetry-cuda:1"]:
                thread.join(timeout=10)
    logs = [e for e in emit.events if e["kind"] == "log"]
    assert len(logs) == 1 and logs[0]["level"] == "warning"
    assert logs[0]["message"].startswith("device telemetry off for cuda:1: NVML could not read it (")
    devices = [e["devices"][0] for e in emit.events if e["kind"] == "device"]
    if case == "lost mid-run":
        assert [d["mem_used_mb"] for d in devices] == [3072.0, 4096.0] and "GPU is lost" in logs[0]["message"]
    else:
        assert devices == [{"name": "cuda:1", "util": None, "mem_used_mb": None, "mem_total_mb": None}]


def test_cuda_visible_devices_maps_torch_indices_to_nvml_ids(monkeypatch):
    assert visible_device_id(1, None) == 1
    assert visible_device_id(1, "3, 5") == 5
    assert visible_device_id(0, "GPU-8d1a2b3c,1") == "GPU-8d1a2b3c"
    nvml = fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aa,GPU-bb")
    emit = Recorder()
    with DeviceTelemetry("cuda:1", emit, interval=60):
        pass
    assert ("uuid", "GPU-bb") in nvml.calls and emit.events[0]["devices"][0]["name"] == "cuda:1 (NVIDIA H200)"
    emit = Recorder()
    with DeviceTelemetry("cuda", emit, interval=60):  # --device auto on a GPU box: torch.device("cuda")
        pass
    assert nvml.calls[-2] == ("uuid", "GPU-aa") and emit.events[0]["devices"][0]["name"] == "cuda:0 (NVIDIA H200)"


@pytest.mark.parametrize("devices, problem", [
    ([{"name": "cpu", "util": None, "mem_used_mb": None, "mem_total_mb": None}], None),
    ([{"name": "cuda:0 (H200)", "util": 37, "mem_used_mb": 3072.0, "mem_total_mb": 143360.0}], None),
    ([], None),
    ([{"util": 1.0, "mem_used_mb": None, "mem_total_mb": None}], "need a 'name'"),
    (["cpu"], "need a 'name'"),
    ([{"name": "cpu", "util": None, "mem_used_mb": None}], "needs 'mem_total_mb'"),
    ([{"name": "cpu", "util": "37%", "mem_used_mb": None, "mem_total_mb": None}], "'util' of 'cpu' must be a number"),
    ([{"name": "cpu", "util": True, "mem_used_mb": None, "mem_total_mb": None}], "must be a number or null"),
    ({"name": "cpu"}, "has type dict"),
])
def test_device_event_schema(devices, problem):
    if problem is None:
        check_fields("device", {"devices": devices})
        return
    with pytest.raises(ValueError, match=problem):
        check_fields("device", {"devices": devices})
    with pytest.raises(ValueError, match="needs field 'devices'"):
        check_fields("device", {})
