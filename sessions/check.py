"""``sessions check [--repair]``: verify every session file and the catalog, and repair what can be.

A check reads every file of every session (schema, event records, sequence continuity across the
sealed segments and the open one), compares the catalog with what the files say, and lists stale
``.partial`` files. ``repair`` then moves every damaged session aside into ``sessions/.quarantine/``
(never deleted; a ``<id>.reason`` note says why), removes the stale files and rebuilds the catalog from
the session files (a damaged catalog is moved aside first). Sessions a live process writes are never
touched. A session still queued or running whose writer is gone (a headless run killed with SIGKILL, a
machine that lost power) is listed as ``abandoned``; ``repair`` marks it ``interrupted``, as the next
``engine start`` would (sessions.recovery), for a user who only runs headless.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sessions.catalog import CatalogDamaged, catalog_row, quarantine, read_rows
from sessions.errors import SessionDamaged, UnknownSession
from sessions.recovery import clean_stale, recover, stale_files
from sessions.schema import ACTIVE_STATES, SchemaMismatch, check_event
from sessions.store import SessionStore

CATALOG_FIELDS = ("state", "summary", "events")
ABANDONED = "its writer stopped without ending it (marked by `sessions check --repair`)"


@dataclass
class Report:
    """What a check found (and, with ``repaired``, what the repair did)."""

    sessions: int = 0                                   # session entries looked at
    healthy: list[str] = field(default_factory=list)
    live: list[str] = field(default_factory=list)       # written by a live process: not checked
    damaged: list[dict] = field(default_factory=list)   # {"id", "reason", "moved_to"?}
    other_schema: list[str] = field(default_factory=list)
    catalog: str | None = None                          # what is wrong with the catalog, or None
    catalog_kept: str | None = None                     # where a damaged catalog was moved
    stale: list[str] = field(default_factory=list)      # stale files found (removed when repaired)
    abandoned: list[str] = field(default_factory=list)  # queued or running, no live writer (interrupted when repaired)
    unmarked: list[dict] = field(default_factory=list)  # {"id", "reason"}: abandoned ones a full disk kept unmarked
    off: list[dict] = field(default_factory=list)       # {"id", "what"}: readable, with fields outside the schema
    repaired: bool = False

    @property
    def problems(self) -> int:
        return len(self.damaged) + (self.catalog is not None) + len(self.stale) + len(self.abandoned)

    def document(self) -> dict:
        return {"sessions": self.sessions, "healthy": len(self.healthy), "live": self.live,
                "damaged": self.damaged, "other_schema": self.other_schema,
                "catalog": {"ok": self.catalog is None, "problem": self.catalog, "kept": self.catalog_kept},
                "stale": self.stale, "abandoned": self.abandoned, "off": self.off, "problems": self.problems,
                "unmarked": self.unmarked, "repaired": self.repaired}


def verify_session(store: SessionStore, session_id: str) -> list[str]:
    """Read every file of a session and check every event; SessionDamaged says what makes it unreadable. Returns
    what is off in a session that still reads (an event's fields outside the schema, a summary that is no object):
    the commands show such a session, so a repair must not move it aside."""
    meta = store.read_meta(session_id, mark=False)
    events = store.events(session_id)
    off = []
    for event in events:
        try:
            check_event(event)
        except SchemaMismatch as exc:
            raise SessionDamaged(session_id, f"event {event.get('seq')} is invalid ({exc})") from None
        except ValueError as exc:
            off.append(f"event {event.get('seq')} is outside the schema ({exc})")
    summary = meta.get("summary")
    if summary is not None and not (isinstance(summary, dict) and isinstance(summary.get("metrics", {}), dict)):
        off.append("its summary is not an object with a metrics object")
    last = events[-1]["seq"] if events else -1
    if events and events[0]["seq"] != 0:
        raise SessionDamaged(session_id, f"its events start at seq {events[0]['seq']}, not 0")
    if last != meta.get("last_seq", -1):
        raise SessionDamaged(session_id, f"session.json names {meta.get('last_seq', -1) + 1} events; "
                                         f"its files hold {last + 1}")
    return off


def check(store: SessionStore, repair: bool = False) -> Report:
    """Check the whole store; with ``repair``, quarantine damaged sessions, remove stale files and
    rebuild the catalog. Returns the report."""
    report = Report()
    truth: dict[str, dict] = {}
    for sid in store.session_ids():
        report.sessions += 1
        try:
            if store.is_live(sid):
                report.live.append(sid)
                continue
            off = verify_session(store, sid)
            truth[sid] = catalog_row(store.read_meta(sid, mark=False))
            if off:
                report.off.append({"id": sid, "what": off})
            else:
                report.healthy.append(sid)
            if truth[sid].get("state") in ACTIVE_STATES:
                report.abandoned.append(sid)
        except SessionDamaged as exc:
            report.damaged.append({"id": sid, "reason": exc.reason})
        except SchemaMismatch:
            report.other_schema.append(sid)
        except UnknownSession:
            continue
    report.catalog = catalog_problem(store, truth, report)
    report.stale = [str(p) for p in stale_files(store)]
    if repair and report.problems:
        for entry in report.damaged:
            moved = quarantine(store.root, store.root / entry["id"], entry["id"], entry["reason"])
            entry["moved_to"] = str(moved)
        if report.abandoned:
            report.unmarked = [{"id": sid, "reason": why} for sid, why in recover(store, ABANDONED).unmarked]
        clean_stale(store)
        _, kept = store.rebuild_catalog()
        report.catalog_kept = str(kept) if kept else None
        report.repaired = not report.unmarked   # a session the full disk kept from marking is not repaired
    return report


def catalog_problem(store: SessionStore, truth: dict[str, dict], report: Report) -> str | None:
    """What is wrong with the catalog (unreadable, or out of date with the files), or None."""
    try:
        rows = {r["id"]: r for r in read_rows(store.catalog_path)}
    except CatalogDamaged as exc:
        return exc.reason
    except SchemaMismatch as exc:
        return str(exc)
    known = set(truth) | set(report.live) | {d["id"] for d in report.damaged} | set(report.other_schema)
    missing = [sid for sid in known if sid not in rows]
    gone = [sid for sid in rows if sid not in known]
    stale = [sid for sid, row in truth.items()
             if sid in rows and any(rows[sid].get(k) != row.get(k) for k in CATALOG_FIELDS)]
    if not (missing or gone or stale):
        return None
    parts = [f"{len(missing)} session(s) missing"] if missing else []
    parts += [f"{len(gone)} row(s) of removed sessions"] if gone else []
    parts += [f"{len(stale)} row(s) out of date"] if stale else []
    return "out of date with the session files: " + ", ".join(parts)

