"""One parsed copy of a session file however many readers stream it at once.

A replay streams a session a file at a time (``SessionReader.event_chunks``); twenty followers of one
session would hold twenty parsed copies of the same segment. Here a file's parse is kept while anyone
holds it (a weak reference: nothing outlives its last reader) and handed to every reader of the same
version of the file: the key is the path with its inode, mtime and size, and session files are only ever
replaced whole (``atomic_write_text``), so a changed file is a new key. Readers must not modify what
they get.
"""
from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path
from typing import Callable


class SharedEvents(list):
    """A parsed file's events, shared read-only; ``meta`` is the session record when it is session.json."""

    meta: dict | None = None


_lock = threading.Lock()
_parsed: "weakref.WeakValueDictionary[tuple, SharedEvents]" = weakref.WeakValueDictionary()
_loading: dict[tuple, threading.Lock] = {}


def shared_parse(path: Path, parse: Callable[[Path], SharedEvents]) -> SharedEvents:
    """``parse(path)``, or the copy another reader holds of this version of the file (one parse at a
    time per file: a second reader waits for the first's result). OSError when ``path`` cannot be
    stat'ed (the caller's parse names the problem)."""
    info = os.stat(path)
    key = (str(path), info.st_ino, info.st_mtime_ns, info.st_size)
    with _lock:
        hit = _parsed.get(key)
        if hit is not None:
            return hit
        gate = _loading.setdefault(key, threading.Lock())
    with gate:
        with _lock:
            hit = _parsed.get(key)
        if hit is not None:
            return hit
        try:
            value = parse(path)
            with _lock:
                _parsed[key] = value
            return value
        finally:
            with _lock:
                _loading.pop(key, None)
