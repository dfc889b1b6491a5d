"""A session exported: its whole document as JSON (spec, status, summary, events) and its numbers as
tidy CSV rows. ``sessions export`` and the sessions home write the same files."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sessions.files import atomic_write_text
from sessions.series import CSV_COLUMNS, tidy_rows
from sessions.store import SessionStore

DOCUMENT_FIELDS = ("id", "name", "state", "created", "updated", "ended", "message", "live", "spec", "summary", "schema")


def session_document(store: SessionStore, session_id: str) -> dict:
    """The session's fields and its whole event log."""
    meta = store.get(session_id)
    return {**{key: meta.get(key) for key in DOCUMENT_FIELDS}, "events": store.events(session_id)}


def csv_text(events: list[dict]) -> str:
    """One row per number (see ``sessions.series.tidy_rows``), with a header."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    for row in tidy_rows(events):
        out.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def export_text(doc: dict, kind: str) -> str:
    """``doc`` (a session document with events) as ``kind``: "json" or "csv"."""
    return json.dumps(doc, indent=1, default=str) if kind == "json" else csv_text(doc["events"])


def write_export(doc: dict, path: Path, kind: str) -> None:
    """Write ``doc`` as ``kind`` ("json" or "csv") to ``path``, atomically."""
    atomic_write_text(path, export_text(doc, kind), sync_dir=False)


def is_export_head(kind: str):
    """Whether a file's first bytes are an export of ``kind`` (one that ``--out`` may replace)."""
    start = b'{\n "id": ' if kind == "json" else (",".join(CSV_COLUMNS) + "\n").encode()
    return lambda head: head.startswith(start)
