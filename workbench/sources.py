"""The live event source: a session followed through the engine, for the monitor.

It is a ``sessions.source.EventSource`` like ``StoredSource`` and ``ListSource`` (sessions.source),
so the live monitor and ``replay`` are one screen with two sources (memray's live view takes its
reader the same way).
"""
from __future__ import annotations

import os
from typing import AsyncIterator

from workbench.client.async_client import EngineClient


class LiveSource:
    """Stored events from ``from_seq`` on, then live ones, each once, in order; ``state`` is set
    when the session ends.

    Without a ``client`` it opens its own connection for the stream and closes it at the end;
    ``client`` is the connection in use while it follows, so a screen can read ``last_seen`` and
    ``connected`` to show "engine disconnected"."""

    live = True

    def __init__(self, session_id: str, home: str | os.PathLike | None = None, from_seq: int = 0,
                 client: EngineClient | None = None):
        self.session_id = session_id
        self.home = home
        self.from_seq = from_seq
        self.client = client
        self.state: str | None = None

    async def __aiter__(self) -> AsyncIterator[dict]:
        own = self.client is None
        client = self.client = self.client or EngineClient(self.home)
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
