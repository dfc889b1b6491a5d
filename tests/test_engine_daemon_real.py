"""The real engine job (engine.jobs) through the real daemon: the cheapest real spec, end to end.

A run first trains and caches the original model (~35 s on 2 CPU cores). The temp $MMUL_HOME's
``cache/originals`` is a link to one shared cache (``$MMUL_TEST_CACHE``, default ``<repo>/.mmul-home/cache``,
git-ignored; entries are keyed by content), so only the first run on a checkout pays for it; the
test itself then takes ~10 s."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from sessions.store import SessionStore
from workbench.cli_sessions import replay_headless
from workbench.client.errors import SpecRejected
from workbench.client.follow import submit_and_follow
from workbench.client.process import engine_status, start_engine

from conftest import link_shared_originals
from sessions_fixtures import ROOT, kill_daemon

pytestmark = pytest.mark.skipif(importlib.util.find_spec("engine.jobs") is None, reason="engine.jobs not present")

CHEAP = {"method": "ft", "model": "clip-tiny", "data": "shapes-tiny",
         "deletion": {"strategy": "random", "n": 4, "seed": 42}, "epochs": 1}


def test_real_job_through_the_daemon(tmp_path, monkeypatch, capsys):
    link_shared_originals(tmp_path)
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    try:
        start_engine(tmp_path)              # the product entry point: python -m engine.daemon
        with pytest.raises(SpecRejected):
            submit_and_follow({**CHEAP, "method": "no-such-method"}, lambda e: None, home=tmp_path, start=False)
        seen = []
        sid, state = submit_and_follow(CHEAP, seen.append, home=tmp_path, start=False)
        assert state == "finished", seen[-1]
        assert [e["seq"] for e in seen] == list(range(len(seen)))
        kinds = {e["kind"] for e in seen}
        assert {"status", "phase", "step", "eval"} <= kinds
        for e in seen:
            if e["kind"] == "step":
                assert "total" in e["losses"] and isinstance(e["step"], int)
        store = SessionStore(tmp_path)
        assert store.events(sid) == seen
        row = next(r for r in store.list() if r["id"] == sid)
        assert row["state"] == "finished" and "df_dr_auc" in row["summary"]["metrics"]
        assert replay_headless(sid) == 0
        out = capsys.readouterr().out
        assert "loss terms" in out and "final metrics" in out
        # the job ran in the device's worker process; the daemon itself never loaded torch
        status = engine_status(tmp_path)
        worker = status["devices"]["cpu"]["worker_pid"]
        assert "libtorch" in Path(f"/proc/{worker}/maps").read_text()
        assert "libtorch" not in Path(f"/proc/{status['pid']}/maps").read_text()
    finally:
        kill_daemon(tmp_path)


def test_one_queue_per_physical_device():
    import torch

    from engine.jobs import queue_device

    assert queue_device({"device": "cpu"}) == "cpu"
    assert queue_device({"device": "cuda"}) == queue_device({"device": "cuda:0"}) == "cuda:0"
    assert queue_device({"device": "auto"}) == ("cuda:0" if torch.cuda.is_available() else "cpu")
