"""The session store: the catalog, and reading, listing, deleting and reopening sessions.

Sessions live under ``$MMUL_HOME/sessions/`` in the layout ``sessions.files`` describes; a
``SessionWriter`` (``sessions.writer``), made by ``create``, writes one. Readers read
``session.json`` first, then the sealed segments it names, opening every file afresh, so they always
see a consistent prefix of the log and never a torn file, and never hold a file open between calls.

The catalog holds one summary row per session (spec summary, state, final metrics) so listing never
opens a session's log; it is updated under an flock by whichever process writes a session (its
writer reports every status change here).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from sessions.files import (
    SESSION_FILE,
    WRITER_LOCK,
    atomic_write_text,
    dumps,
    locked,
    read_json,
    segment_name,
    table,
    try_lock,
)
from sessions.paths import mmul_home
from sessions.schema import ACTIVE_STATES, SCHEMA_VERSION, SchemaMismatch
from sessions.writer import FLUSH_INTERVAL, SEGMENT_SIZE, Clock, SessionWriter

CATALOG = "catalog.json"
CATALOG_LOCK = ".catalog.lock"
SPEC_SUMMARY_FIELDS = ("method", "model", "data", "deletion", "device", "protocol")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class UnknownSession(KeyError):
    """No session with that id (one-line message)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class SessionBusy(RuntimeError):
    """The session is queued or running in a live process (cannot be deleted or reopened)."""


def new_session_id(now: float) -> str:
    """``YYYYMMDD-HHMMSS-xxxx`` in UTC: sorts by creation time, short enough to type."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}-{secrets.token_hex(2)}"


def _catalog_row(meta: dict) -> dict:
    spec = meta.get("spec") or {}
    return {
        "id": meta["id"],
        "name": meta.get("name"),
        "state": meta["state"],
        **{key: spec.get(key) for key in SPEC_SUMMARY_FIELDS},
        "created": meta["created"],
        "updated": meta.get("updated", meta["created"]),
        "summary": meta.get("summary"),
        "message": meta.get("message"),
        "events": meta.get("last_seq", -1) + 1,
    }


class SessionStore:
    """Sessions under ``<home>/sessions``. Readers never hold a file open between calls.

    ``clock`` (the ``time`` module unless a test gives its own) stamps creation times and the
    events of the writers this store makes, and drives their flush cadence."""

    def __init__(self, home: str | os.PathLike | None = None, *, segment_size: int = SEGMENT_SIZE,
                 flush_interval: float = FLUSH_INTERVAL, clock: Clock | None = None):
        self.home = Path(home).expanduser() if home is not None else mmul_home()
        self.root = self.home / "sessions"
        self.segment_size = int(segment_size)
        self.flush_interval = float(flush_interval)
        self.clock: Clock = clock if clock is not None else time

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
        spec = json.loads(dumps(spec))
        while True:
            now = self.clock.time()
            session_id = new_session_id(now)
            try:
                (self.root / session_id).mkdir()
                break
            except FileExistsError:
                continue
        lock_fd = try_lock(self.root / session_id / WRITER_LOCK)
        assert lock_fd is not None
        meta = {"schema": SCHEMA_VERSION, "id": session_id, "name": name, "spec": spec, "state": state,
                "created": now, "updated": now, "summary": None, "message": None, "last_seq": -1,
                "sealed": 0, "segment_size": self.segment_size}
        writer = self._writer(meta, next_seq=0, tail=[], lock_fd=lock_fd)
        writer.emit("status", state=state)  # flushes and adds the catalog row
        return writer

    def _writer(self, meta: dict, *, next_seq: int, tail: list[str], lock_fd: int) -> SessionWriter:
        return SessionWriter(self.session_dir(meta["id"]), meta, next_seq=next_seq, tail=tail,
                             lock_fd=lock_fd, on_status=self._catalog_put, flush_interval=self.flush_interval,
                             clock=self.clock)

    def _catalog_put(self, meta: dict) -> None:
        self._update_catalog(meta["id"], _catalog_row(meta))

    def _update_catalog(self, session_id: str, row: dict | None) -> None:
        """Insert/replace (row) or remove (None) one catalog row, under the catalog lock."""
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / CATALOG_LOCK):
            rows = [r for r in self._catalog_rows() if r.get("id") != session_id]
            if row is not None:
                rows.append(row)
            rows.sort(key=lambda r: (r.get("created", 0), r.get("id", "")))
            body = ",".join(f'"{i}":{dumps(r)}' for i, r in enumerate(rows, 1))
            text = '{"_meta":{"1":{"schema":' + str(SCHEMA_VERSION) + '}},"sessions":{' + body + "}}"
            atomic_write_text(self.catalog_path, text)

    def _catalog_rows(self) -> list[dict]:
        try:
            doc = read_json(self.catalog_path)
        except FileNotFoundError:
            return []
        meta = table(doc, "_meta", self.catalog_path).get("1", {})
        if meta.get("schema") != SCHEMA_VERSION:
            raise SchemaMismatch(
                f"{self.catalog_path} has schema {meta.get('schema')!r}; this mmul-workbench reads "
                f"schema {SCHEMA_VERSION} (use the release that wrote it, or move {self.root} aside)")
        return list(table(doc, "sessions", self.catalog_path).values())

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
            doc = read_json(path)
        except FileNotFoundError:
            raise UnknownSession(f"no session {session_id!r}; `mmul-workbench sessions list` shows the ids") from None
        meta = table(doc, "meta", path).get("1")
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: no meta record")
        if meta.get("schema") != SCHEMA_VERSION:
            raise SchemaMismatch(
                f"session {session_id} was written with schema {meta.get('schema')!r}; this mmul-workbench "
                f"reads schema {SCHEMA_VERSION} (use the release that wrote it)")
        return meta, table(doc, "events", path)

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
        size = int(meta.get("segment_size") or SEGMENT_SIZE)
        sdir = self.session_dir(session_id)
        out: list[dict] = []
        for index in range(max(0, from_seq) // size, int(meta.get("sealed", 0))):
            path = sdir / segment_name(index)
            try:
                seg = read_json(path)
            except FileNotFoundError:
                raise UnknownSession(f"session {session_id} was deleted while being read") from None
            out.extend(table(seg, "events", path).values())
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
        fd = try_lock(path)
        if fd is None:
            return True
        os.close(fd)
        return False

    # maintenance ---------------------------------------------------------------------------------

    def delete(self, session_id: str) -> None:
        """Remove a session (refused while a live process writes it)."""
        session_id = self.resolve(session_id)
        sdir = self.session_dir(session_id)
        fd = try_lock(sdir / WRITER_LOCK)
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
        fd = try_lock(self.session_dir(session_id) / WRITER_LOCK)
        if fd is None:
            raise SessionBusy(f"session {session_id} is still being written by a live process")
        try:
            meta, tail = self._read_session_file(session_id)
            tail_strings = [f'"{int(k)}":{dumps(v)}' for k, v in tail.items()]
            next_seq = int(meta.get("last_seq", -1)) + 1
            if tail:
                next_seq = max(next_seq, max(e["seq"] for e in tail.values()) + 1)
        except BaseException:
            os.close(fd)
            raise
        return self._writer(dict(meta), next_seq=next_seq, tail=tail_strings, lock_fd=fd)

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
                    self._catalog_put(meta)
                continue
            try:
                writer = self.reopen(sid)
            except (SessionBusy, UnknownSession):
                continue
            writer.finish("interrupted", message=message)
            recovered.append(sid)
        return recovered
