"""The session store: creating sessions, the catalog, listing, deleting and reopening.

Sessions live under ``$MMUL_HOME/sessions/`` in the layout ``sessions.files`` describes; a
``SessionWriter`` (``sessions.writer``), made by ``create``, writes one; reading is
``sessions.reader``'s. The catalog (``sessions.catalog``) holds one summary row per session so
listing never opens a session's log; it is updated under an flock by whichever process changes a
session (its writer reports every status change here).

A session that turns out damaged when read gets a ``damaged`` catalog row (listed as such, still
deletable; ``sessions check --repair`` moves it aside). A damaged catalog is moved aside and rebuilt
from the session files by the first call that needs it; ``notices`` says so, for the caller to show.
"""
from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from sessions.catalog import (
    CATALOG,
    CATALOG_LOCK,
    DAMAGED,
    CatalogDamaged,
    catalog_row,
    damaged_row,
    quarantine,
    read_rows,
    write_rows,
)
from sessions.errors import SessionBusy, SessionDamaged, UnknownSession
from sessions.files import (DIR_MODE, WRITER_LOCK, describe_error, dumps, locked, plain, private_dir, remove_tree,
                            try_lock)
from sessions.reader import SessionReader
from sessions.resuming import copy_events, point_dirs, point_events
from sessions.schema import ACTIVE_STATES, SCHEMA_VERSION, SchemaMismatch
from sessions.writer import FLUSH_INTERVAL, SEGMENT_SIZE, Clock, SessionWriter

__all__ = ["SessionBusy", "SessionDamaged", "SessionStore", "UnknownSession", "new_session_id"]

TRASH_PREFIX = ".deleted-"


def busy_message(session_id: str) -> str:
    """Why a live session cannot be deleted, and the three ways to stop it first."""
    return (f"session {session_id} is queued or running; cancel it first (ctrl+k in its monitor, `mmul-workbench "
            f"engine cancel {session_id}`, or Ctrl-C where a headless run runs)")


def new_session_id(now: float) -> str:
    """``YYYYMMDD-HHMMSS-xxxx`` in UTC: sorts by creation time, short enough to type."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}-{secrets.token_hex(2)}"


class SessionStore(SessionReader):
    """Sessions under ``<home>/sessions``. Readers never hold a file open between calls.

    ``clock`` (the ``time`` module unless a test gives its own) stamps creation times and the
    events of the writers this store makes, and drives their flush cadence. ``notices`` collects
    one-line messages about repairs made on the way (a catalog rebuilt)."""

    def __init__(self, home: str | os.PathLike | None = None, *, segment_size: int = SEGMENT_SIZE,
                 flush_interval: float = FLUSH_INTERVAL, clock: Clock | None = None):
        super().__init__(home)
        self.segment_size = int(segment_size)
        self.flush_interval = float(flush_interval)
        self.clock: Clock = clock if clock is not None else time
        self.notices: list[str] = []

    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG

    def ensure_root(self) -> None:
        """``sessions/`` as a 0700 directory (tightened when an older release made it 0755); a missing
        ``$MMUL_HOME`` is created 0700 (an existing one is the operator's to set)."""
        self.home.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        private_dir(self.root)

    # writing -------------------------------------------------------------------------------------

    def create(self, spec: dict, name: str | None = None, *, state: str = "running") -> SessionWriter:
        """Start a new session with ``spec``; its first event is ``status`` ``state`` (queued|running).
        When it cannot be started (a disk error), nothing of it is left behind."""
        if state not in ACTIVE_STATES:
            raise ValueError(f"a new session starts queued or running, not {state!r}")
        self.ensure_root()
        spec = plain(spec)
        while True:
            now = self.clock.time()
            session_id = new_session_id(now)
            try:
                (self.root / session_id).mkdir(mode=DIR_MODE)
                break
            except FileExistsError:
                continue
        lock_fd = try_lock(self.root / session_id / WRITER_LOCK)
        if lock_fd is None:  # a directory made a moment ago, held past a probe's patience: never ours to write
            remove_tree(self.root / session_id)
            raise OSError(f"session {session_id} could not be locked for writing; try again")
        meta = {"schema": SCHEMA_VERSION, "id": session_id, "name": name, "spec": spec, "state": state,
                "created": now, "updated": now, "summary": None, "message": None, "last_seq": -1,
                "sealed": 0, "segment_size": self.segment_size}
        writer = self._writer(meta, next_seq=0, tail=[], lock_fd=lock_fd)
        try:
            writer.emit("status", state=state)  # flushes and adds the catalog row
            if spec.get("resumes"):  # a resumed run: the old session's events up to its resume point first
                copy_events(writer, point_events(self, spec["resumes"]["session"], spec["resumes"]["request"]))
                # on disk before anyone follows the session: a follower reads what is written, then hears what comes
                # (the copied tail after the last phase event waited half a second, and a follower missed it)
                writer.flush()
        except BaseException:
            writer.abandon()
            remove_tree(self.root / session_id)
            raise
        return writer

    def _writer(self, meta: dict, *, next_seq: int, tail: list[str], lock_fd: int) -> SessionWriter:
        return SessionWriter(self.session_dir(meta["id"]), meta, next_seq=next_seq, tail=tail,
                             lock_fd=lock_fd, on_status=self.catalog_put, flush_interval=self.flush_interval,
                             clock=self.clock)

    def staging_dir(self, name: str) -> Path:
        """A hidden directory beside the sessions, for one being put together (an import): named as a deleted
        session's leftovers are, so that recovery removes it if the process dies before it is moved into place."""
        return self.root / f"{TRASH_PREFIX}{name}"

    def staged_writer(self, directory: Path, meta: dict, lock_fd: int, clock: Clock) -> SessionWriter:
        """A writer of session `meta` in `directory` (made and locked by the caller, a `staging_dir`), timed by
        `clock` (sessions.importing: each copied event keeps its own time). It lists nothing in the catalog: the
        caller does, once the session is in its place."""
        return SessionWriter(directory, meta, next_seq=0, tail=[], lock_fd=lock_fd, on_status=lambda meta: None,
                             flush_interval=self.flush_interval, clock=clock)

    # the catalog ---------------------------------------------------------------------------------

    def catalog_put(self, meta: dict) -> None:
        """Insert or replace the catalog row of the session whose meta this is."""
        self._update_catalog(meta["id"], catalog_row(meta))

    def _update_catalog(self, session_id: str, row: dict | None) -> None:
        """Insert/replace (row) or remove (None) one catalog row, under the catalog lock."""
        self.ensure_root()
        with locked(self.root / CATALOG_LOCK):
            rows = [r for r in self._rows_locked() if r.get("id") != session_id]
            if row is not None:
                rows.append(row)
            write_rows(self.catalog_path, rows)

    def _rows_locked(self) -> list[dict]:
        try:
            rows = read_rows(self.catalog_path)
        except CatalogDamaged as exc:
            return self._rebuild_locked(exc.reason)[0]
        if not rows and (held := self.session_ids()):
            return self._rebuild_locked(f"it was missing or empty while {len(held)} session folder(s) exist")[0]
        return rows

    def catalog_rows(self) -> list[dict]:
        """The catalog's rows; a damaged catalog is moved aside and rebuilt from the session files, and so is a
        missing or empty one beside session folders (restored from an old backup, deleted by hand): it listed
        "no sessions yet" and left every name unresolvable, where `sessions check` found them all."""
        try:
            rows = read_rows(self.catalog_path)
            if rows or not self.session_ids():
                return rows
        except CatalogDamaged:
            pass
        self.ensure_root()
        with locked(self.root / CATALOG_LOCK):  # another process may have rebuilt it meanwhile
            return self._rows_locked()

    def _rebuild_locked(self, reason: str | None) -> tuple[list[dict], Path | None]:
        kept = None
        if reason is not None and os.path.lexists(self.catalog_path):
            kept = quarantine(self.root, self.catalog_path, f"catalog-{time.strftime('%Y%m%d-%H%M%S')}.json",
                              f"damaged catalog: {reason}")
        rows = self.scan()
        write_rows(self.catalog_path, rows)
        if reason is not None:
            self.notices.append(f"the session catalog was damaged ({reason}); rebuilt it from {len(rows)} "
                                f"session(s)" + (f"; the damaged copy is at {kept}" if kept else ""))
        return rows, kept

    def rebuild_catalog(self) -> tuple[list[dict], Path | None]:
        """Write the catalog afresh from the session files (a damaged one is moved aside first);
        returns its rows and where the damaged one went (None when it was readable)."""
        self.ensure_root()
        with locked(self.root / CATALOG_LOCK):
            try:
                read_rows(self.catalog_path)
                reason = None
            except CatalogDamaged as exc:
                reason = exc.reason
            return self._rebuild_locked(reason)

    def scan(self) -> list[dict]:
        """A catalog row for every session directory, read from its files (damaged ones as such)."""
        rows = []
        for sid in self.session_ids():
            try:
                rows.append(catalog_row(self.read_meta(sid, mark=False)))
            except SessionDamaged as exc:
                rows.append(damaged_row(sid, exc.reason))
            except (UnknownSession, SchemaMismatch):
                continue
        return rows

    def _record_damage(self, session_id: str, reason: str) -> None:
        """Mark a session that cannot be read ``damaged`` in the catalog (best effort: never raises)."""
        try:
            if self.live_or_unknown(session_id):
                return
            row = next((r for r in self.catalog_rows() if r.get("id") == session_id), None)
            if row is not None and row.get("state") == DAMAGED and row.get("message") == reason:
                return
            self._update_catalog(session_id, damaged_row(session_id, reason, row))
        except (OSError, ValueError):
            pass

    def named_rows(self) -> list[dict]:
        """The catalog's rows, whose names ``resolve`` matches; none when the catalog cannot be read (ids
        still resolve without it)."""
        try:
            return self.catalog_rows()
        except (SchemaMismatch, OSError):
            return []

    # listing -------------------------------------------------------------------------------------

    def list(self, state: str | None = None) -> list[dict]:
        """Catalog rows, newest first: id, name, state, method, model, data, deletion, device,
        protocol, created, updated, summary, message, events; queued/running rows also get ``live``
        (False: its writer died; the next engine start marks it interrupted; its ``updated`` is then its
        last write, read from its file). A session whose directory
        is gone or cannot be read is listed ``damaged`` with the reason. Opens only the catalog."""
        rows = self.catalog_rows()
        for row in rows:
            problem = self.entry_problem(row["id"])
            if problem is None and row.get("state") in ACTIVE_STATES:
                try:
                    row["live"] = self.is_live(row["id"])
                    if not row["live"]:  # the catalog's `updated` is its last status: its file has its last write
                        row["updated"] = self._read_session_file(row["id"])[0].get("updated", row["updated"])
                except SessionDamaged as exc:
                    problem = exc.reason
            if problem is not None:
                row.update(damaged_row(row["id"], problem, row))
                row.pop("live", None)
        if state is not None:
            rows = [r for r in rows if r.get("state") == state]
        rows.sort(key=lambda r: (r.get("created") or 0, r.get("id", "")), reverse=True)
        return rows

    # maintenance ---------------------------------------------------------------------------------

    def delete(self, session_id: str) -> None:
        """Remove a session (refused while a live process writes it); a damaged one is removed too."""
        session_id = self.resolve(session_id)
        sdir = self.session_dir(session_id)
        try:  # a run of K requests may have left resume points: of no use without its session's events
            points = point_dirs(self, session_id, self.read_meta(session_id, mark=False).get("spec") or {})
        except Exception:  # a damaged session: its points, if any, where this process's cache keeps them
            points = point_dirs(self, session_id, {})
        try:
            fd = try_lock(sdir / WRITER_LOCK)
        except OSError:
            fd = None  # an unreadable or broken directory: no writer can be using it either
        else:
            if fd is None and sdir.is_dir():
                raise SessionBusy(busy_message(session_id))
        try:
            self._update_catalog(session_id, None)
            trash = self.root / f"{TRASH_PREFIX}{session_id}-{secrets.token_hex(2)}"
            os.replace(sdir, trash)  # atomic: readers see the session or nothing
            remove_tree(trash)
            for point in points:
                remove_tree(point)
        finally:
            if fd is not None:
                os.close(fd)

    def reopen(self, session_id: str) -> SessionWriter:
        """A writer that continues an abandoned session (its writer died); used by recovery."""
        session_id = self.resolve(session_id)
        path = self.session_dir(session_id) / WRITER_LOCK
        try:
            fd = try_lock(path)
        except OSError as exc:
            raise SessionDamaged(session_id, describe_error(exc, path.parent)) from None
        if fd is None:
            raise SessionBusy(f"session {session_id} is still being written by a live process")
        try:
            meta, tail = self._read_session_file(session_id)
            tail_strings = [f'"{int(k)}":{dumps(v)}' for k, v in tail.items()]
            next_seq = int(meta.get("last_seq", -1)) + 1
            if tail:
                next_seq = max(next_seq, max(e["seq"] for e in tail.values()) + 1)
        except (SessionDamaged, SchemaMismatch, UnknownSession):
            os.close(fd)
            raise
        except (TypeError, KeyError, AttributeError, ValueError):
            os.close(fd)
            raise SessionDamaged(session_id, "session.json holds a malformed event") from None
        except BaseException:
            os.close(fd)
            raise
        return self._writer(dict(meta), next_seq=next_seq, tail=tail_strings, lock_fd=fd)
