"""Reading sessions: resolving ids, a session's meta and events, whether a process still writes it.

Readers read ``session.json`` first, then the sealed segments it names, opening every file afresh, so
they always see a consistent prefix of the log and never a torn file, and never hold a file open
between calls. A session whose files cannot be read (truncated, overwritten, unreadable, a directory
where a file belongs, a sequence with a hole) raises ``SessionDamaged`` with the reason in one line;
``SessionReader._record_damage`` is where the store notes it in the catalog.
"""
from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from sessions.catalog import described, matching_sessions
from sessions.errors import AmbiguousSession, SessionDamaged, UnknownSession
from sessions.files import SESSION_FILE, WRITER_LOCK, describe_error, lock_is_held, read_json, segment_name
from sessions.paths import mmul_home
from sessions.schema import SCHEMA_VERSION, STATES, SchemaMismatch
from sessions.shared import SharedEvents, shared_parse
from sessions.writer import SEGMENT_SIZE

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SESSION_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}$")
# an id's last 4 characters or its start, which a command resolves to that session (engine/spec/inputs.py ID_PART,
# which --name refuses: engine.spec does not import sessions)
SESSION_ID_PART = re.compile(r"[0-9a-f]{4}|\d{8}(-\d{0,6}(-[0-9a-f]{0,4})?)?")


# a spec's fields that every reader (replay, report, attacks) takes as they were written: their JSON type
SPEC_FIELD_TYPES = {"params": dict, "deletion": dict, "attack": dict, "seed": int, "requests": int, "method": str,
                    "model": str, "data": str}


def spec_fields_typed(spec: dict) -> bool:
    """Whether each of the spec's SPEC_FIELD_TYPES fields, where present and not null, has its type (a session
    edited by hand into another type is damaged, not a traceback in whichever command reads it next)."""
    return all(spec.get(name) is None or (isinstance(spec[name], kind) and not isinstance(spec[name], bool))
               for name, kind in SPEC_FIELD_TYPES.items())


class SessionReader:
    """Read-only access to the sessions under ``<home>/sessions``."""

    def __init__(self, home: str | os.PathLike | None = None):
        self.home = Path(home).expanduser() if home is not None else mmul_home()
        self.root = self.home / "sessions"

    def session_dir(self, session_id: str) -> Path:
        if not ID_RE.match(session_id):
            raise UnknownSession(f"no session {session_id!r} (ids look like 20261125-115012-ab12)")
        return self.root / session_id

    def _record_damage(self, session_id: str, reason: str) -> None:
        """Called when a session turns out damaged (the store records it in its catalog)."""

    # which sessions ------------------------------------------------------------------------------

    def session_ids(self) -> list[str]:
        """Every session entry under the root (directories, and anything else named like a session id)."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        return sorted(e.name for e in entries if ID_RE.match(e.name)
                      and (e.is_dir(follow_symlinks=False) or SESSION_ID.match(e.name)))

    MAX_CANDIDATES = 6  # an ambiguous reference lists this many candidates on its one line

    def resolve(self, ref: str) -> str:
        """The session id that ``ref`` names: an id, a session's name, or a unique prefix of either (or
        the end of an id, ``ab12``), by ``catalog.matching_sessions``. Every command that takes a session
        resolves it here. UnknownSession (one line) when nothing matches, or when several do (it lists
        them, with their names)."""
        if not isinstance(ref, str) or not ref:
            raise UnknownSession("no session given; give its id, its name or a unique prefix of either")
        exact = self.root / ref
        if ID_RE.match(ref) and (exact.is_dir() or (SESSION_ID.match(ref) and os.path.lexists(exact))):
            return ref  # the common case (an id) opens no catalog
        rows = self.named_rows()
        hits = matching_sessions(ref, self.session_ids(), rows)
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise UnknownSession(f"no session {ref!r} (no id or name matches); `mmul-workbench sessions list` "
                                 "shows the ids and names")
        shown = ", ".join(described(sid, rows) for sid in hits[:self.MAX_CANDIDATES])
        more = f" and {len(hits) - self.MAX_CANDIDATES} more" if len(hits) > self.MAX_CANDIDATES else ""
        raise AmbiguousSession(f"{ref!r} matches {len(hits)} sessions: {shown}{more}; give more of the id or name",
                               f"{ref!r} matches {len(hits)} sessions: {shown}{more}")

    def named_rows(self) -> list[dict]:
        """Rows with each session's id and name, for ``resolve`` (the store reads them from its catalog)."""
        return []

    def entry_problem(self, session_id: str) -> str | None:
        """Why a session's directory cannot be used, from a stat (no file opened), or None."""
        path = self.root / session_id
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return "its directory is missing"
        except OSError as exc:
            return describe_error(exc, path)
        if not stat.S_ISDIR(info.st_mode):
            return f"{session_id} is not a directory"
        if not os.access(path, os.R_OK | os.X_OK):
            return "its directory cannot be read (permission denied)"
        return None

    # one session ---------------------------------------------------------------------------------

    def _damaged(self, session_id: str, reason: str, mark: bool) -> SessionDamaged:
        if mark:
            self._record_damage(session_id, reason)
        return SessionDamaged(session_id, reason)

    def _read_session_file(self, session_id: str, mark: bool = True) -> tuple[dict, dict]:
        sdir = self.session_dir(session_id)
        path = sdir / SESSION_FILE
        try:
            doc = read_json(path)
        except FileNotFoundError:
            if not os.path.lexists(sdir):
                raise UnknownSession(f"no session {session_id!r}; `mmul-workbench sessions list` shows the ids") from None
            if not sdir.is_dir():
                raise self._damaged(session_id, f"{session_id} is not a directory", mark) from None
            if self.live_or_unknown(session_id):
                raise UnknownSession(f"session {session_id} is being created; try again in a moment") from None
            raise self._damaged(session_id, "session.json is missing", mark) from None
        except (OSError, ValueError, RecursionError) as exc:
            raise self._damaged(session_id, describe_error(exc, path), mark) from None
        meta = doc.get("meta", {}).get("1") if isinstance(doc, dict) and isinstance(doc.get("meta"), dict) else None
        events = doc.get("events", {}) if isinstance(doc, dict) else None
        if not isinstance(meta, dict) or not isinstance(events, dict):
            raise self._damaged(session_id, "session.json is not a session file (no meta record)", mark)
        schema = meta.get("schema")
        if isinstance(schema, int) and not isinstance(schema, bool) and schema != SCHEMA_VERSION:
            raise SchemaMismatch(
                f"session {session_id} was written with schema {schema!r}; this mmul-workbench "
                f"reads schema {SCHEMA_VERSION} (use the release that wrote it)")
        if (schema != SCHEMA_VERSION or meta.get("id") != session_id or meta.get("state") not in STATES
                or not isinstance(meta.get("created"), (int, float))
                or not isinstance(meta.get("last_seq", -1), int) or not isinstance(meta.get("sealed", 0), int)
                or not isinstance(meta.get("spec"), dict) or not isinstance(meta.get("summary") or {}, dict)
                or not isinstance(meta.get("name") or "", str) or not spec_fields_typed(meta["spec"])):
            raise self._damaged(session_id, "session.json's meta record is incomplete or edited", mark)
        return meta, events

    def read_meta(self, session_id: str, mark: bool = True) -> dict:
        """The meta of ``session.json`` (an exact id); SessionDamaged when it cannot be read (``mark``:
        and the catalog says so)."""
        return self._read_session_file(session_id, mark)[0]

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
        out: list[dict] = []
        for chunk in self.event_chunks(session_id, from_seq):
            out.extend(chunk)
        return out

    def event_chunks(self, session_id: str, from_seq: int = 0) -> Iterator[list[dict]]:
        """The stored events with seq >= from_seq, in order, one file at a time (a sealed segment, then
        the open one), so a replay holds one segment, not the log. The chunks are shared with other
        readers of the same files (``sessions.shared``): read them, never modify them. Segments sealed
        while it streams are picked up; it ends with the open segment as it was when it got there."""
        session_id = self.resolve(session_id)
        sdir = self.session_dir(session_id)
        index: int | None = None
        previous: int | None = None
        while True:
            tail = self._shared_session_file(session_id)
            meta = tail.meta or {}
            size = int(meta.get("segment_size") or SEGMENT_SIZE)
            sealed = int(meta.get("sealed", 0))
            index = max(0, from_seq) // size if index is None else index
            if index >= sealed:
                chunk = self._checked(session_id, tail, previous, from_seq)
                if chunk:
                    yield chunk
                return
            del tail   # not held while the sealed segments stream: read afresh after them
            while index < sealed:
                chunk = self._checked(session_id, self._segment(session_id, sdir, index), previous, from_seq)
                index += 1
                if chunk:
                    previous = chunk[-1]["seq"]
                    yield chunk

    def _shared_session_file(self, session_id: str) -> SharedEvents:
        def parse(_: Path) -> SharedEvents:
            meta, tail = self._read_session_file(session_id)
            doc = SharedEvents(tail.values())
            doc.meta = meta
            return doc

        try:
            return shared_parse(self.session_dir(session_id) / SESSION_FILE, parse)
        except OSError:
            return parse(self.session_dir(session_id))   # names what is wrong (missing, unreadable, ...)

    def _segment(self, session_id: str, sdir: Path, index: int) -> SharedEvents:
        path = sdir / segment_name(index)

        def parse(_: Path) -> SharedEvents:
            try:
                seg = read_json(path)
            except FileNotFoundError:
                if not sdir.exists():
                    raise UnknownSession(f"session {session_id} was deleted while being read") from None
                raise self._damaged(session_id, f"{path.name} is missing", True) from None
            except (OSError, ValueError, RecursionError) as exc:
                raise self._damaged(session_id, describe_error(exc, path), True) from None
            if not isinstance(seg, dict) or not isinstance(seg.get("events"), dict):
                raise self._damaged(session_id, f"{path.name} is not a segment file", True)
            return SharedEvents(seg["events"].values())

        try:
            return shared_parse(path, parse)
        except OSError:
            return parse(path)

    def _checked(self, session_id: str, events: list, previous: int | None, from_seq: int) -> list[dict]:
        """``events`` (one file's) checked to follow ``previous`` without a hole, from ``from_seq`` on."""
        self._check_sequence(session_id, events)
        if events and previous is not None and events[0].get("seq") != previous + 1:
            raise self._damaged(session_id, f"its events jump from seq {previous} to {events[0].get('seq')}", True)
        if previous is None and events and events[0].get("v") != SCHEMA_VERSION:
            raise SchemaMismatch(f"session {session_id}: event schema {events[0].get('v')!r}; "
                                 f"this mmul-workbench reads {SCHEMA_VERSION}")
        if events and events[0]["seq"] < from_seq:
            return [e for e in events if e["seq"] >= from_seq]
        return events

    def _check_sequence(self, session_id: str, events: list) -> None:
        previous = None
        for event in events:
            seq = event.get("seq") if isinstance(event, dict) else None
            if isinstance(seq, bool) or not isinstance(seq, int):
                raise self._damaged(session_id, "an event record is malformed", True)
            if previous is not None and seq != previous + 1:
                raise self._damaged(session_id, f"its events jump from seq {previous} to {seq}", True)
            previous = seq

    # liveness ------------------------------------------------------------------------------------

    def is_live(self, session_id: str) -> bool:
        """True while a process holds the session's writer lock (queued or running somewhere);
        SessionDamaged when the session's directory cannot be probed."""
        path = self.root / session_id / WRITER_LOCK
        try:
            return os.path.lexists(path) and lock_is_held(path)
        except FileNotFoundError:   # the writer removed it as it finished
            return False
        except OSError as exc:
            raise SessionDamaged(session_id, describe_error(exc, path.parent)) from None

    def live_or_unknown(self, session_id: str) -> bool:
        """``is_live``, with a session that cannot be probed counted as not live."""
        try:
            return self.is_live(session_id)
        except SessionDamaged:
            return False
