"""The session writer: appends one session's events and keeps its files on disk current.

``session.json`` holds the session's meta (spec, state, summary, how many segments are sealed) and
the open segment: the events not yet sealed. Events are buffered in memory and the buffer is flushed
(``session.json`` rewritten atomically, see ``sessions.files``) at every ``phase`` and ``status`` event
and on a wall-clock cadence: no later than ``flush_interval`` seconds after the oldest event not yet on
disk (by the next emit, or by the background thread, which sleeps until exactly that moment). A flush
writes the event before anyone is told of it (listeners run after the write). So a crash (kill -9)
loses at most ``flush_interval`` plus one write: under ``MAX_LOSS`` seconds of events.
Every flush rewrites only that file, so it costs the same at step 100 and at step 1,000,000: when
the open segment reaches ``segment_size`` events it is written once as a sealed segment file
(``seg-NNNNNN.json``) and the open segment starts empty.

Writers are made by ``SessionStore.create`` (a new session) and ``SessionStore.reopen`` (recovery);
the writer holds the session's writer lock until ``finish``.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from sessions.files import SESSION_FILE, atomic_write_text, dumps, jsonable, plain, segment_name
from sessions.schema import RESERVED, SCHEMA_VERSION, TERMINAL_STATES, check_fields

SEGMENT_SIZE = 10_000   # events per sealed segment file
FLUSH_INTERVAL = 0.5    # seconds from the oldest unflushed event to its flush
MAX_LOSS = 1.0          # seconds of events a crash can lose: FLUSH_INTERVAL and one write of session.json


class Clock(Protocol):
    """Where a writer reads the time: the ``time`` module, or a test's clock."""

    def time(self) -> float: ...          # event timestamps (unix time)

    def monotonic(self) -> float: ...     # flush cadence


class SessionWriter:
    """Appends events to one session. Thread-safe; one writer per session (it holds the session's lock).

    ``emit`` assigns seq and ts and buffers; the buffer is flushed within ``flush_interval`` seconds of
    its oldest event (by the next emit or by a background thread when emits pause), at every ``phase`` and
    ``status`` event, and by ``flush()``/``finish()``. A disk without room raises ``DiskFull`` to the
    emitter (the events stay buffered; a later flush retries them). After every ``status`` event ``on_status`` gets
    the session's meta (the store updates its catalog). ``finish`` writes the final status event and
    the summary, flushes and releases the session.
    """

    def __init__(self, directory: Path, meta: dict, *, next_seq: int, tail: list[str], lock_fd: int,
                 on_status: Callable[[dict], None], flush_interval: float = FLUSH_INTERVAL,
                 clock: Clock = time):
        self.session_id: str = meta["id"]
        self._dir = Path(directory)
        self._meta = meta
        self._next_seq = next_seq
        self._tail = tail              # serialised '"<docid>":<event>' strings of the open segment
        self._lock_fd: int | None = lock_fd
        self._on_status = on_status
        self._flush_interval = float(flush_interval)
        self._clock = clock
        self._lock = threading.RLock()
        self._pending = 0
        self._first_pending = 0.0       # monotonic time of the oldest event not yet on disk
        self._wake = threading.Event()  # an event is pending, or the writer is closing
        self.flush_error: OSError | None = None  # the background flush's last failure (a full disk)
        self._listeners: list[Callable[[dict], None]] = []
        self.segment_size = int(meta.get("segment_size") or SEGMENT_SIZE)
        self.flushed_seq = next_seq - 1  # every event with seq <= this is durable on disk
        self.closed = False
        self.stats = {"flushes": 0, "flush_seconds": 0.0, "flush_max": 0.0, "seals": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flush_loop, name=f"flush-{self.session_id}",
                                        daemon=True)
        self._thread.start()

    # public API ----------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def add_listener(self, listener: Callable[[dict], None]) -> None:
        """``listener(event)`` is called for every later event, in seq order, under the writer's lock."""
        with self._lock:
            self._listeners.append(listener)

    def emit(self, kind: str, **fields: Any) -> dict:
        """Record one event (see sessions.schema for kinds and fields). Returns the event."""
        check_fields(kind, fields)
        if kind == "status" and fields["state"] in TERMINAL_STATES:
            raise ValueError("use writer.finish(state, ...) to end a session")
        return self._append(kind, fields)

    def emit_copy(self, event: dict) -> dict:
        """Record an event of another session (a resumed run's past: sessions/resuming.py) at the time it
        happened there, under this session's next seq."""
        fields = {name: value for name, value in event.items() if name not in RESERVED}
        check_fields(event["kind"], fields)
        return self._append(event["kind"], fields, at=event.get("ts"))

    def flush(self) -> None:
        with self._lock:
            self._flush()

    @property
    def last_event_time(self) -> float | None:
        """The time of the last event written (the unix time recovery says an interrupted run ended)."""
        return self._meta.get("updated")

    def finish(self, state: str, summary: dict | None = None, message: str | None = None,
               ended: float | None = None) -> None:
        """Write the final status event (and the summary), flush, report it (``on_status``), release.
        ``ended``: when the run really stopped, where that is before now (an interrupted run's last event):
        its duration (``took``) ends there, not when recovery noticed."""
        if state not in TERMINAL_STATES:
            raise ValueError(f"finish state must be one of {', '.join(sorted(TERMINAL_STATES))}, not {state!r}")
        try:
            with self._lock:
                if self.closed:
                    raise RuntimeError(f"session {self.session_id} is already finished")
                if summary is not None:
                    self._meta["summary"] = plain(summary)
                if message is not None:
                    self._meta["message"] = message
                if ended is not None:
                    self._meta["ended"] = ended
                fields: dict[str, Any] = {"state": state}
                if message is not None:
                    fields["message"] = message
                try:
                    self._append("status", fields, final=True)
                finally:  # written or not (a full disk raises DiskFull), this writer is done with the session
                    self.closed = True
        finally:
            if self.closed:
                self._release()

    def abandon(self) -> None:
        """Stop without writing anything more and release the session (the store removes a session it
        could not start)."""
        with self._lock:
            self.closed = True
        self._release()

    def _release(self) -> None:
        """Stop the flusher thread and let go of the session's lock."""
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> "SessionWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.closed:
            return
        if exc_type is None:
            self.finish("finished")
        elif issubclass(exc_type, KeyboardInterrupt) or exc_type.__name__ == "Cancelled":
            self.finish("cancelled", message=str(exc) or "cancelled")
        else:
            self.finish("failed", message=f"{exc_type.__name__}: {exc}".splitlines()[0])

    # internals -----------------------------------------------------------------------------------

    def _append(self, kind: str, fields: dict, final: bool = False, at: float | None = None) -> dict:
        with self._lock:
            if self.closed:
                raise RuntimeError(f"session {self.session_id} is finished; cannot emit {kind!r}")
            seq = self._next_seq
            event = {"v": SCHEMA_VERSION, "seq": seq, "ts": self._clock.time() if at is None else at, "kind": kind,
                     **fields}
            converted: list[bool] = []

            def default(obj: Any) -> Any:
                converted.append(True)
                return jsonable(obj)

            text = json.dumps(event, separators=(",", ":"), default=default)
            if converted:  # numpy / torch scalars: hand listeners the plain JSON values
                event = json.loads(text)
            self._next_seq = seq + 1
            self._tail.append(f'"{seq + 1}":{text}')
            if not self._pending:
                self._first_pending = self._clock.monotonic()
                self._wake.set()
            self._pending += 1
            self._meta["last_seq"] = seq
            if at is None:  # a copied event happened before this session began: its time is not this one's update
                self._meta["updated"] = event["ts"]
            status_change = kind == "status"
            if status_change:
                self._meta["state"] = fields["state"]
                if "message" in fields:
                    self._meta["message"] = fields["message"]
            if len(self._tail) >= self.segment_size:
                self._seal()
            elif status_change or kind == "phase" or final or self._flush_due():
                self._flush()
            for listener in list(self._listeners):  # after the write: what a listener is told is on disk or soon
                try:
                    listener(event)
                except Exception as exc:  # a broken listener never stops the run
                    print(f"session {self.session_id}: listener failed: {exc!r}", file=sys.stderr)
            if status_change:
                self._on_status(dict(self._meta))
            return event

    def _flush_due(self) -> bool:
        return bool(self._pending) and self._clock.monotonic() - self._first_pending >= self._flush_interval

    def _seal(self) -> None:
        index = self._meta["sealed"]
        text = '{"events":{' + ",".join(self._tail) + "}}"
        atomic_write_text(self._dir / segment_name(index), text, sync_dir=False)
        self._tail = []
        self._meta["sealed"] = index + 1
        self.stats["seals"] += 1
        self._flush(force=True)

    def _flush(self, force: bool = False) -> None:
        if not self._pending and not force:
            return
        started = time.perf_counter()
        text = '{"meta":{"1":' + dumps(self._meta) + '},"events":{' + ",".join(self._tail) + "}}"
        atomic_write_text(self._dir / SESSION_FILE, text)
        self._pending = 0
        self.flush_error = None
        self.flushed_seq = self._next_seq - 1
        spent = time.perf_counter() - started
        self.stats["flushes"] += 1
        self.stats["flush_seconds"] += spent
        self.stats["flush_max"] = max(self.stats["flush_max"], spent)

    def _flush_loop(self) -> None:
        """Flush when the oldest pending event is ``flush_interval`` old and no emit came to do it: sleep until
        an event is pending, then until exactly its deadline (a wall-clock cadence, not a polling one)."""
        while not self._stop.is_set():
            with self._lock:
                deadline = self._first_pending + self._flush_interval if self._pending else None
            if deadline is None:
                self._wake.wait()
                self._wake.clear()
                continue
            delay = deadline - self._clock.monotonic()
            if delay > 0:
                self._stop.wait(min(delay, self._flush_interval))
                continue
            try:
                with self._lock:
                    if self._flush_due():
                        self._flush()
            except OSError as exc:  # a full disk: kept for the next emit, whose own flush raises it to the job
                self.flush_error = exc
                self._stop.wait(self._flush_interval)
