"""The asyncio connection to the engine the TUI keeps: requests matched to replies by id, event
subscriptions fed by one reader task, and ``last_seen`` moved by every message (heartbeats too)."""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from typing import Any

from sessions import protocol as P
from workbench.client.errors import EngineDisconnected, EngineError, EngineNotRunning, check_reply, strip

DISCONNECTED: Any = object()  # queued to every subscription when the connection ends


def shell_threads() -> str:
    """This process's OMP_NUM_THREADS ("" when unset), sent with every job: the engine starts the job's CPU worker
    with it, so that a run through the engine computes at the thread count a headless run from this shell
    would, and gives the same numbers. A value OpenMP cannot read (a headless run ignores it) is sent as unset."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return value if P.THREADS.fullmatch(value) else ""


class Subscription:
    """``async for event in client.subscribe(session, from_seq)``: stored events, then live ones,
    each exactly once and in seq order; ends when the session ends (``.state`` then holds its final
    state). When it reads too slowly for a live run the engine ends it ``behind``; it subscribes again
    from the next event it needs, unseen by its reader (``resubscribed`` counts how often). Raises EngineDisconnected if the engine goes away, EngineError (code ``damaged``) when
    the session's files cannot be read."""

    def __init__(self, client: "EngineClient", session: str, from_seq: int):
        self.client = client
        self.session = session
        self.sub: int | None = None
        self.state: str | None = None
        self.message: str | None = None   # the end message's, when the stream ended abnormally
        self.next_seq = from_seq
        self._queue: asyncio.Queue | None = None
        self._pending: list[dict] = []
        self.resubscribed = 0

    def __aiter__(self) -> "Subscription":
        return self

    async def _start(self) -> None:
        reply = await self.client.request("subscribe", session=self.session, from_seq=self.next_seq)
        self.sub = reply["sub"]
        self.session = reply.get("session", self.session)
        self._queue = self.client.stream(self.sub)

    async def __anext__(self) -> dict:
        if self._queue is None:
            await self._start()
        assert self._queue is not None
        while not self._pending:
            if self.state is not None:
                raise StopAsyncIteration
            message = await self._queue.get()
            if message is DISCONNECTED:
                raise EngineDisconnected(f"lost the engine while following session {self.session}",
                                         "disconnected", session=self.session)
            if message.get("type") == "end" and message.get("state") == P.BEHIND:
                # it fell too far behind a live run: the engine ended this stream; go on from where it was
                self.client.end_stream(self.sub)
                self.resubscribed += 1
                await self._start()
                continue
            if message.get("type") == "end":
                self.state = message.get("state")
                self.message = message.get("message")
                self.client.end_stream(self.sub)
                if self.state in ("damaged", "error"):  # the engine could not read the session
                    raise EngineError(self.message or f"session {self.session} cannot be read", self.state,
                                      session=self.session)
                continue
            self._pending = [e for e in message.get("events", []) if e["seq"] >= self.next_seq]
            self._pending.reverse()
        event = self._pending.pop()
        self.next_seq = event["seq"] + 1
        return event


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
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._streams: dict[int, asyncio.Queue] = {}

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
        return strip(await self.request("hello", protocol=P.PROTOCOL_VERSION, schema=P.SCHEMA_VERSION,
                                        client=self.client_name))

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
                        self.stream(message["sub"]).put_nowait(message)
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
        for queue in self._streams.values():
            queue.put_nowait(DISCONNECTED)

    def stream(self, sub: int) -> asyncio.Queue:
        """The queue of subscription ``sub``'s stream messages (made on first use)."""
        queue = self._streams.get(sub)
        if queue is None:
            queue = self._streams[sub] = asyncio.Queue()
        return queue

    def end_stream(self, sub: int | None) -> None:
        self._streams.pop(sub, None)

    async def request(self, op: str, **fields: Any) -> dict:
        """Send one request and wait for its reply (raises what an error reply says)."""
        if not self.connected or self._writer is None:
            raise EngineDisconnected("not connected to the engine", "disconnected")
        rid = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self._writer.write(P.encode({"id": rid, "op": op, **fields}))
        await self._writer.drain()
        return check_reply(await future)

    async def submit(self, spec: dict, name: str | None = None) -> dict:
        """Queue a run, to compute at this process's thread count; ``{"session", "device", "position", "state"}``.
        SpecRejected on a bad spec."""
        return strip(await self.request("submit", spec=spec, name=name, threads=shell_threads()))

    async def cancel(self, session: str) -> dict:
        return strip(await self.request("cancel", session=session))

    async def list(self, state: str | None = None) -> list[dict]:
        return (await self.request("list", state=state))["sessions"]

    async def status(self, session: str | None = None) -> dict:
        return strip(await self.request("status", session=session))

    async def heartbeat(self) -> dict:
        return strip(await self.request("heartbeat"))

    async def study(self, study: str, spec: dict, cells: list[dict]) -> dict:
        """Run a study in the engine (or attach to it when it runs there already): its state and cells
        (``engine.daemon.studies.StudyJob.info``). SpecRejected names the cell at fault."""
        return strip(await self.request("study", study=study, spec=spec, cells=cells, threads=shell_threads()))

    async def study_status(self, study: str, after: int = -1) -> dict:
        """The study's state and cells once its version has moved past ``after`` (a long poll)."""
        return strip(await self.request("study_status", study=study, after=after))

    def subscribe(self, session: str, from_seq: int = 0) -> Subscription:
        return Subscription(self, session, from_seq)
