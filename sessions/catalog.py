"""The catalog: one summary row per session, so listing never opens a session's log.

``catalog.json`` is a TinyDB document ``{"_meta": {"1": {"schema": 1}}, "sessions": {"1": row, ...}}``,
rewritten atomically under an flock (``.catalog.lock``) by whichever process changes a session. It is a
cache of what the session files say: when it cannot be read (truncated, not JSON, a directory, the
wrong shape) the store moves it aside into ``sessions/.quarantine/`` and rebuilds it from the session
files. A catalog of another schema version is not damage: it is refused with both versions named.

A session whose files cannot be read has a row with state ``damaged`` and the reason as its message;
``damaged`` is a catalog state only (no event ever carries it).
"""
from __future__ import annotations

import calendar
import os
import re
import secrets
import time
from pathlib import Path

from sessions.files import DIR_MODE, atomic_write_text, describe_error, dumps, private_dir, read_json
from sessions.schema import SCHEMA_VERSION, STATES, SchemaMismatch

CATALOG = "catalog.json"
CATALOG_LOCK = ".catalog.lock"
QUARANTINE = ".quarantine"
DAMAGED = "damaged"
# kind (run or pulse), requests, forget and granularity: the home tells a request run and a PULSE run apart in its
# row, and what a PULSE run forgot (its people, or their facts)
SPEC_SUMMARY_FIELDS = ("method", "model", "data", "deletion", "device", "protocol", "kind", "requests", "forget",
                       "granularity", "resumes")  # resumes: the session a resumed run goes on from
_ID_TIME = re.compile(r"^(\d{8}-\d{6})-")
# per-example and per-unit fields of a run's summary (one number per Df example or unit; `df_scores`: sessions
# written before forget quality went per unit): kept in the session, not in its row
PER_EXAMPLE_FIELDS = ("df_scores", "df_unit_scores", "df_unit_ids")


class CatalogDamaged(ValueError):
    """The catalog file cannot be read; ``reason`` says why in one line (never quoting its contents)."""

    def __init__(self, reason: str):
        super().__init__(f"the session catalog is damaged: {reason}")
        self.reason = reason


def catalog_row(meta: dict) -> dict:
    """The catalog row of a session, from its meta (``session.json``)."""
    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    return {
        "id": meta["id"],
        "name": meta.get("name"),
        "state": meta["state"],
        **{key: spec.get(key) for key in SPEC_SUMMARY_FIELDS},
        # a run's granularity rides in its deletion (a PULSE spec's at its top): one place in the row for both
        "granularity": spec.get("granularity") or (spec.get("deletion") or {}).get("granularity")
        if isinstance(spec.get("deletion") or {}, dict) else spec.get("granularity"),
        "created": meta["created"],
        "updated": meta.get("updated", meta["created"]),
        **({"ended": meta["ended"]} if isinstance(meta.get("ended"), (int, float)) else {}),
        "summary": listed_summary(meta.get("summary")),
        "message": meta.get("message"),
        "events": meta.get("last_seq", -1) + 1,
        # an attack's session names the session it attacked (`sessions show PARENT` lists its attacks)
        **({"parent": spec["parent"]} if isinstance(spec.get("parent"), str) else {}),
    }


def listed_summary(summary):
    """A summary as its catalog row holds it: without the per-example fields (PER_EXAMPLE_FIELDS)."""
    if not isinstance(summary, dict):
        return summary
    return {key: value for key, value in summary.items() if key not in PER_EXAMPLE_FIELDS}


def matching_sessions(ref: str, ids: list[str], rows: list[dict]) -> list[str]:
    """The session ids ``ref`` names, by the first rule that matches: the exact id; else the sessions whose
    name is exactly ``ref``; else every id that starts or ends with ``ref`` and every session whose name
    starts with it (names compared case-insensitively). One id: resolved; several: ambiguous; none: unknown.
    ``ids`` are the session directories, ``rows`` the catalog rows (for the names)."""
    if ref in ids:
        return [ref]
    names = {row["id"]: row.get("name") for row in rows if isinstance(row.get("name"), str) and row["id"] in ids}
    folded = ref.casefold()
    exact = sorted(sid for sid, name in names.items() if name.casefold() == folded)
    if exact:
        return exact
    by_id = {sid for sid in ids if sid.startswith(ref) or sid.endswith(ref)}
    by_name = {sid for sid, name in names.items() if name.casefold().startswith(folded)}
    return sorted(by_id | by_name)


def described(session_id: str, rows: list[dict]) -> str:
    """``20260101-120000-ab12 (name)``: an id with its name, when it has one, for messages."""
    name = next((row.get("name") for row in rows if row.get("id") == session_id), None)
    return f"{session_id} ({name})" if isinstance(name, str) and name else session_id


LABEL_NAME_WIDTH = 24  # a label's name is cut to this many characters (legends and table headers stay narrow)


def session_label(session_id: str, name, fallback: str = "") -> str:
    """A short label for a session on a screen: its name and the id's last 4 characters (``ft s42 ab12``);
    without a name, ``fallback`` (the method) in its place. The id's end keeps labels of same-named
    sessions apart and is what `replay ab12` takes."""
    head = name if isinstance(name, str) and name.strip() else fallback or "session"
    head = head if len(head) <= LABEL_NAME_WIDTH else head[:LABEL_NAME_WIDTH - 1] + "…"
    return f"{head} {session_id[-4:]}"


def id_time(session_id: str) -> float | None:
    """When a session was created, read from its id (``20261125-115012-ab12``), or None."""
    match = _ID_TIME.match(session_id)
    if not match:
        return None
    try:
        return float(calendar.timegm(time.strptime(match.group(1), "%Y%m%d-%H%M%S")))
    except ValueError:
        return None


def damaged_row(session_id: str, reason: str, row: dict | None = None) -> dict:
    """The row of a session that cannot be read: what the catalog knew of it, state ``damaged``."""
    created = (row or {}).get("created") or id_time(session_id) or 0.0
    base = {"id": session_id, "name": None, **{key: None for key in SPEC_SUMMARY_FIELDS},
            "created": created, "updated": created, "summary": None, "events": 0}
    return {**base, **(row or {}), "id": session_id, "state": DAMAGED, "message": reason}


def read_rows(path: Path) -> list[dict]:
    """The catalog's rows ([] when there is no catalog yet); CatalogDamaged or SchemaMismatch."""
    try:
        doc = read_json(path)
    except FileNotFoundError:
        return []
    except (OSError, ValueError, RecursionError) as exc:
        raise CatalogDamaged(describe_error(exc, path)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("_meta"), dict):
        raise CatalogDamaged(f"{path.name} is not a catalog (no _meta table)")
    meta = doc["_meta"].get("1")
    schema = meta.get("schema") if isinstance(meta, dict) else None
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise CatalogDamaged(f"{path.name} records no schema version")
    if schema != SCHEMA_VERSION:
        raise SchemaMismatch(
            f"{path} has schema {schema!r}; this mmul-workbench reads schema {SCHEMA_VERSION} (use the "
            f"release that wrote it, or move {path.parent} aside)")
    table = doc.get("sessions", {})
    if not isinstance(table, dict):
        raise CatalogDamaged(f"{path.name}: its sessions table is not an object")
    rows = list(table.values())
    for number, row in enumerate(rows, 1):
        if not _row_ok(row):
            raise CatalogDamaged(f"{path.name}: row {number} is malformed")
    return rows


def _row_ok(row) -> bool:
    return (isinstance(row, dict) and isinstance(row.get("id"), str)
            and (row.get("state") in STATES or row.get("state") == DAMAGED)
            and isinstance(row.get("created", 0), (int, float)))


def write_rows(path: Path, rows: list[dict]) -> None:
    """Write the catalog (rows sorted by creation), atomically. The caller holds the catalog lock."""
    rows = sorted(rows, key=lambda r: (r.get("created") or 0, r.get("id", "")))
    body = ",".join(f'"{i}":{dumps(r)}' for i, r in enumerate(rows, 1))
    atomic_write_text(path, '{"_meta":{"1":{"schema":' + str(SCHEMA_VERSION) + '}},"sessions":{' + body + "}}")


def quarantine(root: Path, path: Path, label: str, reason: str) -> Path:
    """Move ``path`` (a file or a whole session directory) into ``root/.quarantine/`` (never deleted),
    with a ``<name>.reason`` note beside it; returns where it went."""
    folder = private_dir(root / QUARANTINE)
    target = folder / label
    while os.path.lexists(target):
        target = folder / f"{label}-{secrets.token_hex(2)}"
    os.replace(path, target)
    if target.is_dir() and not target.is_symlink():
        try:
            os.chmod(target, DIR_MODE)  # an unreadable directory becomes readable to its owner again
        except OSError:
            pass
    atomic_write_text(folder / f"{target.name}.reason", reason + "\n", sync_dir=False)
    return target
