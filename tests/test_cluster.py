"""Runs on a Ray cluster, end to end: a local Ray instance started by a real engine daemon, a one-method
study over two seeds sent to it (`study --cluster ray`), each run a Ray task streaming its events back to the daemon,
which writes the sessions. Uses the shared original-model cache, so the runs themselves are short."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessions.store import SessionStore
from workbench.client.process import engine_status, start_engine

from conftest import link_shared_originals
from sessions_fixtures import ROOT, kill_daemon

# found, not imported: importing ray costs every test worker half a second at collection
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="ray is the cluster extra: pip install -e '.[cluster]'")


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MMUL_HOME": str(home), "COLUMNS": "200"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([str(Path(sys.executable).parent / "mmul-workbench"), *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=ROOT)


def test_study_on_a_local_ray_cluster(tmp_path, monkeypatch):
    link_shared_originals(tmp_path)
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    try:
        start_engine(tmp_path)
        args = ["study", "--cluster", "ray", "--methods", "ft", "--seeds", "42,7", "--model", "clip-tiny",
                "--data", "shapes-tiny", "--delete", "4", "--epochs", "1", "--device", "cpu", "--json"]
        done = cli(tmp_path, *args)
        assert done.returncode == 0, done.stderr[-2000:]
        document = json.loads(done.stdout)
        cells = document["cells"]
        assert len(cells) == 2 and {c["state"] for c in cells} == {"finished"}
        store = SessionStore(tmp_path)
        for cell in cells:
            events = store.events(cell["session"])
            assert [e["seq"] for e in events] == list(range(len(events)))
            assert sum(e["kind"] == "step" for e in events) >= 1
            assert store.get(cell["session"])["spec"]["cluster"] == "ray"
        for metric in ("df_dr_auc", "test.r_mean"):
            assert document["methods"]["ft"][metric]["n"] == 2
        replay = cli(tmp_path, "replay", cells[0]["session"], "--headless")
        assert replay.returncode == 0 and "final metrics" in replay.stdout
        status = engine_status(tmp_path)
        assert status["cluster"]["nodes"] and status["cluster"]["nodes"][0]["alive"]
        assert "libtorch" not in Path(f"/proc/{status['pid']}/maps").read_text()  # the tasks ran torch, not the daemon
        again = cli(tmp_path, *args)  # a re-run finds every cell finished and runs nothing
        assert again.returncode == 0 and "runs to go" not in again.stderr
        assert json.loads(again.stdout)["methods"] == document["methods"]
        # another cluster than the engine's: refused in one line before a session exists (it left a failed one)
        sessions = {row["id"] for row in store.list()}
        other = cli(tmp_path, "run", "--cluster", "ray://127.0.0.1:1", "--method", "ft", "--model", "clip-tiny",
                    "--data", "shapes-tiny", "--delete", "4", "--device", "cpu")
        assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1, other.stderr
        assert "this engine already sends runs to a local Ray instance; stop it" in other.stderr
        elsewhere = cli(tmp_path, "study", "--cluster", "ray://127.0.0.1:1", "--methods", "ft", "--seeds", "5", "--model",
                        "clip-tiny", "--data", "shapes-tiny", "--delete", "4", "--device", "cpu")
        assert elsewhere.returncode == 2 and "already sends runs to a local Ray instance" in elsewhere.stderr
        assert {row["id"] for row in store.list()} == sessions
    finally:
        kill_daemon(tmp_path)
