"""The engine daemon: owns the devices, runs jobs one at a time per device, is the only writer of
the sessions it runs, and serves the newline-delimited JSON protocol of ``sessions.protocol``.

Started detached by ``mmul-workbench engine start`` (or by the TUI / ``run --engine``)::

    subprocess.Popen([sys.executable, "-m", "engine.server"], start_new_session=True,
                     stdin=DEVNULL, stdout=log, stderr=log)

Files (see ``sessions.protocol.engine_paths``): ``$MMUL_HOME/engine/engine.lock`` (flock: one engine
per home), ``engine.pid``, ``engine.log``, and the socket ``engine/run/engine.sock`` (dir 0700,
socket 0600; peers of another uid are refused via SO_PEERCRED).

On start it marks sessions left queued/running by a dead engine as ``interrupted``. SIGTERM or the
``shutdown`` op stops it gracefully: queued jobs are cancelled, each running job is asked to stop
and ends its current step (``cancelled``), everything is flushed, then the files are removed.

This module imports no torch: ``engine.jobs`` is imported when the first spec is validated, and
torch only inside the job.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import fcntl
import importlib
import logging
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from sessions import protocol as P
from sessions.schema import SCHEMA_VERSION, TERMINAL_STATES
from sessions.store import SessionBusy, SessionStore, SessionWriter, UnknownSession

log = logging.getLogger("mmul.engine")

HUB_KEEP = 4096          # recent events each live session keeps in memory (older ones are on disk)
TAIL_POLL = 0.5          # seconds between disk polls when following a session another process writes


# --------------------------------------------------------------------------------------------------
# jobs


@dataclass
class Job:
    session: str
    spec: dict
    device: str
    writer: SessionWriter
    stop: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"
    stop_reason: str = "cancelled by request"
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    last_step: int | None = None


class Hub:
    """Fan-out of one live session's events to subscribers (lives on the event loop).

    Invariant: every event with seq < ``start`` is on disk (flushed), so a subscriber replays
    [from_seq, start) from the store and [start, ...) from here, with no gap and no duplicate."""

    def __init__(self, writer: SessionWriter):
        self.writer = writer
        self.buf: collections.deque[dict] = collections.deque()
        self.next_seq = writer.last_seq + 1
        self.subscribers: set[asyncio.Queue] = set()
        self.end_state: str | None = None

    @property
    def start(self) -> int:
        return self.buf[0]["seq"] if self.buf else self.next_seq

    def publish(self, event: dict) -> None:
        self.buf.append(event)
        self.next_seq = event["seq"] + 1
        flushed = self.writer.flushed_seq
        while len(self.buf) > HUB_KEEP and self.buf[0]["seq"] <= flushed:
            self.buf.popleft()
        for queue in self.subscribers:
            queue.put_nowait(event)

    def close(self, state: str) -> None:
        self.end_state = state
        for queue in self.subscribers:
            queue.put_nowait(None)


class DeviceWorker(threading.Thread):
    """One thread per device; runs its queued jobs one at a time."""

    def __init__(self, engine: "Engine", device: str):
        super().__init__(name=f"device-{device}", daemon=True)
        self.engine = engine
        self.device = device
        self.queue: collections.deque[Job] = collections.deque()
        self.cond = threading.Condition()
        self.current: Job | None = None
        self.closing = False

    def put(self, job: Job) -> int:
        with self.cond:
            self.queue.append(job)
            self.cond.notify()
            return len(self.queue) + (1 if self.current else 0) - 1

    def remove(self, job: Job) -> bool:
        with self.cond:
            if job in self.queue:
                self.queue.remove(job)
                return True
            return False

    def close(self) -> list[Job]:
        with self.cond:
            self.closing = True
            dropped = list(self.queue)
            self.queue.clear()
            self.cond.notify()
            return dropped

    def run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.closing:
                    self.cond.wait()
                if not self.queue:
                    return
                job = self.queue.popleft()
                self.current = job
            try:
                self.engine.run_job(job)
            finally:
                with self.cond:
                    self.current = None


# --------------------------------------------------------------------------------------------------
# the engine


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (Linux SO_PEERCRED), or None."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class Engine:
    def __init__(self, home: str | os.PathLike | None = None, *, allowed_uid: int | None = None):
        self.paths = P.engine_paths(home)
        self.store = SessionStore(self.paths.home)
        self.allowed_uid = os.getuid() if allowed_uid is None else allowed_uid
        self.jobs: dict[str, Job] = {}
        self.hubs: dict[str, Hub] = {}
        self.workers: dict[str, DeviceWorker] = {}
        self.started = time.time()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: asyncio.AbstractServer | None = None
        self.stopping = False
        self.stopped: asyncio.Event | None = None
        self.connections: set[Connection] = set()
        self._jobs_module: Any = None
        self._lock_fd: int | None = None
        self._sub_ids = iter(range(1, 1 << 62))

    # lifecycle -----------------------------------------------------------------------------------

    def acquire_lock(self) -> bool:
        P.private_dir(self.paths.dir)
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopped = asyncio.Event()
        recovered = await asyncio.to_thread(self.store.recover_interrupted)
        for sid in recovered:
            log.info("session %s was active when a previous engine died: marked interrupted", sid)
        P.private_dir(self.paths.socket_dir)
        if self.paths.socket.exists() or self.paths.socket.is_symlink():
            self.paths.socket.unlink()  # stale: we hold the lock, so no engine owns it
        old_umask = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(
                self.handle, path=str(self.paths.socket), limit=P.MAX_LINE + 1)
        finally:
            os.umask(old_umask)
        os.chmod(self.paths.socket, 0o600)
        tmp = self.paths.pid.with_name("engine.pid.partial")
        tmp.write_text(f"{os.getpid()}\n")
        os.replace(tmp, self.paths.pid)
        self.loop.create_task(self._heartbeats())
        log.info("engine %d serving on %s (protocol %d, schema %d)", os.getpid(), self.paths.socket,
                 P.PROTOCOL_VERSION, SCHEMA_VERSION)

    async def serve_forever(self) -> None:
        await self.start()
        await self.stopped.wait()

    def request_stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            assert self.loop is not None
            self.loop.create_task(self._shutdown())

    async def _shutdown(self) -> None:
        log.info("shutting down: cancelling queued jobs, stopping running ones after their current step")
        if self.server is not None:
            self.server.close()
        for worker in list(self.workers.values()):
            for job in worker.close():
                job.stop_reason = "the engine stopped before this job started"
                await asyncio.to_thread(self._finish_unstarted, job)
            if worker.current is not None:
                worker.current.stop_reason = "the engine was stopped"
                worker.current.stop.set()
        for worker in list(self.workers.values()):
            await asyncio.to_thread(worker.join)
        # let the jobs' last events and their "end" reach subscribers (stored-session followers of
        # another process's run would wait forever: give up on them after a moment)
        streams = [t for c in self.connections for t in c.subscriptions.values()]
        if streams:
            await asyncio.wait(streams, timeout=2.0)
        for conn in list(self.connections):
            conn.writer.close()
        self.cleanup_files()
        assert self.stopped is not None
        self.stopped.set()

    def cleanup_files(self) -> None:
        for path in (self.paths.socket, self.paths.pid):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def _heartbeats(self) -> None:
        while not self.stopping:
            await asyncio.sleep(P.HEARTBEAT_INTERVAL)
            line = P.encode({"type": "heartbeat", "ts": time.time(), "jobs": self._job_count()})
            for conn in list(self.connections):
                try:
                    conn.writer.write(line)
                except Exception:
                    pass

    def _job_count(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state in ("queued", "running"))

    # jobs ----------------------------------------------------------------------------------------

    def jobs_module(self) -> Any:
        if self._jobs_module is None:
            self._jobs_module = importlib.import_module("engine.jobs")
        return self._jobs_module

    def _publish(self, session: str, event: dict) -> None:
        hub = self.hubs.get(session)
        if hub is not None:
            hub.publish(event)
        job = self.jobs.get(session)
        if job is not None and event["kind"] == "step":
            job.last_step = event.get("step")

    def _close_hub(self, session: str, state: str) -> None:
        hub = self.hubs.pop(session, None)
        if hub is not None:
            hub.close(state)
        job = self.jobs.get(session)
        if job is not None:
            job.state = state

    def _listener(self, session: str):
        loop = self.loop
        assert loop is not None

        def listen(event: dict) -> None:
            loop.call_soon_threadsafe(self._publish, session, event)
        return listen

    def _finish_unstarted(self, job: Job) -> None:
        job.writer.finish("cancelled", message=job.stop_reason)
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._close_hub, job.session, "cancelled")

    def run_job(self, job: Job) -> None:
        """Runs in the device's worker thread."""
        if job.stop.is_set():
            self._finish_unstarted(job)
            return
        from engine.errors import Cancelled, RunFailed, SpecError

        job.started = time.time()
        job.state = "running"
        writer = job.writer
        summary, message = None, None
        try:
            writer.emit("status", state="running")
            log.info("session %s: running on %s", job.session, job.device)
            result = self.jobs_module().run_job(job.spec, writer, job.stop.is_set)
            state, summary = "finished", result if isinstance(result, dict) else None
        except Cancelled as exc:
            state, message = "cancelled", job.stop_reason if job.stop.is_set() else (str(exc) or "cancelled")
        except (RunFailed, SpecError) as exc:
            state, message = "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        except BaseException as exc:  # a bug in a job must not take the engine down
            state = "failed"
            message = f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
            log.error("session %s failed:\n%s", job.session, traceback.format_exc())
        try:
            writer.finish(state, summary=summary, message=message)
        except Exception:
            log.error("session %s: could not finish:\n%s", job.session, traceback.format_exc())
        log.info("session %s: %s%s", job.session, state, f" ({message})" if message else "")
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._close_hub, job.session, state)

    def _worker(self, device: str) -> DeviceWorker:
        worker = self.workers.get(device)
        if worker is None:
            worker = self.workers[device] = DeviceWorker(self, device)
            worker.start()
        return worker

    # connections ---------------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer)
        sock = writer.get_extra_info("socket")
        try:
            uid = peer_uid(sock) if sock is not None else None
        except OSError:
            uid = None
        if uid is not None and uid != self.allowed_uid:
            log.warning("refused a connection from uid %s", uid)
            await conn.send(P.error(None, P.PERMISSION_DENIED, "this engine serves only its own user"))
            writer.close()
            return
        self.connections.add(conn)
        try:
            await conn.serve()
        finally:
            self.connections.discard(conn)
            conn.cancel_subscriptions()
            writer.close()

    # ops -----------------------------------------------------------------------------------------

    async def op_hello(self, conn: "Connection", rid: Any, protocol: int, schema: int | None = None,
                       client: str | None = None) -> dict:
        if protocol != P.PROTOCOL_VERSION or (schema is not None and schema != SCHEMA_VERSION):
            return P.error(rid, P.VERSION_MISMATCH,
                           f"engine speaks protocol {P.PROTOCOL_VERSION} / schema {SCHEMA_VERSION}, client "
                           f"sent {protocol} / {schema}; restart the engine with this mmul-workbench "
                           f"(`mmul-workbench engine stop && mmul-workbench engine start`)")
        conn.greeted = True
        return P.ok(rid, protocol=P.PROTOCOL_VERSION, schema=SCHEMA_VERSION, pid=os.getpid(),
                    started=self.started, home=str(self.paths.home))

    async def op_submit(self, conn: "Connection", rid: Any, spec: dict, name: str | None = None) -> dict:
        if self.stopping:
            return P.error(rid, P.SHUTTING_DOWN, "the engine is stopping; start it again and resubmit")
        from engine.errors import SpecError

        try:
            jobs = await asyncio.to_thread(self.jobs_module)
            normal = await asyncio.to_thread(jobs.validate, spec)
        except SpecError as exc:
            return P.error(rid, P.BAD_SPEC, str(exc).splitlines()[0] if str(exc) else "bad run spec")
        except Exception as exc:
            log.error("validate failed:\n%s", traceback.format_exc())
            return P.error(rid, P.INTERNAL, f"could not validate the spec: {type(exc).__name__}: {exc}"
                           .splitlines()[0])
        if not isinstance(normal, dict):
            return P.error(rid, P.INTERNAL, "validate() did not return a spec")
        device = await asyncio.to_thread(jobs.queue_device, normal)
        writer = await asyncio.to_thread(self.store.create, normal, name, state="queued")
        job = Job(session=writer.session_id, spec=normal, device=device, writer=writer)
        self.jobs[job.session] = job
        self.hubs[job.session] = Hub(writer)
        writer.add_listener(self._listener(job.session))
        position = self._worker(device).put(job)
        log.info("session %s: queued on %s (position %d)", job.session, device, position)
        return P.ok(rid, session=job.session, device=device, position=position, state="queued")

    async def op_cancel(self, conn: "Connection", rid: Any, session: str) -> dict:
        try:
            session = self.store.resolve(session)
        except UnknownSession as exc:
            return P.error(rid, P.UNKNOWN_SESSION, str(exc))
        job = self.jobs.get(session)
        if job is None or job.state in TERMINAL_STATES or job.writer.closed:
            state = (job.state if job else None) or self._stored_state(session)
            return P.error(rid, P.NOT_CANCELLABLE, f"session {session} is {state}, not queued or running")
        worker = self.workers.get(job.device)
        job.stop_reason = "cancelled by request"
        job.stop.set()
        if worker is not None and worker.remove(job):
            await asyncio.to_thread(self._finish_unstarted, job)
            return P.ok(rid, session=session, state="cancelled")
        return P.ok(rid, session=session, state="cancelling")

    def _stored_state(self, session: str) -> str:
        try:
            return self.store.get(session)["state"]
        except (UnknownSession, ValueError):
            return "unknown"

    async def op_list(self, conn: "Connection", rid: Any, state: str | None = None) -> dict:
        rows = await asyncio.to_thread(self.store.list, state)
        for row in rows:
            job = self.jobs.get(row["id"])
            if job is not None and job.state == "running":
                row["step"] = job.last_step
        return P.ok(rid, sessions=rows)

    async def op_status(self, conn: "Connection", rid: Any, session: str | None = None) -> dict:
        if session is None:
            devices = {}
            for name, worker in self.workers.items():
                current = worker.current
                devices[name] = {"running": current.session if current else None,
                                 "queued": [j.session for j in list(worker.queue)]}
            return P.ok(rid, pid=os.getpid(), started=self.started, uptime=time.time() - self.started,
                        home=str(self.paths.home), socket=str(self.paths.socket), log=str(self.paths.log),
                        protocol=P.PROTOCOL_VERSION, schema=SCHEMA_VERSION, devices=devices,
                        stopping=self.stopping)
        try:
            session = self.store.resolve(session)
            meta = await asyncio.to_thread(self.store.get, session)
        except UnknownSession as exc:
            return P.error(rid, P.UNKNOWN_SESSION, str(exc))
        job = self.jobs.get(session)
        info = {k: meta.get(k) for k in ("id", "name", "state", "spec", "created", "updated", "summary",
                                         "message", "last_seq")}
        if job is not None:
            info["state"] = job.state
            info["step"] = job.last_step
            info["device"] = job.device
            hub = self.hubs.get(session)
            if hub is not None:
                info["last_seq"] = hub.next_seq - 1
        return P.ok(rid, session=info)

    async def op_heartbeat(self, conn: "Connection", rid: Any) -> dict:
        return P.ok(rid, ts=time.time(), jobs=self._job_count(), stopping=self.stopping)

    async def op_shutdown(self, conn: "Connection", rid: Any) -> dict:
        running = [w.current.session for w in self.workers.values() if w.current is not None]
        queued = [j.session for w in self.workers.values() for j in list(w.queue)]
        self.request_stop()
        return P.ok(rid, pid=os.getpid(), stopping=True, running=running, queued=queued)

    async def op_unsubscribe(self, conn: "Connection", rid: Any, sub: int) -> dict:
        task = conn.subscriptions.pop(sub, None)
        if task is None:
            return P.error(rid, P.BAD_REQUEST, f"no subscription {sub} on this connection")
        task.cancel()
        return P.ok(rid, sub=sub)

    async def op_subscribe(self, conn: "Connection", rid: Any, session: str, from_seq: int = 0) -> dict:
        try:
            session = self.store.resolve(session)
        except UnknownSession as exc:
            return P.error(rid, P.UNKNOWN_SESSION, str(exc))
        sub = next(self._sub_ids)
        hub = self.hubs.get(session)
        queue: asyncio.Queue | None = None
        snapshot: list[dict] = []
        start = 0
        if hub is not None:
            # atomic on the loop: everything < start is on disk, snapshot covers [start, next_seq),
            # the queue gets everything after
            queue = asyncio.Queue()
            hub.subscribers.add(queue)
            snapshot = list(hub.buf)
            start = hub.start
        task = asyncio.get_running_loop().create_task(
            self._stream(conn, sub, session, from_seq, hub, queue, snapshot, start))
        conn.subscriptions[sub] = task
        return P.ok(rid, sub=sub, session=session)

    async def _stream(self, conn: "Connection", sub: int, session: str, from_seq: int, hub: Hub | None,
                      queue: asyncio.Queue | None, snapshot: list[dict], start: int) -> None:
        expected = from_seq

        async def send(events: list[dict]) -> None:
            nonlocal expected
            events = [e for e in events if e["seq"] >= expected]
            for i in range(0, len(events), P.EVENT_BATCH):
                chunk = events[i:i + P.EVENT_BATCH]
                if chunk[0]["seq"] != expected:
                    log.error("subscription %d to %s: gap at %d (got %d)", sub, session, expected,
                              chunk[0]["seq"])
                await conn.send({"type": "events", "sub": sub, "session": session, "events": chunk})
                expected = chunk[-1]["seq"] + 1

        try:
            if hub is not None and queue is not None:
                try:
                    if from_seq < start:
                        stored = await asyncio.to_thread(self.store.events, session, from_seq)
                        await send([e for e in stored if e["seq"] < start])
                    await send(snapshot)
                    while True:
                        item = await queue.get()
                        batch = []
                        while item is not None:
                            batch.append(item)
                            if queue.empty():
                                item = False
                                break
                            item = queue.get_nowait()
                        if batch:
                            await send(batch)
                        if item is None:
                            break
                finally:
                    hub.subscribers.discard(queue)
                state = hub.end_state or "unknown"
            else:
                state = await self._stream_stored(session, send, lambda: expected)
            await conn.send({"type": "end", "sub": sub, "session": session, "state": state})
        except asyncio.CancelledError:
            raise
        except (ConnectionError, RuntimeError):
            pass
        except UnknownSession as exc:
            await conn.send({"type": "end", "sub": sub, "session": session, "state": "deleted",
                             "message": str(exc)})
        except Exception:
            log.error("subscription %d to %s failed:\n%s", sub, session, traceback.format_exc())
        finally:
            conn.subscriptions.pop(sub, None)

    async def _stream_stored(self, session: str, send, expected) -> str:
        """Replay a stored session; follow it on disk while another live process writes it."""
        while True:
            live = await asyncio.to_thread(self.store.is_live, session)
            meta = await asyncio.to_thread(self.store.get, session)   # read before the events: they
            await send(await asyncio.to_thread(self.store.events, session, expected()))  # are a superset
            if meta["state"] in TERMINAL_STATES:
                return meta["state"]
            if not live:
                # its writer (a headless run) died: mark it interrupted, as engine start would
                try:
                    writer = await asyncio.to_thread(self.store.reopen, session)
                    await asyncio.to_thread(writer.finish, "interrupted",
                                            None, "the process writing this run died")
                    log.info("session %s: its writer died; marked interrupted", session)
                except SessionBusy:
                    pass
                continue
            await asyncio.sleep(TAIL_POLL)


class Connection:
    """One client connection: reads lines (at most MAX_LINE bytes), dispatches ops, writes replies."""

    def __init__(self, engine: Engine, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.engine = engine
        self.reader = reader
        self.writer = writer
        self.greeted = False
        self.subscriptions: dict[int, asyncio.Task] = {}
        self._write_lock = asyncio.Lock()

    async def send(self, message: dict) -> None:
        data = P.encode(message)
        async with self._write_lock:
            if self.writer.is_closing():
                raise ConnectionError("connection closed")
            self.writer.write(data)
            await self.writer.drain()

    async def lines(self):
        """Yield complete lines; a line longer than MAX_LINE yields None (and is skipped whole)."""
        buf = bytearray()
        discarding = False
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                return
            while chunk:
                nl = chunk.find(b"\n")
                if nl < 0:
                    if not discarding:
                        buf += chunk
                        if len(buf) > P.MAX_LINE:
                            buf.clear()
                            discarding = True
                    break
                head, chunk = chunk[:nl], chunk[nl + 1:]
                if discarding:
                    discarding = False
                    yield None
                    continue
                buf += head
                if len(buf) > P.MAX_LINE:
                    buf.clear()
                    yield None
                    continue
                line = bytes(buf)
                buf.clear()
                if line.strip():
                    yield line

    async def serve(self) -> None:
        try:
            async for line in self.lines():
                if line is None:
                    await self.send(P.error(None, P.TOO_LONG,
                                            f"line longer than {P.MAX_LINE} bytes; send smaller requests"))
                    continue
                await self.send(await self.dispatch(line))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    async def dispatch(self, line: bytes) -> dict:
        rid = None
        try:
            message = P.decode(line)
            rid = message.get("id") if isinstance(message.get("id"), (int, str)) else None
            rid, op, fields = P.parse_request(message)
            if op != "hello" and not self.greeted:
                return P.error(rid, P.HELLO_REQUIRED, "send hello first: "
                               '{"op": "hello", "protocol": %d}' % P.PROTOCOL_VERSION)
            handler = getattr(self.engine, f"op_{op}")
            return await handler(self, rid, **fields)
        except P.ProtocolError as exc:
            return P.error(exc.request_id if exc.request_id is not None else rid, exc.code, exc.message)
        except Exception as exc:
            log.error("request failed:\n%s", traceback.format_exc())
            return P.error(rid, P.INTERNAL, f"{type(exc).__name__}: {exc}".splitlines()[0])

    def cancel_subscriptions(self) -> None:
        for task in self.subscriptions.values():
            task.cancel()
        self.subscriptions.clear()


# --------------------------------------------------------------------------------------------------
# entry point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.server",
                                     description="mmul-workbench engine daemon (use `mmul-workbench engine start`)")
    parser.add_argument("--home", help="$MMUL_HOME to serve (default: the environment's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [%(process)d] %(message)s")
    engine = Engine(args.home)
    if not engine.acquire_lock():
        pid = _read_pid(engine.paths.pid)
        print(f"engine already running for {engine.paths.home}" + (f" (pid {pid})" if pid else ""),
              file=sys.stderr)
        return 0
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, engine.request_stop)
        await engine.serve_forever()

    try:
        asyncio.run(run())
    except Exception:
        log.error("engine crashed:\n%s", traceback.format_exc())
        engine.cleanup_files()
        return 1
    log.info("engine %d stopped", os.getpid())
    return 0


def _read_pid(path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
