"""The session store: TinyDB-format files under ``$MMUL_HOME/sessions/``, written atomically.

Layout::

    sessions/catalog.json              {"_meta": {"1": {"schema": 1}}, "sessions": {"1": row, ...}}
    sessions/<id>/session.json         {"meta": {"1": meta}, "events": {"<seq+1>": event, ...}}
    sessions/<id>/seg-000000.json      {"events": {...}}   sealed segment: events [0, S), never rewritten
    sessions/<id>/seg-000001.json      events [S, 2S), ...
    sessions/<id>/.writer.lock         flock held by the live writer (engine job or headless run)

``session.json`` holds the session's meta (spec, state, summary, how many segments are sealed) and the
open segment: the events not yet sealed. Every flush rewrites only that file (``.partial`` + fsync +
``os.replace`` + fsync of the directory), so a flush costs the same at step 100 and at step 1,000,000.
When the open segment reaches S events (10,000 by default) it is written once as a sealed segment file
and the open segment starts empty. Readers read ``session.json`` first, then the sealed segments it
names, opening every file afresh, so they always see a consistent prefix of the log and never a torn
file. All files are plain TinyDB JSON documents (``TinyDB(path, access_mode="r").table("events")``).

TinyDB itself rewrites the whole file in place on every insert and caches across processes, so this
module never inserts through TinyDB: it builds the JSON tables in memory and writes them atomically.

The catalog holds one summary row per session (spec summary, state, final metrics) so listing never
opens a session's log; it is updated under an flock by whichever process writes a session.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from sessions.paths import mmul_home
from sessions.schema import (
    ACTIVE_STATES,
    SCHEMA_VERSION,
    TERMINAL_STATES,
    SchemaMismatch,
    check_fields,
)

SEGMENT_SIZE = 10_000
FLUSH_INTERVAL = 1.0
CATALOG = "catalog.json"
SESSION_FILE = "session.json"
WRITER_LOCK = ".writer.lock"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SPEC_SUMMARY_FIELDS = ("method", "model", "data", "deletion", "device", "protocol")

__all__ = [
    "SessionStore", "SessionWriter", "UnknownSession", "SessionBusy", "SchemaMismatch",
    "atomic_write_text", "SEGMENT_SIZE", "FLUSH_INTERVAL",
]


class UnknownSession(KeyError):
    """No session with that id (one-line message)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class SessionBusy(RuntimeError):
    """The session is queued or running in a live process (cannot be deleted or reopened)."""


# --------------------------------------------------------------------------------------------------
# files


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str, *, sync_dir: bool = True) -> None:
    """Write ``path`` so that no reader ever sees a partial file: .partial + fsync + replace + dir fsync."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=_jsonable)


def _read_json(path: Path) -> Any:
    # opened afresh on every read: an open handle would keep reading a replaced inode
    with open(path, "rb") as handle:
        return json.loads(handle.read())


def _table(doc: dict, name: str, path: Path) -> dict:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: table {name!r} is not an object")
    return table


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _try_flock(path: Path) -> int | None:
    """Take an exclusive flock without waiting; returns the fd (keep it open) or None if held."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def new_session_id(now: float | None = None) -> str:
    """``YYYYMMDD-HHMMSS-xxxx`` in UTC: sorts by creation time, short enough to type."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(2)}"


def spec_summary(spec: dict) -> dict:
    return {key: spec.get(key) for key in SPEC_SUMMARY_FIELDS}


# --------------------------------------------------------------------------------------------------
# writer


class SessionWriter:
    """Appends events to one session. Thread-safe; one writer per session (it holds the session's lock).

    ``emit`` assigns seq and ts and buffers; the buffer is flushed at least every ``flush_interval``
    seconds (by the next emit or by a background thread when emits pause), at every ``phase`` and
    ``status`` event, and by ``flush()``/``finish()``. ``finish`` writes the final status event, the
    summary, flushes, updates the catalog and releases the session.
    """

    def __init__(self, store: "SessionStore", session_id: str, meta: dict, *, next_seq: int,
                 tail: list[str], lock_fd: int):
        self.store = store
        self.session_id = session_id
        self._dir = store.session_dir(session_id)
        self._meta = meta
        self._next_seq = next_seq
        self._tail = tail              # serialised '"<docid>":<event>' strings of the open segment
        self._lock_fd: int | None = lock_fd
        self._lock = threading.RLock()
        self._pending = 0
        self._last_flush = time.monotonic()
        self._listeners: list[Callable[[dict], None]] = []
        self.segment_size = int(meta.get("segment_size") or store.segment_size)
        self.flushed_seq = next_seq - 1  # every event with seq <= this is durable on disk
        self.closed = False
        self.stats = {"flushes": 0, "flush_seconds": 0.0, "flush_max": 0.0, "seals": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flush_loop, name=f"flush-{session_id}", daemon=True)
        self._thread.start()

    # public API ----------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._meta["state"]

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    @property
    def spec(self) -> dict:
        return self._meta["spec"]

    def add_listener(self, listener: Callable[[dict], None]) -> None:
        """``listener(event)`` is called for every later event, in seq order, under the writer's lock."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[dict], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def emit(self, kind: str, **fields: Any) -> dict:
        """Record one event (see sessions.schema for kinds and fields). Returns the event."""
        check_fields(kind, fields)
        if kind == "status" and fields["state"] in TERMINAL_STATES:
            raise ValueError("use writer.finish(state, ...) to end a session")
        return self._append(kind, fields)

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def finish(self, state: str, summary: dict | None = None, message: str | None = None) -> None:
        """Write the final status event (and the summary), flush, update the catalog, release."""
        if state not in TERMINAL_STATES:
            raise ValueError(f"finish state must be one of {', '.join(sorted(TERMINAL_STATES))}, not {state!r}")
        with self._lock:
            if self.closed:
                raise RuntimeError(f"session {self.session_id} is already finished")
            if summary is not None:
                self._meta["summary"] = json.loads(_dumps(summary))
            if message is not None:
                self._meta["message"] = message
            fields: dict[str, Any] = {"state": state}
            if message is not None:
                fields["message"] = message
            self._append("status", fields, final=True)
            self.closed = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._release()

    def close(self) -> None:
        """Flush and release without a final status (the session stays as it is; used by tools)."""
        with self._lock:
            if not self.closed:
                self._flush()
                self.closed = True
        self._stop.set()
        self._release()

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

    def _append(self, kind: str, fields: dict, final: bool = False) -> dict:
        with self._lock:
            if self.closed:
                raise RuntimeError(f"session {self.session_id} is finished; cannot emit {kind!r}")
            seq = self._next_seq
            event = {"v": SCHEMA_VERSION, "seq": seq, "ts": time.time(), "kind": kind, **fields}
            converted: list[bool] = []

            def default(obj: Any) -> Any:
                converted.append(True)
                return _jsonable(obj)

            text = json.dumps(event, separators=(",", ":"), default=default)
            if converted:  # numpy / torch scalars: hand listeners the plain JSON values
                event = json.loads(text)
            self._next_seq = seq + 1
            self._tail.append(f'"{seq + 1}":{text}')
            self._pending += 1
            self._meta["last_seq"] = seq
            self._meta["updated"] = event["ts"]
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception as exc:  # a broken listener never stops the run
                    print(f"session {self.session_id}: listener failed: {exc!r}", file=sys.stderr)
            status_change = kind == "status"
            if status_change:
                self._meta["state"] = fields["state"]
                if "message" in fields:
                    self._meta["message"] = fields["message"]
            if len(self._tail) >= self.segment_size:
                self._seal()
            elif status_change or kind == "phase" or final or (
                    time.monotonic() - self._last_flush >= self.store.flush_interval):
                self._flush()
            if status_change:
                self.store._update_catalog(self.session_id, self._catalog_row())
            return event

    def _seal(self) -> None:
        index = self._meta["sealed"]
        path = self._dir / f"seg-{index:06d}.json"
        atomic_write_text(path, '{"events":{' + ",".join(self._tail) + "}}", sync_dir=False)
        self._tail = []
        self._meta["sealed"] = index + 1
        self.stats["seals"] += 1
        self._flush(force=True)

    def _flush(self, force: bool = False) -> None:
        if not self._pending and not force:
            return
        started = time.perf_counter()
        text = '{"meta":{"1":' + _dumps(self._meta) + '},"events":{' + ",".join(self._tail) + "}}"
        atomic_write_text(self._dir / SESSION_FILE, text)
        self._pending = 0
        self._last_flush = time.monotonic()
        self.flushed_seq = self._next_seq - 1
        spent = time.perf_counter() - started
        self.stats["flushes"] += 1
        self.stats["flush_seconds"] += spent
        self.stats["flush_max"] = max(self.stats["flush_max"], spent)

    def _flush_loop(self) -> None:
        interval = self.store.flush_interval
        while not self._stop.wait(interval / 2):
            try:
                with self._lock:
                    if self._pending and time.monotonic() - self._last_flush >= interval:
                        self._flush()
            except Exception as exc:  # disk full etc.: report, keep trying
                print(f"session {self.session_id}: flush failed: {exc!r}", file=sys.stderr)

    def _catalog_row(self) -> dict:
        return _row_from_meta(self._meta)

    def _release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)


def _row_from_meta(meta: dict) -> dict:
    return {
        "id": meta["id"],
        "name": meta.get("name"),
        "state": meta["state"],
        **spec_summary(meta.get("spec") or {}),
        "created": meta["created"],
        "updated": meta.get("updated", meta["created"]),
        "summary": meta.get("summary"),
        "message": meta.get("message"),
        "events": meta.get("last_seq", -1) + 1,
    }


# --------------------------------------------------------------------------------------------------
# store


class SessionStore:
    """Sessions under ``<home>/sessions``. Readers never hold a file open between calls."""

    def __init__(self, home: str | os.PathLike | None = None, *, segment_size: int = SEGMENT_SIZE,
                 flush_interval: float = FLUSH_INTERVAL):
        self.home = Path(home).expanduser() if home is not None else mmul_home()
        self.root = self.home / "sessions"
        self.segment_size = int(segment_size)
        self.flush_interval = float(flush_interval)

    # paths
    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG

    def session_dir(self, session_id: str) -> Path:
        if not _ID_RE.match(session_id):
            raise UnknownSession(f"no session {session_id!r} (ids look like 20261125-115012-ab12)")
        return self.root / session_id

    # writing -------------------------------------------------------------------------------------

    def create(self, spec: dict, name: str | None = None, *, state: str = "running") -> SessionWriter:
        """Start a new session with ``spec``; its first event is ``status`` ``state`` (queued|running)."""
        if state not in ACTIVE_STATES:
            raise ValueError(f"a new session starts queued or running, not {state!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        spec = json.loads(_dumps(spec))
        while True:
            now = time.time()
            session_id = new_session_id(now)
            try:
                (self.root / session_id).mkdir()
                break
            except FileExistsError:
                continue
        sdir = self.root / session_id
        lock_fd = _try_flock(sdir / WRITER_LOCK)
        assert lock_fd is not None
        meta = {"schema": SCHEMA_VERSION, "id": session_id, "name": name, "spec": spec, "state": state,
                "created": now, "updated": now, "summary": None, "message": None, "last_seq": -1,
                "sealed": 0, "segment_size": self.segment_size}
        writer = SessionWriter(self, session_id, meta, next_seq=0, tail=[], lock_fd=lock_fd)
        writer._append("status", {"state": state})  # flushes and adds the catalog row
        return writer

    def _update_catalog(self, session_id: str, row: dict | None) -> None:
        """Insert/replace (row) or remove (None) one catalog row, under the catalog lock."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _flock(self.root / ".catalog.lock"):
            rows = self._catalog_rows()
            rows = [r for r in rows if r.get("id") != session_id]
            if row is not None:
                rows.append(row)
            self._write_catalog(rows)

    def _write_catalog(self, rows: list[dict]) -> None:
        rows.sort(key=lambda r: (r.get("created", 0), r.get("id", "")))
        body = ",".join(f'"{i}":{_dumps(r)}' for i, r in enumerate(rows, 1))
        text = '{"_meta":{"1":{"schema":' + str(SCHEMA_VERSION) + '}},"sessions":{' + body + "}}"
        atomic_write_text(self.catalog_path, text)

    def _catalog_rows(self) -> list[dict]:
        try:
            doc = _read_json(self.catalog_path)
        except FileNotFoundError:
            return []
        meta = _table(doc, "_meta", self.catalog_path).get("1", {})
        if meta.get("schema") != SCHEMA_VERSION:
            raise SchemaMismatch(
                f"{self.catalog_path} has schema {meta.get('schema')!r}; this mmul-workbench reads "
                f"schema {SCHEMA_VERSION} (use the release that wrote it, or move {self.root} aside)")
        return list(_table(doc, "sessions", self.catalog_path).values())

    # reading -------------------------------------------------------------------------------------

    def list(self, state: str | None = None) -> list[dict]:
        """Catalog rows, newest first: id, name, state, method, model, data, deletion, device,
        protocol, created, updated, summary, message, events; queued/running rows also get ``live``
        (False: its writer died; the next engine start marks it interrupted). Opens only the catalog."""
        rows = self._catalog_rows()
        if state is not None:
            rows = [r for r in rows if r.get("state") == state]
        for row in rows:  # queued/running: is a process still writing it? (a lock probe, no file read)
            if row.get("state") in ACTIVE_STATES:
                row["live"] = self.is_live(row["id"])
        rows.sort(key=lambda r: (r.get("created", 0), r.get("id", "")), reverse=True)
        return rows

    def resolve(self, ref: str) -> str:
        """An exact id, or a unique prefix or suffix of one (``ab12``), to the session id."""
        if not isinstance(ref, str) or not ref:
            raise UnknownSession("no session id given")
        if _ID_RE.match(ref) and (self.root / ref / SESSION_FILE).exists():
            return ref
        try:
            names = [p.name for p in self.root.iterdir() if p.is_dir() and _ID_RE.match(p.name)]
        except FileNotFoundError:
            names = []
        hits = sorted(n for n in names if n.startswith(ref) or n.endswith(ref))
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise UnknownSession(f"no session {ref!r}; `mmul-workbench sessions list` shows the ids")
        raise UnknownSession(f"{ref!r} matches {len(hits)} sessions ({', '.join(hits[:4])}"
                             f"{', ...' if len(hits) > 4 else ''}); give more of the id")

    def _read_session_file(self, session_id: str) -> tuple[dict, dict]:
        path = self.session_dir(session_id) / SESSION_FILE
        try:
            doc = _read_json(path)
        except FileNotFoundError:
            raise UnknownSession(f"no session {session_id!r}; `mmul-workbench sessions list` shows the ids") from None
        meta = _table(doc, "meta", path).get("1")
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: no meta record")
        if meta.get("schema") != SCHEMA_VERSION:
            raise SchemaMismatch(
                f"session {session_id} was written with schema {meta.get('schema')!r}; this mmul-workbench "
                f"reads schema {SCHEMA_VERSION} (use the release that wrote it)")
        return meta, _table(doc, "events", path)

    def get(self, session_id: str) -> dict:
        """The session's meta: id, name, spec, state, created, updated, summary, message, last_seq,
        sealed, segment_size, schema, and ``live`` (a writer process holds it)."""
        session_id = self.resolve(session_id)
        meta, _ = self._read_session_file(session_id)
        meta = dict(meta)
        meta["live"] = self.is_live(session_id)
        return meta

    def events(self, session_id: str, from_seq: int = 0) -> list[dict]:
        """Every stored event with seq >= from_seq, in order (sealed segments + the open one)."""
        session_id = self.resolve(session_id)
        meta, tail = self._read_session_file(session_id)
        size = int(meta.get("segment_size", SEGMENT_SIZE))
        sdir = self.session_dir(session_id)
        out: list[dict] = []
        first = max(0, from_seq) // size if size > 0 else 0
        for index in range(first, int(meta.get("sealed", 0))):
            path = sdir / f"seg-{index:06d}.json"
            try:
                seg = _read_json(path)
            except FileNotFoundError:
                raise UnknownSession(f"session {session_id} was deleted while being read") from None
            out.extend(_table(seg, "events", path).values())
        out.extend(tail.values())
        if from_seq > 0:
            out = [e for e in out if e["seq"] >= from_seq]
        if out and out[0].get("v") != SCHEMA_VERSION:
            raise SchemaMismatch(f"session {session_id}: event schema {out[0].get('v')!r}; "
                                 f"this mmul-workbench reads {SCHEMA_VERSION}")
        return out

    def is_live(self, session_id: str) -> bool:
        """True while a process holds the session's writer lock (queued or running somewhere)."""
        path = self.root / session_id / WRITER_LOCK
        if not path.exists():
            return False
        fd = _try_flock(path)
        if fd is None:
            return True
        os.close(fd)
        return False

    # maintenance ---------------------------------------------------------------------------------

    def delete(self, session_id: str) -> None:
        """Remove a session (refused while a live process writes it)."""
        session_id = self.resolve(session_id)
        sdir = self.session_dir(session_id)
        fd = _try_flock(sdir / WRITER_LOCK)
        if fd is None:
            raise SessionBusy(f"session {session_id} is queued or running; cancel it first "
                              f"(`mmul-workbench engine` cancels through the TUI or stop)")
        try:
            self._update_catalog(session_id, None)
            trash = self.root / f".deleted-{session_id}-{secrets.token_hex(2)}"
            os.replace(sdir, trash)  # atomic: readers see the session or nothing
            shutil.rmtree(trash, ignore_errors=True)
        finally:
            os.close(fd)

    def reopen(self, session_id: str) -> SessionWriter:
        """A writer that continues an abandoned session (its writer died); used by recovery."""
        session_id = self.resolve(session_id)
        sdir = self.session_dir(session_id)
        fd = _try_flock(sdir / WRITER_LOCK)
        if fd is None:
            raise SessionBusy(f"session {session_id} is still being written by a live process")
        try:
            meta, tail = self._read_session_file(session_id)
            tail_strings = [f'"{int(k)}":{_dumps(v)}' for k, v in tail.items()]
            next_seq = int(meta.get("last_seq", -1)) + 1
            if tail:
                next_seq = max(next_seq, max(e["seq"] for e in tail.values()) + 1)
        except BaseException:
            os.close(fd)
            raise
        return SessionWriter(self, session_id, dict(meta), next_seq=next_seq, tail=tail_strings, lock_fd=fd)

    def recover_interrupted(self, message: str = "the engine stopped while this run was active") -> list[str]:
        """Mark sessions left queued/running by a dead writer as ``interrupted``; returns their ids.

        Only sessions whose writer lock is free are touched (a live headless run keeps its lock).
        Session directories missing from the catalog (a crash between creating and cataloguing) are
        catalogued. Never resumes anything."""
        if not self.root.exists():
            return []
        rows = {r["id"]: r for r in self._catalog_rows()}
        candidates = [sid for sid, r in rows.items() if r.get("state") in ACTIVE_STATES]
        for path in self.root.iterdir():
            if path.is_dir() and _ID_RE.match(path.name) and path.name not in rows:
                candidates.append(path.name)
        recovered = []
        for sid in candidates:
            try:
                meta, _ = self._read_session_file(sid)
            except (UnknownSession, ValueError, SchemaMismatch):
                continue
            if meta.get("state") not in ACTIVE_STATES:
                if sid not in rows or rows[sid].get("state") != meta.get("state"):
                    self._update_catalog(sid, _row_from_meta(meta))
                continue
            try:
                writer = self.reopen(sid)
            except (SessionBusy, UnknownSession):
                continue
            writer.finish("interrupted", message=message)
            recovered.append(sid)
        return recovered
