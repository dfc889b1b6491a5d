"""The monitor's event sources, in one import (the one definition of each lives elsewhere):

- ``EventSource``, ``StoredSource``, ``ListSource``: ``sessions.source`` (stdlib + the store);
- ``LiveSource``: ``workbench.client`` (it follows a session through the engine connection).

The monitor takes a source as an argument (memray's live view takes its reader the same way), so
the live monitor and ``replay`` are one screen with two sources.
"""
from __future__ import annotations

from sessions.source import EventSource, ListSource, StoredSource
from workbench.client import LiveSource

__all__ = ["EventSource", "LiveSource", "StoredSource", "ListSource"]
