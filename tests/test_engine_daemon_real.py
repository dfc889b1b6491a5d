"""The real engine job (engine.jobs) through the real daemon: the cheapest real spec, end to end; and a
`run --engine` from another directory, whose relative paths are the caller's. Both share one engine (a module's
home), so the second finds the device's worker process with torch loaded.

A run first trains and caches the original model (~35 s on 2 CPU cores). The temp $MMUL_HOME's
``cache/originals`` is a link to one shared cache (``$MMUL_TEST_CACHE``, default ``<repo>/.mmul-home/cache``,
git-ignored; entries are keyed by content), so only the first run on a checkout pays for it; the
test itself then takes ~10 s."""
from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from sessions.store import SessionStore
from workbench.cli_sessions import replay_headless
from workbench.client.errors import SpecRejected
from workbench.client.follow import submit_and_follow
from workbench.client.process import engine_status, start_engine

from conftest import cli, cli_env, link_shared_originals
from sessions_fixtures import kill_daemon, small_flickr

pytestmark = pytest.mark.skipif(importlib.util.find_spec("engine.jobs") is None, reason="engine.jobs not present")

CHEAP = {"method": "ft", "model": "clip-tiny", "data": "shapes-tiny",
         "deletion": {"strategy": "random", "n": 4, "seed": 42}, "epochs": 1}


@pytest.fixture(scope="module")
def engine_home(tmp_path_factory):
    """One $MMUL_HOME with the shared originals and a running engine (the product entry point:
    python -m engine.daemon) for the module's tests; killed after the last."""
    home = tmp_path_factory.mktemp("engine-home")
    link_shared_originals(home)
    try:
        start_engine(home)
        yield home
    finally:
        kill_daemon(home)


def test_real_job_through_the_daemon(engine_home, monkeypatch, capsys):
    monkeypatch.setenv("MMUL_HOME", str(engine_home))
    with pytest.raises(SpecRejected):
        submit_and_follow({**CHEAP, "method": "no-such-method"}, lambda e: None, home=engine_home, start=False)
    seen = []
    sid, state = submit_and_follow(CHEAP, seen.append, home=engine_home, start=False)
    assert state == "finished", seen[-1]
    assert [e["seq"] for e in seen] == list(range(len(seen)))
    kinds = {e["kind"] for e in seen}
    assert {"status", "phase", "step", "eval"} <= kinds
    for e in seen:
        if e["kind"] == "step":
            assert "total" in e["losses"] and isinstance(e["step"], int)
    store = SessionStore(engine_home)
    assert store.events(sid) == seen
    row = next(r for r in store.list() if r["id"] == sid)
    assert row["state"] == "finished" and "df_dr_auc" in row["summary"]["metrics"]
    assert replay_headless(sid) == 0
    out = capsys.readouterr().out
    assert "loss terms" in out and "final metrics" in out
    # the job ran in the device's worker process; the daemon itself never loaded torch
    status = engine_status(engine_home)
    worker = status["devices"]["cpu"]["worker_pid"]
    assert "libtorch" in Path(f"/proc/{worker}/maps").read_text()
    assert "libtorch" not in Path(f"/proc/{status['pid']}/maps").read_text()


def test_a_relative_delete_ids_with_engine_is_the_callers_file(engine_home, tmp_path):
    small_flickr(tmp_path / "ds")
    units = list(dict.fromkeys(r["image"] for r in json.loads((tmp_path / "ds" / "flickr30k_train.json").read_text())))
    (tmp_path / "ids.txt").write_text("\n".join(units[:2]) + "\n")
    (engine_home / "ids.txt").write_text("\n".join(units[2:5]) + "\n")   # a decoy where the engine runs
    try:
        out = subprocess.run(cli("run", "--engine", "--method", "ft", "--model", "clip-tiny", "--data", "flickr30k:ds",
                                 "--delete-ids", "ids.txt", "--epochs", "1", "--json"),
                             env=cli_env(engine_home), cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["deletion"]["units"] == 2
        spec = SessionStore(engine_home).get(result["session"])["spec"]
        assert spec["deletion"]["file"] == str(tmp_path / "ids.txt") and spec["data"] == f"flickr30k:{tmp_path / 'ds'}"
    finally:
        (engine_home / "ids.txt").unlink()


def test_one_queue_per_physical_device():
    import torch

    from engine.jobs import queue_device

    assert queue_device({"device": "cpu"}) == "cpu"
    assert queue_device({"device": "cuda"}) == queue_device({"device": "cuda:0"}) == "cuda:0"
    assert queue_device({"device": "auto"}) == ("cuda:0" if torch.cuda.is_available() else "cpu")


def test_a_run_through_an_engine_started_at_other_threads_computes_at_the_clients(engine_home, tmp_path_factory,
                                                                                  monkeypatch):
    """An engine started with OMP_NUM_THREADS=2 trained its jobs at 2 threads while the client's shell had 1 (and
    trained an original of its own for it): its numbers differed from a headless run's in that shell."""
    monkeypatch.setenv("MMUL_HOME", str(engine_home))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    at_one, state = submit_and_follow(CHEAP, lambda e: None, home=engine_home, start=False)
    assert state == "finished"
    other = tmp_path_factory.mktemp("engine-at-2")
    link_shared_originals(other)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    try:
        start_engine(other)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")   # this shell's, as the first run's
        phases = []
        sid, state = submit_and_follow(CHEAP, phases.append, home=other, start=False)
        assert state == "finished"
        assert not [e for e in phases if e["kind"] == "phase" and e["name"].startswith("original")]
        ran, reference = SessionStore(other).get(sid)["summary"], SessionStore(engine_home).get(at_one)["summary"]
        assert ran["cost"]["torch_threads"] == 1
        assert ran["metrics"] == reference["metrics"]
    finally:
        kill_daemon(other)
