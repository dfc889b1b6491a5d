"""One event-stream interface for the monitor and replay: ``async for event in source``.

An ``EventSource`` yields a session's events (dicts, see ``sessions.schema``) in seq order, each
once; when the stream ends ``source.state`` holds the session's final state. ``live`` tells a
reader how to present it (live: follow the tail; not live: replay controls).

- ``StoredSource`` (here) reads a session from the store, in a thread so a UI loop never blocks;
  with ``follow=True`` it keeps polling the store until the session ends (a headless run that the
  engine does not own).
- ``workbench.sources.LiveSource`` follows a session through the engine (``subscribe``): the stored
  backlog, then live events, with no gap and no duplicate.
- ``ListSource`` (here) yields events held in memory (tests, benchmarks).

Stdlib and ``sessions`` only: the CLI, the engine and the TUI can all import it.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Iterable, Protocol, runtime_checkable

from sessions.schema import TERMINAL_STATES
from sessions.store import SessionStore

__all__ = ["EventSource", "StoredSource", "ListSource"]


@runtime_checkable
class EventSource(Protocol):
    session_id: str
    live: bool
    state: str | None

    def __aiter__(self) -> AsyncIterator[dict]: ...


class StoredSource:
    """The stored events of a session (replay). ``follow`` polls for more until the session ends.

    The reference is resolved at once (an id, or a unique prefix/suffix of one), so an unknown
    session raises ``UnknownSession`` here rather than inside a reader's loop."""

    live = False

    def __init__(self, session_id: str, store: SessionStore | None = None, from_seq: int = 0,
                 follow: bool = False, poll_interval: float = 1.0):
        self.store = store or SessionStore()
        self.session_id = self.store.resolve(session_id)
        self.from_seq = from_seq
        self.follow = follow
        self.poll_interval = poll_interval
        self.state: str | None = None
        self.meta: dict | None = None

    async def __aiter__(self) -> AsyncIterator[dict]:
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


class ListSource:
    """Events from memory. ``delay`` seconds between events (0: as fast as the loop allows);
    ``live`` says how a reader should present them; ``state`` is set to ``final_state`` at the end."""

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
