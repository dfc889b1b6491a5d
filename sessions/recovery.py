"""What an engine start does to the store: sessions a dead writer left queued or running become
``interrupted`` (never resumed on their own), damaged ones are skipped and reported, and the leftovers of a crash
(``.partial`` files of sessions no process writes, half-deleted sessions) are removed. And what asking to resume a
stopped session reads of it (`resume_spec`, for `mmul-workbench resume` and the TUI's shift+R)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from sessions.catalog import CATALOG, CATALOG_LOCK
from sessions.errors import DiskFull, SessionBusy, SessionDamaged, UnknownSession
from sessions.files import PARTIAL, describe_error, locked, remove_tree
from sessions.schema import ACTIVE_STATES, SchemaMismatch
from sessions.resuming import resume_problem, resuming_spec
from sessions.store import TRASH_PREFIX, SessionStore

INTERRUPTED = "the engine stopped while this run was active"


class Recovery(NamedTuple):
    """Sessions marked interrupted, damaged ones skipped (id, reason), stale files removed, and sessions that
    could not be marked for a full disk (id, the disk's line): healthy, not damaged."""

    interrupted: list[str]
    damaged: list[tuple[str, str]]
    cleaned: int
    unmarked: list[tuple[str, str]] = []


def recover(store: SessionStore, message: str = INTERRUPTED) -> Recovery:
    """Mark sessions left queued/running by a dead writer as ``interrupted``; skip damaged ones.

    Only sessions whose writer lock is free are touched (a live headless run keeps its lock). Session
    directories missing from the catalog (a crash between creating and cataloguing) are catalogued."""
    if not store.root.exists():
        return Recovery([], [], 0)
    rows = {r["id"]: r for r in store.catalog_rows()}
    candidates = [sid for sid, r in rows.items() if r.get("state") in ACTIVE_STATES]
    candidates += [sid for sid in store.session_ids() if sid not in rows]
    recovered, damaged, unmarked = [], [], []
    for sid in candidates:
        try:
            meta = store.read_meta(sid)
            if meta.get("state") not in ACTIVE_STATES:
                if sid not in rows or rows[sid].get("state") != meta.get("state"):
                    store.catalog_put(meta)
                continue
            interrupt(store, sid, message)
            recovered.append(sid)
        except SessionDamaged as exc:
            damaged.append((sid, exc.reason))
        except (SessionBusy, UnknownSession, SchemaMismatch):
            continue
        except DiskFull as exc:  # the session is sound; its mark waits for room (it read "damaged")
            unmarked.append((sid, str(exc)))
        except OSError as exc:  # a directory we may read but not write
            damaged.append((sid, describe_error(exc, store.root / sid)))
    return Recovery(recovered, damaged, clean_stale(store), unmarked)


def interrupt(store: SessionStore, session_id: str, message: str) -> None:
    """End a session no process writes as ``interrupted``, at the time of its last event (SessionBusy when one
    does)."""
    writer = store.reopen(session_id)
    writer.finish("interrupted", message=message, ended=writer.last_event_time)


def settled(store: SessionStore, session_id: str, record: dict) -> dict:
    """The session's record, marked interrupted first when it says queued or running but no process writes it
    (a headless run killed with -9: what an engine start and `sessions check --repair` do to it)."""
    if record.get("state") not in ACTIVE_STATES or store.is_live(session_id):
        return record
    interrupt(store, session_id, "the process that ran it is gone (found when a resume of it was asked for)")
    return store.get(session_id)


class NotResumable(ValueError):
    """Why a session cannot be resumed, in one line (the CLI's exit 2, the TUI's notice)."""


def resume_spec(store: SessionStore, session_id: str) -> dict:
    """The spec that resumes `session_id` (still to validate), for `resume` and the TUI's shift+R alike: its record
    settled first (one a dead process left running is marked interrupted), or NotResumable saying why not."""
    try:
        record = settled(store, session_id, store.get(session_id))
    except UnknownSession as error:
        raise NotResumable(error.message) from None
    except (SessionDamaged, SessionBusy, SchemaMismatch) as error:
        raise NotResumable(str(error)) from None
    except OSError as error:  # a session directory this user may read but not write
        raise NotResumable(f"session {session_id} cannot be marked interrupted here ({error.strerror}); "
                           "`mmul-workbench sessions check --repair` as its owner does it") from None
    if (problem := resume_problem(session_id, record)) is not None:
        raise NotResumable(problem)
    return resuming_spec(store, session_id, record)


def stale_files(store: SessionStore) -> list[Path]:
    """Leftovers of a crash: ``.partial`` files of sessions no process writes, half-deleted sessions
    (``.deleted-*``) and the catalog's ``.partial``."""
    if not store.root.exists():
        return []
    found = [p for p in store.root.iterdir() if p.name.startswith(TRASH_PREFIX)]
    if (store.root / (CATALOG + PARTIAL)).exists():
        found.append(store.root / (CATALOG + PARTIAL))
    for sid in store.session_ids():
        try:
            partial = [store.root / sid / n for n in os.listdir(store.root / sid) if n.endswith(PARTIAL)]
            if partial and not store.is_live(sid):
                found.extend(partial)
        except (OSError, SessionDamaged):
            continue
    return found


def clean_stale(store: SessionStore) -> int:
    """Remove ``stale_files`` (the catalog's under its lock); returns how many were removed."""
    stale = stale_files(store)
    for path in stale:
        if path.name == CATALOG + PARTIAL:
            with locked(store.root / CATALOG_LOCK):
                path.unlink(missing_ok=True)
        else:
            remove_tree(path)
    return len(stale)
