"""Submit a run and follow its events from blocking code (``run --engine``), over the asyncio client."""
from __future__ import annotations

import asyncio
from typing import Callable

from workbench.client.async_client import EngineClient
from workbench.client.process import start_engine
from workbench.client.sync import Home


def submit_and_follow(spec: dict, on_event: Callable[[dict], None], detach: bool = False,
                      name: str | None = None, home: Home = None, start: bool = True) -> tuple[str, str]:
    """Submit ``spec`` to the engine (starting it if needed) and follow its events.

    ``on_event(event)`` sees every event of the session from seq 0, exactly once, in order. Returns
    ``(session_id, final_state)``; with ``detach`` returns at once with state ``"queued"``. Raises
    SpecRejected (bad spec: exit 2), EngineStartError, or EngineDisconnected (with ``.session``) when
    the engine goes away mid-run. Interrupting the follower (Ctrl-C) never stops the job."""
    if start:
        start_engine(home)

    async def go() -> tuple[str, str]:
        async with EngineClient(home) as client:
            reply = await client.submit(spec, name=name)
            session = reply["session"]
            if detach:
                return session, reply.get("state", "queued")
            return session, await _follow(client, session, 0, on_event)

    return asyncio.run(go())


def follow(session: str, on_event: Callable[[dict], None], from_seq: int = 0, home: Home = None) -> str:
    """Follow an existing session through the engine until it ends; returns its final state."""

    async def go() -> str:
        async with EngineClient(home) as client:
            return await _follow(client, session, from_seq, on_event)

    return asyncio.run(go())


async def _follow(client: EngineClient, session: str, from_seq: int, on_event: Callable[[dict], None]) -> str:
    subscription = client.subscribe(session, from_seq)
    async for event in subscription:
        on_event(event)
    return subscription.state or "unknown"
