"""A session brought into this home from the JSON document `sessions export` wrote (another machine's home, a
backup): written under its own id, every event with its own seq and time, ended as it ended there, so that
`replay`, `show`, `report` and the studies read it as they read it where it ran.

What it does not bring: the weights its summary names (`checkpoint`, `original_checkpoint`), which stay where the
run wrote them (an attack on it re-derives the unlearned model from its spec where they are missing), and its
attacks, which are sessions of their own (export and import them too). The document is checked whole first (its
shape as the reader takes it, its times, its name as `run --name` takes names, its events one after another, a
final status only at the end); the session is then written under a hidden name, read back, and only then moved to
its id and listed: a kill half-way leaves a hidden directory that the next engine start removes, never a session
that reads `running?`.
"""
from __future__ import annotations

import math
import os
import secrets
import time
from typing import Any

from sessions.files import DIR_MODE, WRITER_LOCK, plain, remove_tree, try_lock
from sessions.reader import SESSION_ID, SESSION_ID_PART, spec_fields_typed
from sessions.schema import RESERVED, SCHEMA_VERSION, TERMINAL_STATES, check_fields

# times a session can hold: from 2000 to 2200 (a time of 1e300 made `sessions list` fail for the whole home)
EARLIEST, LATEST = 946684800.0, 7258118400.0
MAX_DEPTH = 64        # a spec or summary nested deeper reads as damaged (JSON's own limit, with the file's levels)
MAX_NAME = 200        # as `run --name` takes names (engine/spec/inputs.py check_name)


class NotImportable(ValueError):
    """Why a document cannot be imported, in one line."""


class EventClock:
    """The writer's clock while events are copied: each event keeps the time it was recorded at."""

    monotonic = staticmethod(time.monotonic)   # the flush cadence keeps real time

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


def depth(value: Any) -> int:
    """How deep lists and objects nest in `value` (counted without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def a_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
        EARLIEST <= value < LATEST


def fields_of(event: dict) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key not in RESERVED}


def checked_events(doc: dict) -> list[dict]:
    """The document's events, each checked as a writer checks it, numbered 0, 1, 2, ..., at times a session can
    hold, with a final status only at the end, the state the document says."""
    events = doc.get("events")
    if not isinstance(events, list) or not events:
        raise NotImportable("it holds no events (a `sessions export --format json` document has them all)")
    for seq, event in enumerate(events):
        if not isinstance(event, dict) or event.get("seq") != seq:
            raise NotImportable(f"its event {seq} is missing or out of order (seq {seq} expected)")
        if not a_time(event.get("ts")):
            raise NotImportable(f"its event {seq} has no time between 2000 and 2200")
        if depth(event) > MAX_DEPTH:
            raise NotImportable(f"its event {seq} nests deeper than {MAX_DEPTH} levels")
        try:
            check_fields(event.get("kind"), fields_of(event))
        except (ValueError, TypeError, KeyError) as exc:
            raise NotImportable(f"its event {seq} is outside the event schema ({exc})") from None
        ended = event.get("kind") == "status" and event.get("state") in TERMINAL_STATES
        if ended and seq != len(events) - 1:
            raise NotImportable(f"its event {seq} ends the session before its last event")
    last = events[-1]
    if last.get("kind") != "status" or last.get("state") != doc.get("state"):
        raise NotImportable(f"its events do not end the session as its state says ({doc.get('state')})")
    return events


def check_document(doc: Any) -> str:
    """The id of session document `doc`, or NotImportable saying what in it this home could not read back."""
    if not isinstance(doc, dict) or "events" not in doc or "spec" not in doc:
        raise NotImportable("it is not a session document (`sessions export --format json` writes one)")
    if doc.get("schema") != SCHEMA_VERSION:
        raise NotImportable(f"it was written with session schema {doc.get('schema')}, and this mmul-workbench reads "
                            f"schema {SCHEMA_VERSION}")
    session_id = doc.get("id")
    if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
        raise NotImportable(f"its id {session_id!r:.40} is not a session id (YYYYMMDD-HHMMSS-xxxx)")
    if doc.get("state") not in TERMINAL_STATES:
        raise NotImportable(f"session {session_id} was {doc.get('state')} when exported; export it again once it has "
                            "ended")
    spec, summary, name = doc.get("spec"), doc.get("summary"), doc.get("name")
    if not isinstance(spec, dict) or not spec_fields_typed(spec) or not isinstance(summary or {}, dict):
        raise NotImportable("its spec or summary is not the record a session holds")
    if depth(spec) > MAX_DEPTH or depth(summary) > MAX_DEPTH:
        raise NotImportable(f"its spec or summary nests deeper than {MAX_DEPTH} levels")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME or "\n" in name or "\t" in name
                             or SESSION_ID.fullmatch(name.strip()) or SESSION_ID_PART.fullmatch(name.strip())):
        # a name shaped like another session's id end (`39a0`) would take over what that id resolves to
        raise NotImportable(f"its name is not one a session takes (one line of at most {MAX_NAME} characters, "
                            "not shaped like a session id or part of one)")
    for field in ("created", "ended"):
        if doc.get(field) is not None and not a_time(doc[field]):
            raise NotImportable(f"its {field} time is not between 2000 and 2200")
    return session_id


def import_session(store, doc: Any) -> str:
    """Write exported session `doc` into `store` (a SessionStore) under its own id; returns the id. NotImportable
    (one line) when it cannot be, with nothing left of it."""
    session_id = check_document(doc)
    events = checked_events(doc)
    final = store.session_dir(session_id)
    if os.path.lexists(final):
        what = ("is already in this home; nothing to import (`mmul-workbench sessions show "
                f"{session_id}` reads it; delete it first to import it again)") \
            if final.is_dir() and (final / "session.json").exists() else \
            f"cannot be written: something that is not a session is in its place ({final}); move it aside"
        raise NotImportable(f"session {session_id} {what}")
    store.ensure_root()
    staging = store.staging_dir(f"import-{session_id}-{secrets.token_hex(2)}")
    staging.mkdir(mode=DIR_MODE)
    lock_fd = try_lock(staging / WRITER_LOCK)
    if lock_fd is None:
        remove_tree(staging)
        raise NotImportable(f"session {session_id} could not be locked for writing; try again")
    clock = EventClock()
    clock.now = events[0]["ts"]
    meta = {"schema": SCHEMA_VERSION, "id": session_id, "name": doc.get("name"), "spec": plain(doc["spec"]),
            "state": events[0].get("state", "running"), "created": doc.get("created") or events[0]["ts"],
            "updated": events[0]["ts"], "summary": None, "message": None, "last_seq": -1, "sealed": 0,
            "segment_size": store.segment_size}
    writer = store.staged_writer(staging, meta, lock_fd, clock)
    try:
        for event in events[:-1]:
            clock.now = event["ts"]
            writer.emit(event["kind"], **fields_of(event))
        clock.now = events[-1]["ts"]
        writer.finish(doc["state"], summary=doc.get("summary"), ended=doc.get("ended"),
                      message=doc.get("message") if doc.get("message") is not None else events[-1].get("message"))
        os.rename(staging, final)   # a directory put there meanwhile is not replaced: ENOTEMPTY or EEXIST
    except OSError as exc:
        writer.abandon()
        remove_tree(staging)
        raise NotImportable(f"session {session_id} could not be written ({exc.strerror or exc})") from None
    except BaseException:
        writer.abandon()
        remove_tree(staging)
        raise
    try:
        store.catalog_put(store.read_meta(session_id, mark=False))   # read back as every command will read it
    except Exception as exc:
        remove_tree(final)
        raise NotImportable(f"session {session_id} does not read back ({exc})") from None
    return session_id
