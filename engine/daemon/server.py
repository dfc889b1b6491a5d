"""The engine daemon's lifecycle: its files, the single-instance lock, start (recovering sessions a
dead engine left running, cleaning its stale socket), the accept loop, heartbeats, shutdown, ``main``.

Started detached by ``mmul-workbench engine start`` (or by the TUI / ``run --engine``)::

    subprocess.Popen([sys.executable, "-m", "engine.daemon"], start_new_session=True,
                     stdin=DEVNULL, stdout=log, stderr=log)

Files (see ``sessions.protocol.engine_paths``): ``$MMUL_HOME/engine/engine.lock`` (flock: one engine
per home), ``engine.pid``, ``engine.log``, and the socket ``engine/run/engine.sock`` (dir 0700,
socket 0600; peers of another uid are refused via SO_PEERCRED).

On start it marks sessions left queued/running by a dead engine as ``interrupted``. SIGTERM or the
``shutdown`` op stops it gracefully: queued jobs are cancelled, each running job is asked to stop
and ends its current step (``cancelled``), everything is flushed, then the files are removed.

The daemon imports no torch: ``engine.jobs`` is imported when the first spec is validated, and
torch only inside the job.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import signal
import socket
import struct
import sys
import time
import traceback

from engine.daemon.connection import READ_CHUNK, Connection, Limits
from engine.daemon.hub import Hub
from engine.daemon.studies import Studies
from engine.execution.queue import Queues
from sessions import protocol as P
from sessions.files import try_lock
from sessions.recovery import recover
from sessions.schema import SCHEMA_VERSION
from sessions.store import SessionStore

log = logging.getLogger("mmul.engine")

BACKLOG = 1024  # pending connections the socket queues (the kernel caps it at net.core.somaxconn)


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (Linux SO_PEERCRED), or None."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class Engine:
    """One engine serving one $MMUL_HOME (the ``ops.Daemon`` its request handlers see)."""

    def __init__(self, home: str | os.PathLike | None = None, *, allowed_uid: int | None = None,
                 limits: Limits | None = None):
        self.paths = P.engine_paths(home)
        self.limits = limits or Limits()
        self.store = SessionStore(self.paths.home)
        self.allowed_uid = os.getuid() if allowed_uid is None else allowed_uid
        self.queues = Queues(make_hub=Hub)
        self.studies = Studies(self)
        self.started = time.time()
        self.sub_ids = itertools.count(1)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: asyncio.AbstractServer | None = None
        self.stopping = False
        self.stopped: asyncio.Event | None = None
        self.connections: set[Connection] = set()
        self.damaged: list[str] = []   # sessions recovery found damaged (hello and status report them)
        # sessions a submitted resume is going on from, between its check and its own session's creation (two quick
        # submits both passed the check that a live resumer fails)
        self.resuming: set[str] = set()
        self._lock_fd: int | None = None
        self._socket_inode: tuple[int, int] | None = None
        self._log_inode: tuple[int, int] | None = None  # the log stderr writes to, when it is the engine log
        self._restore_error: str | None = None  # the last reason its files could not be made again

    def acquire_lock(self) -> bool:
        P.private_dir(self.paths.dir)
        self._lock_fd = try_lock(self.paths.lock)   # patient past a client's momentary probe
        return self._lock_fd is not None

    async def start(self) -> None:
        self.loop = self.queues.loop = asyncio.get_running_loop()
        self.stopped = asyncio.Event()
        recovery = await asyncio.to_thread(recover, self.store)
        for sid in recovery.interrupted:
            log.info("session %s was active when a previous engine died: marked interrupted", sid)
        for sid, reason in recovery.damaged:
            log.warning("session %s is damaged (%s): skipped; `mmul-workbench sessions check --repair` "
                        "moves it aside", sid, reason)
        self.damaged = [sid for sid, _ in recovery.damaged]
        if recovery.cleaned:
            log.info("removed %d stale file(s) a crash left in the session store", recovery.cleaned)
        for notice in self.store.notices:
            log.warning("%s", notice)
        self.server = await self._bind()
        self._write_pid()
        log_inode = _inode(self.paths.log)  # reopened if deleted only when stderr writes to it (not a terminal, a test)
        self._log_inode = log_inode if log_inode is not None and log_inode == _stderr_inode() else None
        self.loop.create_task(self._heartbeats())
        log.info("engine %d serving on %s (protocol %d, schema %d)", os.getpid(), self.paths.socket,
                 P.PROTOCOL_VERSION, SCHEMA_VERSION)

    async def _bind(self) -> asyncio.AbstractServer:
        P.private_dir(self.paths.socket_dir)
        if self.paths.socket.exists() or self.paths.socket.is_symlink():
            self.paths.socket.unlink()  # stale: we hold the lock, so no engine owns it
        old_umask = os.umask(0o177)
        try:
            # the reader's buffer pauses the socket past 2 x limit: a client cannot make us hold more
            server = await asyncio.start_unix_server(
                self.handle, path=str(self.paths.socket), limit=READ_CHUNK, backlog=BACKLOG)
        finally:
            os.umask(old_umask)
        os.chmod(self.paths.socket, 0o600)
        self._socket_inode = _inode(self.paths.socket)
        return server

    def _write_pid(self) -> None:
        tmp = self.paths.pid.with_name("engine.pid.partial")
        tmp.write_text(f"{os.getpid()}\n")
        os.replace(tmp, self.paths.pid)

    async def restore_files(self) -> None:
        """Put back the engine's files when something deleted them (a tmp cleaner takes a socket under /tmp, an
        `rm -r $MMUL_HOME/engine` takes them all): without its socket no client reaches this engine, so the next
        one starts a second engine, and without its lock file that second engine takes the home beside this one.
        Connections already open are kept. Should another engine hold the home by then, this one stops (its
        running jobs end their current step, cancelled and resumable) rather than serve the home twice."""
        if self.stopping:
            return
        if self._lock_fd is not None and _inode(self.paths.lock) != _inode_of_fd(self._lock_fd):
            P.private_dir(self.paths.dir)
            fd = try_lock(self.paths.lock)
            if fd is None:
                log.error("this engine's lock file %s was deleted and another engine holds the home now: stopping",
                          self.paths.lock)
                self.request_stop()
                return
            os.close(self._lock_fd)
            self._lock_fd = fd
            log.warning("the engine's lock file %s was deleted: made again", self.paths.lock)
        if self._log_inode is not None and _inode(self.paths.log) != self._log_inode:
            log_fd = os.open(self.paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
                os.dup2(log_fd, stream.fileno())
            os.close(log_fd)
            self._log_inode = _inode(self.paths.log)
            log.warning("the engine's log %s was deleted: logging to a new one", self.paths.log)
        if _inode(self.paths.socket) != self._socket_inode:
            old = self.server
            self.server = await self._bind()
            if old is not None:
                old.close()  # stops listening on the deleted path; the open connections stay
            log.warning("the engine's socket %s was deleted: listening again", self.paths.socket)
        if _inode(self.paths.pid) is None:
            self._write_pid()

    async def serve_forever(self) -> None:
        await self.start()
        assert self.stopped is not None
        await self.stopped.wait()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer, self.limits)
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
        if len(self.connections) >= self.limits.connections:
            log.warning("refused a connection: %d are open already", len(self.connections))
            try:
                await conn.send(P.error(None, P.BUSY, f"the engine serves {self.limits.connections} connections "
                                                      "at once; try again when others close"))
            except ConnectionError:
                pass
            writer.close()
            return
        self.connections.add(conn)
        try:
            await conn.serve()
        finally:
            self.connections.discard(conn)
            conn.cancel_subscriptions()
            writer.close()

    def request_stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            assert self.loop is not None
            self.loop.create_task(self._shutdown())

    async def _shutdown(self) -> None:
        log.info("shutting down: cancelling queued jobs, stopping running ones after their current step")
        if self.server is not None:
            self.server.close()
        await self.queues.close()
        await self.studies.close()  # each running study records how its cells ended
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
        """Remove this engine's socket and pid file, and only its own: an engine that stops because another took the
        home (restore_files) removed the other's, leaving it unreachable."""
        own = [path for path, mine in ((self.paths.socket, _inode(self.paths.socket) == self._socket_inode),
                                       (self.paths.pid, _read_pid(self.paths.pid) == os.getpid())) if mine]
        for path in own:
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
            try:
                await self.restore_files()
                self._restore_error = None
            except OSError as error:
                if str(error) != self._restore_error:  # once per cause, not every 2 s for as long as it lasts
                    log.error("could not restore the engine's files: %s", error)
                self._restore_error = str(error)
            line = P.encode({"type": "heartbeat", "ts": time.time(), "jobs": self.queues.active_count()})
            for conn in list(self.connections):
                try:
                    conn.heartbeat(line)
                except Exception:
                    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.daemon",
                                     description="mmul-workbench engine daemon (use `mmul-workbench engine start`)")
    parser.add_argument("--home", help="$MMUL_HOME to serve (default: the environment's)")
    args = parser.parse_args(argv)
    os.umask(0o077)  # sessions, caches and logs are the user's alone, however the engine was started
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


def _inode(path) -> tuple[int, int] | None:
    """The (device, inode) of a path, not following a link; None when nothing is there."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def _inode_of_fd(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _stderr_inode() -> tuple[int, int] | None:
    try:
        return _inode_of_fd(sys.stderr.fileno())
    except (OSError, ValueError):  # io.UnsupportedOperation is a ValueError: a captured stderr has no fd
        return None


def _read_pid(path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
