"""Where the monitor's events come from: one ``EventSource`` interface, three sources.

``async for event in source`` yields a session's events (dicts, see ``sessions.schema``) in seq
order, each once; when the stream ends ``source.state`` holds the session's final state.

- ``LiveSource``   follows a session through the engine (``EngineClient.subscribe``): the stored
                   backlog, then live events, with no gap and no duplicate.
- ``StoredSource`` reads a session from the store (``SessionStore.events``), in a thread so the UI
                   loop never blocks; with ``follow=True`` it keeps polling the store until the
                   session ends (a headless run the engine does not own).
- ``ListSource``   events held in memory (tests, benchmarks).

The monitor takes a source as an argument (memray's live view takes its reader the same way), so
the live monitor and ``replay`` are one screen with two sources.
"""
from __future__ import annotations

import asyncio
import os
from typing import AsyncIterator, Iterable, Protocol, runtime_checkable

from sessions.schema import TERMINAL_STATES
from sessions.store import SessionStore

__all__ = ["EventSource", "LiveSource", "StoredSource", "ListSource"]


@runtime_checkable
class EventSource(Protocol):
    session_id: str
    live: bool
    state: str | None

    def __aiter__(self) -> AsyncIterator[dict]: ...


class StoredSource:
    """The stored events of a session (replay). ``follow`` polls for more until the session ends."""

    live = False

    def __init__(self, session_id: str, store: SessionStore | None = None, from_seq: int = 0,
                 follow: bool = False, poll_interval: float = 1.0):
        self.store = store or SessionStore()
        self.session_id = session_id
        self.from_seq = from_seq
        self.follow = follow
        self.poll_interval = poll_interval
        self.state: str | None = None
        self.meta: dict | None = None

    async def __aiter__(self) -> AsyncIterator[dict]:
        self.session_id = await asyncio.to_thread(self.store.resolve, self.session_id)
        next_seq = self.from_seq
        while True:
            self.meta = await asyncio.to_thread(self.store.get, self.session_id)
            events = await asyncio.to_thread(self.store.events, self.session_id, next_seq)
            for event in events:
                if event["seq"] >= next_seq:
                    next_seq = event["seq"] + 1
                    yield event
            state = self.meta.get("state")
            # a finished session, or one whose writer died, never grows: stop there
            if not self.follow or state in TERMINAL_STATES or not self.meta.get("live"):
                self.state = state
                return
            await asyncio.sleep(self.poll_interval)


class LiveSource:
    """A session followed live through the engine (stored backlog first, then live events)."""

    live = True

    def __init__(self, session_id: str, home: str | os.PathLike | None = None, from_seq: int = 0,
                 client=None):
        self.session_id = session_id
        self.home = home
        self.from_seq = from_seq
        self.client = client
        self.state: str | None = None

    async def __aiter__(self) -> AsyncIterator[dict]:
        from workbench.client import EngineClient

        own = self.client is None
        client = self.client or EngineClient(self.home)
        if own:
            await client.connect()
        try:
            subscription = client.subscribe(self.session_id, self.from_seq)
            async for event in subscription:
                yield event
            self.state = subscription.state
        finally:
            if own:
                await client.close()


class ListSource:
    """Events from memory. ``delay`` seconds between events (0: as fast as the loop allows);
    ``live`` says how the monitor should treat it (live: follow; not live: replay controls)."""

    def __init__(self, events: Iterable[dict], session_id: str = "memory", live: bool = False,
                 state: str = "finished", delay: float = 0.0):
        self.events = list(events)
        self.session_id = session_id
        self.live = live
        self.final_state = state
        self.state: str | None = None
        self.delay = delay

    async def __aiter__(self) -> AsyncIterator[dict]:
        for event in self.events:
            if self.delay:
                await asyncio.sleep(self.delay)
            yield event
        self.state = self.final_state
