"""One event-stream interface for the monitor and replay: ``async for event in source``.

``StoredSource`` replays a session from the store (replay mode); ``workbench.client.LiveSource``
follows one through the engine (live mode). Both yield the session's events in seq order, each
once, and set ``state`` to the session's final state when the stream ends.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Protocol, runtime_checkable

from sessions.store import SessionStore


@runtime_checkable
class EventSource(Protocol):
    session_id: str
    live: bool
    state: str | None

    def __aiter__(self) -> AsyncIterator[dict]: ...


class StoredSource:
    """The stored events of a session, read once (in a thread, so a UI loop never blocks)."""

    live = False

    def __init__(self, session_id: str, store: SessionStore | None = None, from_seq: int = 0):
        self.store = store or SessionStore()
        self.session_id = self.store.resolve(session_id)
        self.from_seq = from_seq
        self.state: str | None = None
        self.meta: dict | None = None

    async def __aiter__(self) -> AsyncIterator[dict]:
        self.meta = await asyncio.to_thread(self.store.get, self.session_id)
        events = await asyncio.to_thread(self.store.events, self.session_id, self.from_seq)
        for event in events:
            yield event
        self.state = self.meta["state"]
