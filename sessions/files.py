"""The file primitives of the session store: atomic writes, fresh reads, locks, file names.

On-disk layout under ``$MMUL_HOME/sessions/``::

    catalog.json              {"_meta": {"1": {"schema": 1}}, "sessions": {"1": row, ...}}
    <id>/session.json         {"meta": {"1": meta}, "events": {"<seq+1>": event, ...}}
    <id>/seg-000000.json      {"events": {...}}   sealed segment: events [0, S), never rewritten
    <id>/seg-000001.json      events [S, 2S), ...
    <id>/.writer.lock         flock held by the live writer (engine job or headless run)

All files are plain TinyDB JSON documents (``TinyDB(path, access_mode="r").table("events")``), but
TinyDB never writes them: it rewrites a whole file in place on every insert and caches across
processes. Writers build the JSON text in memory and write it with ``atomic_write_text``
(``NAME.json.partial`` + fsync + ``os.replace`` + fsync of the directory), so no reader ever sees a
torn file; readers open every file afresh (``read_json``), since an open handle would keep reading
a replaced inode. Lock files are private to the user (mode 0600).
"""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

SESSION_FILE = "session.json"
WRITER_LOCK = ".writer.lock"
LOCK_MODE = 0o600


def segment_name(index: int) -> str:
    """The file name of sealed segment ``index`` (``seg-000000.json``, ...)."""
    return f"seg-{index:06d}.json"


def _fsync_dir(path: Path) -> None:
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
        _fsync_dir(path.parent)


def jsonable(obj: Any) -> Any:
    """``json.dumps``'s ``default``: numpy / torch scalars and arrays as plain values, else a string."""
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def dumps(obj: Any) -> str:
    """Compact JSON text, with ``jsonable`` for what JSON has no type for."""
    return json.dumps(obj, separators=(",", ":"), default=jsonable)


def read_json(path: Path) -> Any:
    """The JSON document at ``path``, opened afresh (never a handle kept from an earlier read)."""
    with open(path, "rb") as handle:
        return json.loads(handle.read())


def table(doc: dict, name: str, path: Path) -> dict:
    """TinyDB table ``name`` of a document read from ``path``: ``{doc_id: record}``."""
    records = doc.get(name, {})
    if not isinstance(records, dict):
        raise ValueError(f"{path}: table {name!r} is not an object")
    return records


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if missing) for the ``with`` block; waits for it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def try_lock(path: Path) -> int | None:
    """Take an exclusive flock without waiting; returns the fd (keep it open) or None if held."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd
