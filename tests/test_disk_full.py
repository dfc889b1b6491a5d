"""A full disk at each write site (a session's file, a model-cache entry, a run's checkpoint) ends the run in one
line naming the path and the space it needed, exit 1, the session marked failed with that cause, and every other
session as it was; through the engine, the same line (not "engine unavailable", not "internal error"). The disk is
filled by injection (os.replace, or a writer, raising ENOSPC as the kernel does): mounting a small tmpfs needs
privileges these machines do not give."""
from __future__ import annotations

import errno
import os
import subprocess

import pytest

from engine.cache import publish
from engine.protocols.originals import save_atomically
from sessions.errors import DiskFull
from sessions.files import atomic_write_text
from sessions.store import SessionStore

from conftest import ROOT, cli, cli_env, link_shared_originals, run_in_process
from sessions_fixtures import kill_daemon, start_daemon

SPEC = {"method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "deletion": {"strategy": "random", "n": 4}}
ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def _replace_fails_for(monkeypatch, suffix: str, times: int = 1) -> None:
    """os.replace raises ENOSPC for the next `times` sources ending in `suffix` (a .partial session file)."""
    real, left = os.replace, [times]

    def replace(src, dst, *args, **kwargs):
        if str(src).endswith(suffix) and left[0] > 0:
            left[0] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_atomic_write_names_the_path_and_the_bytes_and_leaves_the_file(tmp_path, monkeypatch):
    path = tmp_path / "session.json"
    path.write_text("before")
    _replace_fails_for(monkeypatch, "session.json.partial")
    with pytest.raises(DiskFull) as raised:
        atomic_write_text(path, "x" * 2500)
    message = str(raised.value)
    assert message.startswith(f"disk full writing {path}: it needs 2.5 kB") and "free there" in message
    assert "\n" not in message and raised.value.errno == errno.ENOSPC
    assert path.read_text() == "before" and not (tmp_path / "session.json.partial").exists()


@pytest.mark.parametrize("error", [ENOSPC, RuntimeError(  # safetensors' SafetensorError says it in its text
    'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })')],
    ids=["ENOSPC", "SafetensorError"])
def test_a_cache_entry_and_a_checkpoint_on_a_full_disk(tmp_path, error):
    entry = tmp_path / "originals" / "clip-tiny-key"
    entry.mkdir(parents=True)
    (entry / "config.json").write_text("{}")                        # an older entry: left as it was

    def write(staging):
        (staging / "model.safetensors").write_bytes(b"\0" * 3000)
        raise error

    with pytest.raises(DiskFull) as raised:
        publish(entry, write, {"k": 1})
    assert str(raised.value).startswith(f"disk full writing {entry}: it needs more than the 3.0 kB written")
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]   # no staging left
    assert (entry / "config.json").read_text() == "{}"

    class Adapter:
        def save(self, staging):
            write(staging)

    run_dir = tmp_path / "runs" / "20260101-000000-abcd"
    with pytest.raises(DiskFull, match=f"disk full writing {run_dir}"):
        save_atomically(Adapter(), run_dir)
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_session_write_on_a_full_disk_raises_to_the_job_and_the_session_ends_failed(tmp_path, monkeypatch):
    store = SessionStore(tmp_path)
    other = store.create(SPEC)
    other.emit("phase", name="unlearn")
    other.finish("finished", summary={"metrics": {"df_dr_auc": 0.5}})
    other_bytes = (store.session_dir(other.session_id) / "session.json").read_bytes()
    writer = store.create(SPEC)
    _replace_fails_for(monkeypatch, "session.json.partial")
    with pytest.raises(DiskFull) as raised:
        writer.emit("phase", name="unlearn")                         # a phase event is flushed at once
    writer.finish("failed", message=str(raised.value))               # the disk has room again: the cause is kept
    meta = store.get(writer.session_id)
    assert meta["state"] == "failed" and meta["message"].startswith("disk full writing ")
    assert [e["kind"] for e in store.events(writer.session_id)] == ["status", "phase", "status"]
    assert (store.session_dir(other.session_id) / "session.json").read_bytes() == other_bytes
    assert not list(store.session_dir(writer.session_id).glob("*.partial"))


def test_a_writer_whose_final_write_finds_no_room_still_lets_the_session_go(tmp_path, monkeypatch):
    store = SessionStore(tmp_path)
    writer = store.create(SPEC)
    _replace_fails_for(monkeypatch, "session.json.partial", times=10)
    with pytest.raises(DiskFull):
        writer.finish("failed", message="x")
    assert writer.closed and store.reopen(writer.session_id)         # its lock is free: recovery can end it


def _fill_the_disk_at(monkeypatch, site: str) -> None:
    """os.replace fails with ENOSPC at one site of a run: the N-th write of session.json (`session:N`, once), or
    the run's checkpoint (`checkpoint`, always)."""
    real, seen = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        if site.startswith("session:") and str(src).endswith("session.json.partial"):
            seen[0] += 1
            if seen[0] == int(site.split(":")[1]):
                raise OSError(errno.ENOSPC, "No space left on device")
        if site == "checkpoint" and "/cache/runs/" in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def _one_error_line(out) -> str:
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 1 and len(errors) == 1 and "Traceback" not in out.stderr, out.stderr
    return errors[0]


@pytest.mark.parametrize("site", ["session:3", "checkpoint"])
def test_a_headless_run_on_a_full_disk_ends_in_one_line(tmp_path, monkeypatch, site):
    link_shared_originals(tmp_path)
    store = SessionStore(tmp_path)
    other = store.create(SPEC)
    other.finish("finished")
    other_bytes = (store.session_dir(other.session_id) / "session.json").read_bytes()
    _fill_the_disk_at(monkeypatch, site)  # in this process: the command's handling is the point, not the process
    out = run_in_process(tmp_path, "run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny",
                         "--delete", "4", "--epochs", "1")
    line = _one_error_line(out)
    sid = next(r["id"] for r in store.list() if r["id"] != other.session_id)
    where = store.session_dir(sid) / "session.json" if site.startswith("session") else tmp_path / "cache" / "runs" / sid
    assert line.startswith(f"error: disk full writing {where}: it needs ") and line.endswith(f"(session {sid} kept)")
    meta = store.get(sid)
    assert meta["state"] == "failed" and meta["message"] == line[len("error: "):-len(f" (session {sid} kept)")]
    assert (store.session_dir(other.session_id) / "session.json").read_bytes() == other_bytes
    assert not list((tmp_path / "cache").glob("runs/.*"))            # no staging left behind


def test_an_engine_run_on_a_full_disk_says_the_same_line(tmp_path):
    start_daemon(tmp_path)  # the fake job module: a job named disk-full fills the cache's disk as it writes
    try:
        out = subprocess.run(cli("run", "--engine", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny",
                                 "--delete", "4", "--device", "cpu", "--name", "disk-full"),
                             env=cli_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=120)
        line = _one_error_line(out)
        entry = tmp_path / "cache" / "originals" / "fake-original"
        assert line.startswith(f"error: disk full writing {entry}: it needs more than the 4.1 kB written")
        assert "engine unavailable" not in out.stderr and "internal error" not in out.stderr
        (row,) = SessionStore(tmp_path).list()
        assert row["state"] == "failed" and row["message"].startswith("disk full writing") and row["name"] == "disk-full"
    finally:
        kill_daemon(tmp_path)
