"""The engine daemon against unlucky and careless clients: damaged sessions at start and on subscribe, 200
clients at once, silent clients, half-sent lines, device strings the machine lacks. The daemon tests run the fake
job module (sessions_fixtures) or an in-process Engine; a relative path given to `run --engine` is checked with a
real job in test_engine_daemon_real.py."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket

import pytest
import typer

from engine.daemon.connection import Limits
from engine.daemon.server import Engine
from sessions import protocol as P
from sessions.store import SessionStore
from workbench.cli_engine import engine_app
from workbench.client.async_client import EngineClient
from workbench.client.errors import EngineError

from conftest import run_in_process, until
from sessions_fixtures import kill_daemon, run_cli, start_daemon

SPEC = {"method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "deletion": {"strategy": "random", "n": 4}}


@pytest.fixture(scope="module")
def daemon_home(tmp_path_factory):
    path = tmp_path_factory.mktemp("hardening-home")
    start_daemon(path)
    yield path
    kill_daemon(path)


def _sessions(home, running=0, finished=0) -> list[str]:
    ids = []
    for state in ["running"] * running + ["finished"] * finished:
        writer = SessionStore(home).create(SPEC)
        writer.emit("phase", name="unlearn")
        writer.finish("finished") if state == "finished" else writer.abandon()
        ids.append(writer.session_id)
    return ids


def test_subscribing_to_a_damaged_session_ends_with_an_error(daemon_home):
    (sid,) = _sessions(daemon_home, finished=1)
    path = SessionStore(daemon_home).session_dir(sid) / "session.json"
    os.truncate(path, path.stat().st_size // 2)

    async def follow():
        async with EngineClient(daemon_home) as client:
            return [e async for e in client.subscribe(sid)]

    with pytest.raises(EngineError) as raised:
        asyncio.run(asyncio.wait_for(follow(), 30))     # ends, never hangs
    assert raised.value.code == "damaged" and f"session {sid} is damaged" in str(raised.value)


def test_engine_start_skips_and_reports_damaged_sessions(tmp_path):
    dead, broken = _sessions(tmp_path, running=2)
    (done,) = _sessions(tmp_path, finished=1)
    path = SessionStore(tmp_path).session_dir(broken) / "session.json"
    path.unlink()
    path.mkdir()                                        # a session.json replaced by a directory
    try:
        info = start_daemon(tmp_path)
        assert info["damaged"] == [broken]
        app = typer.Typer()
        app.add_typer(engine_app, name="engine")
        again = run_cli(app, ["engine", "start"], env={"MMUL_HOME": str(tmp_path)})
        assert again.exit_code == 0 and "already running" in again.stdout
        assert again.stderr.count("\n") == 1 and f"skipped 1 damaged session(s) ({broken})" in again.stderr
        store = SessionStore(tmp_path)
        assert store.get(dead)["state"] == "interrupted" and store.get(done)["state"] == "finished"
        assert {r["id"]: r["state"] for r in store.list()}[broken] == "damaged"
    finally:
        kill_daemon(tmp_path)


def test_200_clients_at_once_are_all_served(daemon_home):
    path = str(P.engine_paths(daemon_home).socket)
    socks, refused = [], 0
    for _ in range(200):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(path)
        except (BlockingIOError, ConnectionRefusedError):
            refused += 1
        socks.append(sock)
    assert refused == 0
    try:
        for sock in socks:
            sock.setblocking(True)
            sock.settimeout(30)
            sock.sendall(P.encode(P.hello_request(1)))
        for sock in socks:
            lines = sock.makefile("rb")
            reply = json.loads(lines.readline())
            while "id" not in reply:                     # a heartbeat came first
                reply = json.loads(lines.readline())
            assert reply["ok"] is True
    finally:
        for sock in socks:
            sock.close()


async def _engine(tmp_path, **limits) -> Engine:
    engine = Engine(tmp_path, limits=Limits(**limits))
    await engine.start()
    return engine


async def _stop(engine: Engine) -> None:
    engine.request_stop()
    await asyncio.wait_for(engine.stopped.wait(), 30)


async def _messages_until_closed(reader) -> list[dict]:
    messages = []
    while line := await asyncio.wait_for(reader.readline(), 20):
        messages.append(json.loads(line))
    return messages


async def test_silent_clients_are_disconnected(tmp_path):
    engine = await _engine(tmp_path, hello_timeout=0.2, idle_timeout=0.3)
    try:
        reader, writer = await asyncio.open_unix_connection(str(engine.paths.socket))   # says nothing
        codes = [m.get("error", {}).get("code") for m in await _messages_until_closed(reader)]
        assert P.IDLE in codes
        writer.close()
        reader, writer = await asyncio.open_unix_connection(str(engine.paths.socket))
        writer.write(P.encode(P.hello_request(1)))       # says hello, then nothing
        messages = await _messages_until_closed(reader)
        assert messages[0]["ok"] is True and any(m.get("error", {}).get("code") == P.IDLE for m in messages)
        writer.close()
        await until(lambda: not engine.connections)
    finally:
        await _stop(engine)


async def test_half_sent_lines_are_bounded_and_released(tmp_path):
    engine = await _engine(tmp_path, buffered=2 << 20)
    try:
        clients = [await asyncio.open_unix_connection(str(engine.paths.socket)) for _ in range(3)]
        half = b"x" * (900 << 10)
        for count, (_, writer) in enumerate(clients[:2], 1):
            writer.write(half)
            await until(lambda: engine.limits.used >= count * len(half))
        clients[2][1].write(half + b"\n")                # past the engine's budget: refused whole
        assert json.loads(await clients[2][0].readline())["error"]["code"] == P.TOO_LONG
        assert engine.limits.used <= engine.limits.buffered
        for reader, writer in clients[:2]:
            writer.write(b"\n")
            assert json.loads(await reader.readline())["error"]["code"] == P.BAD_JSON
        assert engine.limits.used == 0
        writer = clients[0][1]
        writer.write(half)
        await until(lambda: engine.limits.used >= len(half))
        for _, writer in clients:
            writer.close()
        await until(lambda: not engine.connections)
        assert engine.limits.used == 0                   # a closed connection's buffer is released
    finally:
        await _stop(engine)


async def test_device_strings_the_machine_lacks_start_no_worker(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    engine = await _engine(tmp_path)
    try:
        async with EngineClient(tmp_path) as client:
            for n in range(50):
                with pytest.raises(EngineError) as raised:
                    await client.submit({**SPEC, "device": f"cuda:{n}"})
                assert raised.value.code == P.BAD_SPEC and raised.value.field == "device"
            for bad in ({**SPEC, "deletion": [1]}, {**SPEC, "params": "x"}, {**SPEC, "seed": 10**40}):
                with pytest.raises(EngineError) as raised:
                    await client.submit(bad)
                assert raised.value.code == P.BAD_SPEC
        assert engine.queues.workers == {} and not SessionStore(tmp_path).list()
    finally:
        await _stop(engine)


def test_a_failed_engine_run_under_json_still_prints_its_document(tmp_path, monkeypatch, no_engine_start):
    """`run --engine --json` printed nothing on stdout for a failed run, where a headless run prints its session,
    state and error."""
    import workbench.client.follow as follow

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    writer = SessionStore().create({"method": "ft"})
    writer.finish("failed", message="images/1.png does not decode (image file is truncated)")
    monkeypatch.setattr(follow, "submit_and_follow", lambda spec, on_event, **options: (writer.session_id, "failed"))
    out = run_in_process(tmp_path, "run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny",
                         "--delete", "4", "--engine", "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout) == {"session": writer.session_id, "state": "failed",
                                      "error": "images/1.png does not decode (image file is truncated)"}


RUN = ("run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4", "--engine", "--json")


@pytest.fixture
def no_engine_start(monkeypatch):
    """The engine the command would find or start, stood in for: these tests follow a fake."""
    import workbench.client.process as process

    monkeypatch.setattr(process, "start_engine", lambda *a, **k: {})


def test_ctrl_c_on_an_engine_run_says_the_run_goes_on_and_how_to_stop_it(tmp_path, monkeypatch, no_engine_start):
    """Ctrl-C exited 130 in silence, which the README reads as cancelled, while the run went on in the engine and
    its session id was never printed."""
    import workbench.client.follow as follow

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    writer = SessionStore().create({"method": "ft"}, state="queued")   # the engine's session, queued behind another
    sid = writer.session_id

    def interrupted(spec, on_event, on_submitted=None, **options):
        on_submitted(sid)
        raise KeyboardInterrupt

    monkeypatch.setattr(follow, "submit_and_follow", interrupted)
    out = run_in_process(tmp_path, *RUN)
    assert out.returncode == 130 and out.stderr.count("\n") == 1
    assert f"session {sid} goes on in the engine" in out.stderr and f"mmul-workbench engine cancel {sid}" in out.stderr
    assert json.loads(out.stdout)["state"] == "queued"   # as stored, not taken for running
    writer.finish("cancelled")


def test_an_engine_lost_while_followed_still_prints_the_runs_document(tmp_path, monkeypatch, no_engine_start):
    import workbench.client.follow as follow
    from workbench.client.errors import EngineDisconnected

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    writer = SessionStore().create({"method": "ft"})   # the engine's session, left running when it died

    def lost(spec, on_event, on_submitted=None, **options):
        on_submitted(writer.session_id)
        raise EngineDisconnected(f"lost the engine while following session {writer.session_id}", "disconnected")

    monkeypatch.setattr(follow, "submit_and_follow", lost)
    out = run_in_process(tmp_path, *RUN)
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert json.loads(out.stdout) == {"session": writer.session_id, "state": "running",
                                      "error": f"lost the engine while following session {writer.session_id}"}
    writer.finish("interrupted")


def test_sigterm_to_an_engine_follower_stops_the_following_as_ctrl_c_does(tmp_path, monkeypatch, no_engine_start):
    """`kill -TERM` on `run --engine` (a script's way, as a background job ignores SIGINT) ended it with exit 143 and
    no word while the run went on in the engine: the follower takes SIGTERM and SIGHUP as it takes Ctrl-C."""
    import signal

    import workbench.client.follow as follow

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    writer = SessionStore().create({"method": "ft"}, state="queued")
    sid, seen = writer.session_id, []

    def followed(spec, on_event, on_submitted=None, **options):
        on_submitted(sid)
        seen.append(signal.getsignal(signal.SIGTERM))
        raise KeyboardInterrupt   # what the taken-over SIGTERM raises (execute.Stopped is one)

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(follow, "submit_and_follow", followed)
    out = run_in_process(tmp_path, *RUN)
    assert out.returncode == 130 and f"session {sid} goes on in the engine" in out.stderr
    assert before is not signal.SIG_DFL or seen[0] is not signal.SIG_DFL   # taken over while following
    assert signal.getsignal(signal.SIGTERM) is before                       # and given back
    writer.finish("cancelled")


def test_an_engine_whose_files_were_deleted_puts_them_back_and_keeps_the_home_its_own(tmp_path):
    """`rm -r $MMUL_HOME/engine` (or a tmp cleaner taking the socket) under a running engine: it made the engine
    unreachable, and the next client started a second engine on the same home beside it."""
    import shutil
    import subprocess
    import sys

    from workbench.client.sync import ping
    from sessions_fixtures import daemon_pid, wait_for

    start_daemon(tmp_path)
    pid = daemon_pid(tmp_path)
    try:
        paths = P.engine_paths(tmp_path)
        shutil.rmtree(paths.dir)
        wait_for(lambda: paths.socket.exists() and paths.pid.exists() and paths.log.exists(), timeout=20,
                 what="the engine's files made again")
        assert ping(tmp_path)["ok"] is True and daemon_pid(tmp_path) == pid
        second = subprocess.run([sys.executable, "-m", "engine.daemon", "--home", str(tmp_path)],
                                capture_output=True, text=True, timeout=60, cwd=os.path.dirname(P.__file__) + "/..")
        assert second.returncode == 0 and "already running" in second.stderr
        wait_for(lambda: "socket" in paths.log.read_text() and "was deleted" in paths.log.read_text(), timeout=20,
                 what="the engine saying so in its new log")
    finally:
        kill_daemon(tmp_path)
        try:   # by the pid it started with: an engine that never made its files again has no pid file to read
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, TypeError):
            pass


async def test_an_engine_whose_lock_another_engine_took_stops_rather_than_serve_the_home_twice(tmp_path):
    from sessions.files import try_lock

    engine = Engine(tmp_path)
    assert engine.acquire_lock()
    await engine.start()
    engine.paths.lock.unlink()
    other = try_lock(engine.paths.lock)  # another engine, started while the lock file was gone, with its own files
    engine.paths.socket.unlink()
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(engine.paths.socket))
    engine.paths.pid.write_text("999999\n")
    try:
        await engine.restore_files()
        await asyncio.wait_for(engine.stopped.wait(), 30)
        # the stopped engine leaves the other's socket and pid file alone (it removed them: a review)
        assert engine.paths.socket.exists() and engine.paths.pid.read_text() == "999999\n"
    finally:
        listening.close()
        os.close(other)
