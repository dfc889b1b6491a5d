"""Shared helpers for the session-store and engine-daemon tests (not a conftest: imported explicitly).

``FakeJobs`` is a stand-in for ``engine.jobs`` with the same contract (validate / run_job), used only
by tests that exercise the daemon, the socket and the store rather than training: its runs take
milliseconds per step and are deterministic. The daemon runs it through ``LAUNCH``, which puts it into
``sys.modules["engine.jobs"]`` before starting the real ``engine.daemon``, and starts its worker
processes through ``WORKER_LAUNCH``, which does the same before the real ``engine.execution.worker``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

PATHS = "import sys; sys.path.insert(0, {here!r}); sys.path.insert(0, {root!r});".format(here=str(HERE), root=str(ROOT))
WORKER_LAUNCH = (PATHS + "import sessions_fixtures as f; f.install_fake_jobs();"
                 "import engine.execution.worker as w; sys.exit(w.main(sys.argv[1:]))")
LAUNCH = (PATHS + "import sessions_fixtures as f; f.install_fake_jobs();"
          "import engine.execution.job_process as jp; jp.WORKER_COMMAND[:] = [sys.executable, '-c', {worker!r}];"
          "import engine.daemon.server as s; sys.exit(s.main())").format(worker=WORKER_LAUNCH)


def fake_validate(spec: dict, alone: bool = True) -> dict:
    from engine.errors import SpecError

    if not isinstance(spec.get("method"), str):
        raise SpecError("spec needs a 'method' (e.g. ft, multidelete)")
    if spec["method"] == "nope":
        raise SpecError("unknown method 'nope'; expected one of ft, multidelete", field="method")
    steps = spec.get("steps", 10)
    if not isinstance(steps, int) or steps < 0:
        raise SpecError("'steps' must be a non-negative integer", field="steps")
    out = dict(spec)
    out.setdefault("device", "cpu")
    out.setdefault("model", "fake")
    out.setdefault("data", "fake")
    out.setdefault("deletion", {"strategy": "random", "n": 4, "seed": 0})
    return out


def fake_run_job(spec: dict, writer, should_stop) -> dict:
    from engine.errors import Cancelled, RunFailed

    started = time.time()
    steps, pause = spec.get("steps", 10), spec.get("sleep", 0.0)
    writer.emit("phase", name="unlearn")
    if spec.get("name") == "disk-full":  # the model cache's disk fills as the job writes an entry (test_disk_full)
        _publish_on_a_full_disk()
    writer.emit("eval", step=0, phase="unlearn", split="before", metrics={"df_dr_auc": 0.9, "test.r_mean": 50.0})
    for step in range(steps):
        if should_stop():
            raise Cancelled("stopped")
        if spec.get("fail_at") == step:
            raise RunFailed(f"loss became NaN at step {step}")
        if spec.get("exit_at") == step:  # a job that takes its process down (a worker must contain it)
            os._exit(7)
        if spec.get("segfault_at") == step:
            import faulthandler
            faulthandler._sigsegv()
        writer.emit("step", step=step, phase="unlearn", lr=1e-3,
                    losses={"total": 1.0 / (step + 1), "kl": 0.5 / (step + 1)})
        if pause:
            time.sleep(pause)
    writer.emit("phase", name="eval")
    metrics = {"df_dr_auc": 0.5, "test.r_mean": 48.0, "mia.df_member_rate": 0.1}
    writer.emit("eval", step=steps, phase="eval", split="after", metrics=metrics)
    return {"session": writer.session_id, "method": spec["method"], "seconds": time.time() - started,
            "metrics": {"df_dr_auc": 0.5, "test": {"r_mean": 48.0}, "mia": {"df_member_rate": 0.1}}}


def _publish_on_a_full_disk() -> None:
    import errno

    from engine.cache import publish
    from sessions.paths import cache_dir

    def write(staging: Path) -> None:
        (staging / "model.safetensors").write_bytes(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    publish(cache_dir() / "originals" / "fake-original", write, {"fake": 1})


def install_fake_jobs() -> None:
    import types

    import engine

    module = types.ModuleType("engine.jobs")
    module.validate = fake_validate
    module.run_job = fake_run_job
    module.queue_device = lambda spec: str(spec.get("device") or "cpu")
    sys.modules["engine.jobs"] = module
    engine.jobs = module


def fake_command(limits: dict | None = None) -> list[str]:
    """The fake-jobs daemon; ``limits``: its bounds on clients (connection.Limits fields), scaled for a test."""
    if not limits:
        return [sys.executable, "-c", LAUNCH]
    scaled = ("import functools, engine.daemon.server as s;"
              f"s.Limits = functools.partial(s.Limits, **{limits!r});")
    return [sys.executable, "-c", LAUNCH.replace("import engine.daemon.server as s;", scaled)]


def start_daemon(home: Path, fake: bool = True, limits: dict | None = None) -> dict:
    from workbench.client.process import start_engine

    return start_engine(home, timeout=20, command=fake_command(limits) if fake else None)


def daemon_pid(home: Path) -> int | None:
    try:
        return int((Path(home) / "engine" / "engine.pid").read_text())
    except (OSError, ValueError):
        return None


def kill_daemon(home: Path) -> None:
    """Teardown: stop politely, then kill -9 whatever is left."""
    from workbench.client.process import stop_engine

    pid = daemon_pid(home)
    try:
        stop_engine(home, timeout=10)
    except Exception:
        pass
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def writer_script(home: Path, steps: int, sleep: float, segment_size: int = 10_000,
                  flush_interval: float = 1.0) -> list[str]:
    """A subprocess that writes one session (prints its id on the first line), for crash/reader tests."""
    code = (
        "import sys, time; sys.path.insert(0, {root!r});"
        "from sessions.store import SessionStore;"
        "st = SessionStore({home!r}, segment_size={seg}, flush_interval={fi});"
        "w = st.create({{'method': 'ft', 'model': 'm', 'data': 'd'}});"
        "print(w.session_id, flush=True);"
        "w.emit('phase', name='unlearn');"
        "[ (w.emit('step', step=i, phase='unlearn', losses={{'total': 1.0, 'kl': 0.5}}, lr=0.1),"
        "   time.sleep({sleep})) for i in range({steps}) ];"
        "w.finish('finished', summary={{'metrics': {{'df_dr_auc': 0.5}}}})"
    ).format(root=str(ROOT), home=str(home), seg=segment_size, fi=flush_interval, sleep=sleep, steps=steps)
    return [sys.executable, "-c", code]


def run_cli(app, args: list[str], env: dict | None = None):
    from typer.testing import CliRunner

    return CliRunner().invoke(app, args, env=env)


def parse_json_output(text: str) -> dict:
    return json.loads(text)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """The tests' one synchronous waiting loop: poll ``predicate`` until it holds (its value), or fail naming
    ``what`` (async code waits with conftest's ``until``, a Textual pilot with ``wait_until``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("%s not met within %.1f s" % (what, timeout))


def proc_output(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=30)
    return (out or "") + (err or "")


def small_flickr(directory: Path, shuffle: bool = False) -> Path:
    """The first 24 / 8 / 8 images of shapes-tiny as a Flickr30K folder: an original trains in seconds.
    With `shuffle`, every caption moves to another image: same name, same images, other content."""
    from engine.api import export_world

    export_world("shapes-tiny", "flickr30k", directory)
    for split, keep in (("train", 24), ("val", 8), ("test", 8)):
        path = directory / f"flickr30k_{split}.json"
        records = json.loads(path.read_text())
        images = list(dict.fromkeys(r["image"] for r in records))[:keep]
        records = [r for r in records if r["image"] in images]
        if shuffle and split == "train":
            captions = [r["caption"] for r in records]
            for record, caption in zip(records, captions[5:] + captions[:5]):
                record["caption"] = caption
        path.write_text(json.dumps(records))
    return directory
