"""A session brought into this home from the JSON document `sessions export` wrote (another machine's home, a
backup): written under its own id, every event with its own seq and time, ended as it ended there, so that
`replay`, `show`, `report` and the studies read it as they read it where it ran.

What it does not bring: the weights its summary names (`checkpoint`, `original_checkpoint`), which stay where the
run wrote them; an attack on it re-derives the unlearned model from its spec where they are missing. A document of
another schema, an id already here, a session that had not ended when exported, or events that do not follow each
other are refused in one line, and nothing of the session is left behind.
"""
from __future__ import annotations

import math
from typing import Any

from sessions.files import DIR_MODE, WRITER_LOCK, plain, remove_tree, try_lock
from sessions.reader import SESSION_ID
from sessions.schema import RESERVED, SCHEMA_VERSION, TERMINAL_STATES, check_fields


class NotImportable(ValueError):
    """Why a document cannot be imported, in one line."""


class EventClock:
    """The writer's clock while events are copied: each event keeps the time it was recorded at."""

    def __init__(self) -> None:
        import time

        self.now = 0.0
        self.monotonic = time.monotonic

    def time(self) -> float:
        return self.now


def checked_events(doc: dict) -> list[dict]:
    """The document's events, each checked as a writer checks it, numbered 0, 1, 2, ... and ending the session."""
    events = doc.get("events")
    if not isinstance(events, list) or not events:
        raise NotImportable("it holds no events (a `sessions export --format json` document has them all)")
    for seq, event in enumerate(events):
        if not isinstance(event, dict) or event.get("seq") != seq:
            raise NotImportable(f"its event {seq} is missing or out of order (seq {seq} expected)")
        ts = event.get("ts")
        if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts):
            raise NotImportable(f"its event {seq} has no time")
        try:
            check_fields(event.get("kind"), fields_of(event))
        except (ValueError, TypeError, KeyError) as exc:
            raise NotImportable(f"its event {seq} is outside the event schema ({exc})") from None
    last = events[-1]
    if last.get("kind") != "status" or last.get("state") != doc.get("state"):
        raise NotImportable(f"its events do not end the session as its state says ({doc.get('state')})")
    return events


def fields_of(event: dict) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key not in RESERVED}


def import_session(store, doc: Any) -> str:
    """Write exported session `doc` into `store` (a SessionStore) under its own id; returns the id. NotImportable
    (one line) when it cannot be, with nothing written."""
    if not isinstance(doc, dict) or "events" not in doc or "spec" not in doc:
        raise NotImportable("it is not a session document (`sessions export --format json` writes one)")
    if doc.get("schema") != SCHEMA_VERSION:
        raise NotImportable(f"it was written with session schema {doc.get('schema')}, and this mmul-workbench reads "
                            f"schema {SCHEMA_VERSION}")
    session_id = doc.get("id")
    if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
        raise NotImportable(f"its id {session_id!r} is not a session id (YYYYMMDD-HHMMSS-xxxx)")
    if doc.get("state") not in TERMINAL_STATES:
        raise NotImportable(f"session {session_id} was {doc.get('state')} when exported; export it again once it has "
                            "ended")
    events = checked_events(doc)
    store.ensure_root()
    directory = store.session_dir(session_id)
    try:
        directory.mkdir(mode=DIR_MODE)
    except FileExistsError:
        raise NotImportable(f"session {session_id} is already in this home ({directory})") from None
    lock_fd = try_lock(directory / WRITER_LOCK)
    if lock_fd is None:
        remove_tree(directory)
        raise NotImportable(f"session {session_id} could not be locked for writing; try again")
    clock = EventClock()
    clock.now = events[0]["ts"]
    meta = {"schema": SCHEMA_VERSION, "id": session_id, "name": doc.get("name"), "spec": plain(doc["spec"]),
            "state": events[0].get("state", "running"), "created": doc.get("created") or events[0]["ts"],
            "updated": events[0]["ts"], "summary": None, "message": None, "last_seq": -1, "sealed": 0,
            "segment_size": store.segment_size}
    writer = store.writer_for(meta, lock_fd, clock)
    try:
        for event in events[:-1]:
            clock.now = event["ts"]
            writer.emit(event["kind"], **fields_of(event))
        clock.now = events[-1]["ts"]
        writer.finish(doc["state"], summary=doc.get("summary"), message=doc.get("message"), ended=doc.get("ended"))
    except BaseException:
        writer.abandon()
        remove_tree(directory)
        store.forget(session_id)
        raise
    return session_id
