"""Talking to the engine daemon: start/stop it, an asyncio client for the TUI, and a sync helper
for ``run --engine``.

Imports only the stdlib and ``sessions`` (never torch or textual); the daemon is started as
``python -m engine.daemon`` in a new session, so nothing of ``engine`` is imported here.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from sessions import protocol as P

LOG_ROTATE_BYTES = 8 << 20
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)


class EngineError(RuntimeError):
    """An error reply from the engine (``code`` is one of sessions.protocol's codes)."""

    def __init__(self, message: str, code: str = P.INTERNAL, session: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.session = session

    def __str__(self) -> str:
        return self.message


class SpecRejected(EngineError):
    """The engine refused the run spec (bad input; nothing was queued)."""


class EngineNotRunning(EngineError):
    """No engine answers on the socket."""


class EngineDisconnected(EngineError):
    """The connection to the engine was lost."""


class EngineStartError(EngineError):
    """The engine could not be started (the message names its log)."""


def _raise_for(reply: dict) -> dict:
    if reply.get("ok"):
        return reply
    err = reply.get("error") or {}
    code, message = err.get("code", P.INTERNAL), err.get("message", "engine error")
    cls = SpecRejected if code == P.BAD_SPEC else EngineError
    raise cls(message, code)


# --------------------------------------------------------------------------------------------------
# sync, one request per connection (CLI: engine status/stop)


def _sync_call(paths: P.EnginePaths, op: str, timeout: float = 10.0, **fields: Any) -> dict:
    """Connect, hello, one request, return its reply (raises EngineNotRunning / EngineError)."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(paths.socket))
    except (FileNotFoundError, ConnectionRefusedError, socket.timeout, OSError) as exc:
        raise EngineNotRunning(f"no engine answers on {paths.socket} ({exc.__class__.__name__})",
                               "not_running") from None
    try:
        reader = sock.makefile("rb")
        requests = [P.hello_request(0)]
        if op != "hello":
            requests.append({"id": 1, "op": op, **fields})
        sock.sendall(b"".join(P.encode(r) for r in requests))
        replies: dict[Any, dict] = {}
        while len(replies) < len(requests):
            line = reader.readline(P.CLIENT_LINE_LIMIT)
            if not line:
                raise EngineDisconnected("the engine closed the connection", "disconnected")
            message = json.loads(line)
            if "id" in message:
                replies[message["id"]] = message
        _raise_for(replies[0])
        return _raise_for(replies[len(requests) - 1])
    except (socket.timeout, ConnectionError) as exc:
        raise EngineDisconnected(f"the engine did not answer ({exc.__class__.__name__})", "disconnected") from None
    finally:
        sock.close()


def ping(home: str | os.PathLike | None = None, timeout: float = 2.0) -> dict | None:
    """The engine's hello reply, or None when no engine answers."""
    try:
        return _sync_call(P.engine_paths(home), "hello", timeout=timeout)
    except EngineError:
        return None


def request(op: str, home: str | os.PathLike | None = None, timeout: float = 10.0, **fields: Any) -> dict:
    """One request to the running engine; returns the reply (raises EngineError on an error reply)."""
    return _sync_call(P.engine_paths(home), op, timeout=timeout, **fields)


def _lock_held(paths: P.EnginePaths) -> bool:
    import fcntl

    if not paths.lock.exists():
        return False
    fd = os.open(paths.lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases our probe lock
    return False


def _read_pid(paths: P.EnginePaths) -> int | None:
    try:
        return int(paths.pid.read_text().strip())
    except (OSError, ValueError):
        return None


def clean_stale(paths: P.EnginePaths) -> bool:
    """Remove a dead engine's socket and pid file (only when no engine holds the lock)."""
    if _lock_held(paths):
        return False
    cleaned = False
    for path in (paths.socket, paths.pid):
        try:
            path.unlink()
            cleaned = True
        except FileNotFoundError:
            pass
    return cleaned


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def start_engine(home: str | os.PathLike | None = None, timeout: float = 30.0,
                 command: list[str] | None = None) -> dict:
    """Start the daemon unless one is running; wait until it answers.

    Returns ``{"started": bool, "pid", "socket", "log", "home"}``. Raises EngineStartError (naming
    the log file) when it does not come up within ``timeout`` seconds. ``command`` replaces
    ``[sys.executable, "-m", "engine.daemon"]`` (tests use it to inject a job module)."""
    paths = P.engine_paths(home)
    hello = ping(home)
    if hello is not None:
        return {"started": False, "pid": hello.get("pid"), "socket": str(paths.socket),
                "log": str(paths.log), "home": str(paths.home)}
    P.private_dir(paths.dir)
    proc = None
    if not _lock_held(paths):
        clean_stale(paths)
        if paths.log.exists() and paths.log.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(paths.log, paths.log.with_name("engine.log.1"))
        env = dict(os.environ)
        env["MMUL_HOME"] = str(paths.home)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO_ROOT, env.get("PYTHONPATH")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        argv = command or [sys.executable, "-m", "engine.daemon"]
        with open(paths.log, "ab") as log_file:
            os.chmod(paths.log, 0o600)
            proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, stdout=log_file,
                                    stderr=log_file, cwd=str(paths.home), env=env, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hello = ping(home, timeout=1.0)
        if hello is not None:
            return {"started": proc is not None, "pid": hello.get("pid"), "socket": str(paths.socket),
                    "log": str(paths.log), "home": str(paths.home)}
        if proc is not None and proc.poll() not in (None, 0):
            raise EngineStartError(f"the engine exited with code {proc.returncode} while starting; "
                                   f"see {paths.log}: {_tail(paths.log, 3)}", "start_failed")
        time.sleep(0.05)
    raise EngineStartError(f"the engine did not answer on {paths.socket} within {timeout:.0f} s; "
                           f"see {paths.log}", "start_failed")


def ensure_engine_running(home: str | os.PathLike | None = None, timeout: float = 30.0) -> None:
    """Start the engine if needed and wait for its socket (EngineStartError names the log on failure)."""
    start_engine(home, timeout=timeout)


def stop_engine(home: str | os.PathLike | None = None, timeout: float = 60.0) -> dict:
    """Ask the engine to stop (running jobs end their current step and are marked cancelled) and wait
    for it to exit. After ``timeout`` seconds it is killed (its sessions show ``interrupted`` on the
    next start). Returns ``{"was_running", "pid", "cancelled", "killed"}``."""
    paths = P.engine_paths(home)
    try:
        reply = _sync_call(paths, "shutdown", timeout=10.0)
    except EngineNotRunning:
        clean_stale(paths)
        return {"was_running": False, "pid": None, "cancelled": [], "killed": False}
    pid = reply.get("pid")
    cancelled = list(reply.get("running", [])) + list(reply.get("queued", []))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _lock_held(paths):
            return {"was_running": True, "pid": pid, "cancelled": cancelled, "killed": False}
        time.sleep(0.05)
    if pid:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        time.sleep(0.2)
    clean_stale(paths)
    return {"was_running": True, "pid": pid, "cancelled": cancelled, "killed": True}


def engine_status(home: str | os.PathLike | None = None) -> dict:
    """``{"running": False, ...}`` or the engine's status reply with ``running: True``."""
    paths = P.engine_paths(home)
    try:
        reply = _sync_call(paths, "status", timeout=5.0)
    except EngineNotRunning:
        return {"running": False, "home": str(paths.home), "socket": str(paths.socket), "log": str(paths.log),
                "stale": paths.pid.exists() or paths.socket.exists()}
    reply = {k: v for k, v in reply.items() if k not in ("id", "ok")}
    return {"running": True, **reply}


# --------------------------------------------------------------------------------------------------
# asyncio client (the TUI)


class Subscription:
    """``async for event in client.subscribe(session, from_seq)``: stored events, then live ones,
    each exactly once and in seq order; ends when the session ends (``.state`` then holds its final
    state). Raises EngineDisconnected if the engine goes away."""

    def __init__(self, client: "EngineClient", session: str, from_seq: int):
        self.client = client
        self.session = session
        self.from_seq = from_seq
        self.sub: int | None = None
        self.state: str | None = None
        self.next_seq = from_seq
        self._queue: asyncio.Queue | None = None
        self._pending: list[dict] = []

    def __aiter__(self) -> "Subscription":
        return self

    async def _start(self) -> None:
        reply = await self.client._request("subscribe", session=self.session, from_seq=self.from_seq)
        self.sub = reply["sub"]
        self.session = reply.get("session", self.session)
        self._queue = self.client._sub_queue(self.sub)

    async def __anext__(self) -> dict:
        if self._queue is None:
            await self._start()
        assert self._queue is not None
        while not self._pending:
            if self.state is not None:
                raise StopAsyncIteration
            message = await self._queue.get()
            if message is _DISCONNECTED:
                raise EngineDisconnected(f"lost the engine while following session {self.session}",
                                         "disconnected", session=self.session)
            if message.get("type") == "end":
                self.state = message.get("state")
                self.client._subs.pop(self.sub, None)
                continue
            self._pending = [e for e in message.get("events", []) if e["seq"] >= self.next_seq]
            self._pending.reverse()
        event = self._pending.pop()
        self.next_seq = event["seq"] + 1
        return event

    async def cancel(self) -> None:
        if self.sub is not None and self.state is None:
            await self.client._request("unsubscribe", sub=self.sub)
            self.client._subs.pop(self.sub, None)
            self.state = "unsubscribed"


_DISCONNECTED: Any = object()


class EngineClient:
    """One connection to the engine. ``async with EngineClient() as c: await c.submit(spec)``.

    ``last_seen`` (monotonic seconds) moves on every message, including the engine's heartbeat every
    HEARTBEAT_INTERVAL seconds: a TUI shows "engine disconnected" when it is older than ~3 intervals
    or ``connected`` is False."""

    def __init__(self, home: str | os.PathLike | None = None, client_name: str = "mmul-workbench"):
        self.paths = P.engine_paths(home)
        self.client_name = client_name
        self.connected = False
        self.last_seen = 0.0
        self.engine_info: dict = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._subs: dict[int, asyncio.Queue] = {}

    async def __aenter__(self) -> "EngineClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def connect(self, timeout: float = 5.0) -> dict:
        """Open the socket and say hello; returns the engine's hello reply."""
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.paths.socket), limit=P.CLIENT_LINE_LIMIT), timeout)
        except (FileNotFoundError, ConnectionRefusedError, asyncio.TimeoutError, OSError) as exc:
            raise EngineNotRunning(f"no engine answers on {self.paths.socket} ({exc.__class__.__name__}); "
                                   "start it with `mmul-workbench engine start`", "not_running") from None
        self.connected = True
        self.last_seen = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._read_loop())
        return await self.hello()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._disconnected()

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                self.last_seen = time.monotonic()
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if "type" in message:
                    if message["type"] in ("events", "end"):
                        self._sub_queue(message["sub"]).put_nowait(message)
                    continue
                future = self._pending.pop(message.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(message)
        except (ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            self._disconnected()

    def _disconnected(self) -> None:
        self.connected = False
        for future in self._pending.values():
            if not future.done():
                future.set_exception(EngineDisconnected("the engine closed the connection", "disconnected"))
        self._pending.clear()
        for queue in self._subs.values():
            queue.put_nowait(_DISCONNECTED)

    def _sub_queue(self, sub: int) -> asyncio.Queue:
        queue = self._subs.get(sub)
        if queue is None:
            queue = self._subs[sub] = asyncio.Queue()
        return queue

    async def _request(self, op: str, **fields: Any) -> dict:
        if not self.connected or self._writer is None:
            raise EngineDisconnected("not connected to the engine", "disconnected")
        rid = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self._writer.write(P.encode({"id": rid, "op": op, **fields}))
        await self._writer.drain()
        return _raise_for(await future)

    @staticmethod
    def _strip(reply: dict) -> dict:
        return {k: v for k, v in reply.items() if k not in ("id", "ok")}

    async def hello(self) -> dict:
        reply = self._strip(await self._request("hello", protocol=P.PROTOCOL_VERSION,
                                                schema=P.SCHEMA_VERSION, client=self.client_name))
        self.engine_info = reply
        return reply

    async def submit(self, spec: dict, name: str | None = None) -> dict:
        """Queue a run; ``{"session", "device", "position", "state"}``. SpecRejected on a bad spec."""
        return self._strip(await self._request("submit", spec=spec, name=name))

    async def cancel(self, session: str) -> dict:
        return self._strip(await self._request("cancel", session=session))

    async def list(self, state: str | None = None) -> list[dict]:
        return (await self._request("list", state=state))["sessions"]

    async def status(self, session: str | None = None) -> dict:
        return self._strip(await self._request("status", session=session))

    async def heartbeat(self) -> dict:
        return self._strip(await self._request("heartbeat"))

    async def shutdown(self) -> dict:
        return self._strip(await self._request("shutdown"))

    def subscribe(self, session: str, from_seq: int = 0) -> Subscription:
        return Subscription(self, session, from_seq)

    async def events(self, session: str, from_seq: int = 0) -> AsyncIterator[dict]:
        """Shorthand: ``async for e in client.events(sid)``."""
        async for event in self.subscribe(session, from_seq):
            yield event


# --------------------------------------------------------------------------------------------------
# sync helper for `run --engine`


def submit_and_follow(spec: dict, on_event: Callable[[dict], None], detach: bool = False,
                      name: str | None = None, home: str | os.PathLike | None = None,
                      start: bool = True) -> tuple[str, str]:
    """Submit ``spec`` to the engine (starting it if needed) and follow its events.

    ``on_event(event)`` sees every event of the session from seq 0, exactly once, in order. Returns
    ``(session_id, final_state)``; with ``detach`` returns at once with state ``"queued"``. Raises
    SpecRejected (bad spec: exit 2), EngineStartError, or EngineDisconnected (with ``.session``) when
    the engine goes away mid-run. Interrupting the follower (Ctrl-C) never stops the job."""
    if start:
        ensure_engine_running(home)

    async def go() -> tuple[str, str]:
        async with EngineClient(home) as client:
            reply = await client.submit(spec, name=name)
            session = reply["session"]
            if detach:
                return session, reply.get("state", "queued")
            subscription = client.subscribe(session, 0)
            async for event in subscription:
                on_event(event)
            return session, subscription.state or "unknown"

    return asyncio.run(go())


def follow(session: str, on_event: Callable[[dict], None], from_seq: int = 0,
           home: str | os.PathLike | None = None) -> str:
    """Follow an existing session through the engine until it ends; returns its final state."""

    async def go() -> str:
        async with EngineClient(home) as client:
            subscription = client.subscribe(session, from_seq)
            async for event in subscription:
                on_event(event)
            return subscription.state or "unknown"

    return asyncio.run(go())


class LiveSource:
    """A session followed live through the engine (a ``sessions.source.EventSource``): stored events
    from ``from_seq`` on, then live ones, each once, in order; ``state`` is set when it ends.

    Without a ``client`` it opens its own connection for the stream and closes it at the end;
    ``client`` is the connection in use while it follows, so a screen can read ``last_seen`` and
    ``connected`` to show "engine disconnected"."""

    live = True

    def __init__(self, session_id: str, home: str | os.PathLike | None = None, from_seq: int = 0,
                 client: EngineClient | None = None):
        self.session_id = session_id
        self.home = home
        self.from_seq = from_seq
        self.client = client
        self.state: str | None = None

    async def __aiter__(self) -> AsyncIterator[dict]:
        own = self.client is None
        client = self.client = self.client or EngineClient(self.home)
        if own:
            await client.connect()
        try:
            subscription = client.subscribe(self.session_id, self.from_seq)
            async for event in subscription:
                yield event
            self.state = subscription.state
        finally:
            if own:
                await client.close()
