"""Data the engine read while checking a spec, kept for the job that follows so real files are read once.

`engine.preflight` reads real-format data to refuse malformed records before a session exists; the job
then asks `load_data` for the same reference. One slot is kept (the last data checked): it is handed over
only while the files' fingerprint is unchanged, and only once.
"""
from __future__ import annotations

import threading

from engine.data.fingerprint import data_fingerprint

_slot: dict[str, tuple[str, object]] = {}
_lock = threading.Lock()


def remember(ref: str, data) -> None:
    with _lock:
        _slot.clear()
        _slot[ref] = (data_fingerprint(ref), data)


def take(ref: str):
    """The data checked for `ref` when its files have not changed since; else None."""
    with _lock:
        held = _slot.pop(ref, None)
    if held is None or held[0] != data_fingerprint(ref):
        return None
    return held[1]
