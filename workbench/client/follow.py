"""Submit a run or a study and follow it from blocking code (``run --engine``, ``study --engine``, the TUI's
New-study), over the asyncio client."""
from __future__ import annotations

import asyncio
import time
from typing import Callable, Optional

from workbench.client.async_client import EngineClient
from workbench.client.process import start_engine
from workbench.client.sync import Home


def submit_and_follow(spec: dict, on_event: Callable[[dict], None], detach: bool = False,
                      name: str | None = None, home: Home = None, start: bool = True,
                      on_submitted: Optional[Callable[[str], None]] = None,
                      on_end: Optional[Callable[[str, Optional[str]], None]] = None) -> tuple[str, str]:
    """Submit ``spec`` to the engine (starting it if needed) and follow its events.

    ``on_event(event)`` sees every event of the session from seq 0, exactly once, in order. Returns
    ``(session_id, final_state)``; with ``detach`` returns at once with state ``"queued"``. Raises
    SpecRejected (bad spec: exit 2), EngineStartError, or EngineDisconnected (with ``.session``) when
    the engine goes away mid-run. ``on_submitted(session)`` is told the session's id once the engine has
    accepted it; ``on_end(state, message)`` hears how it ended, with the engine's word on why where it has one (a
    full disk kept it from writing that into the session). Interrupting the follower (Ctrl-C) never stops the job."""
    if start:
        start_engine(home)

    async def go() -> tuple[str, str]:
        async with EngineClient(home) as client:
            reply = await client.submit(spec, name=name)
            session = reply["session"]
            if on_submitted is not None:
                on_submitted(session)
            if detach:
                return session, reply.get("state", "queued")
            ended = await _follow(client, session, 0, on_event)
            if on_end is not None:
                on_end(ended.state or "unknown", ended.message)
            return session, ended.state or "unknown"

    return asyncio.run(go())


def follow(session: str, on_event: Callable[[dict], None], from_seq: int = 0, home: Home = None) -> str:
    """Follow an existing session through the engine until it ends; returns its final state."""

    async def go() -> str:
        async with EngineClient(home) as client:
            return (await _follow(client, session, from_seq, on_event)).state or "unknown"

    return asyncio.run(go())


SILENT_AFTER = 10.0   # seconds without a message (the engine sends a heartbeat every 2) before the follower says so


async def _follow(client: EngineClient, session: str, from_seq: int, on_event: Callable[[dict], None]):
    """The ended subscription (its ``state``, and its ``message`` where the engine said why), every event of the
    session passed to ``on_event`` on the way."""
    subscription = client.subscribe(session, from_seq)
    watchdog = asyncio.create_task(say_when_silent(client, session, on_event))
    try:
        async for event in subscription:
            on_event(event)
    finally:
        watchdog.cancel()
    return subscription


async def say_when_silent(client: EngineClient, session: str, on_event: Callable[[dict], None]) -> None:
    """A warning (as a `log` event to `on_event`) once the engine has sent nothing for SILENT_AFTER seconds, and
    again after it has spoken since: a follower of a stopped (SIGSTOP) or stuck engine sat silent for minutes."""
    said = False
    while True:
        await asyncio.sleep(1.0)
        silent = time.monotonic() - client.last_seen
        if silent >= SILENT_AFTER and not said:
            on_event({"kind": "log", "level": "warning", "message": f"the engine has sent nothing for {silent:.0f} s "
                      f"(stopped, or stuck); still following session {session}: `mmul-workbench engine status` says "
                      "more, Ctrl-C stops following (not the run)"})
        said = silent >= SILENT_AFTER


STUDY_ENDED = ("finished", "failed", "cancelled")
CellEvent = Callable[[dict, dict], None]   # (the cell: method, seed, session; the event)


def submit_study_and_follow(study: str, spec: dict, cells: list[dict], on_event: CellEvent,
                            on_accepted: Optional[Callable[[dict], None]] = None, home: Home = None,
                            start: bool = True) -> dict:
    """Run study ``study`` in the engine (starting it if needed; attaching when it runs there already) and
    follow it to its end: each cell's session as it runs, every event passed to ``on_event(cell, event)``
    (from seq 0, once, in order; ``kind: "end"`` with its ``state`` when the cell ends). ``on_accepted(info)``
    sees the engine's first answer. Returns the study's final ``info`` (``state``: finished, failed or
    cancelled). Raises SpecRejected (a bad cell: exit 2), EngineError; interrupting the follower never
    stops the study."""
    if start:
        start_engine(home)

    async def go() -> dict:
        async with EngineClient(home) as client:
            info = await client.study(study, spec, cells)
            if on_accepted is not None:
                on_accepted(info)
            followed: set[str] = set()
            while info["state"] not in STUDY_ENDED:
                current = info.get("current")
                if current and current not in followed:
                    followed.add(current)
                    cell = next((c for c in info["cells"] if c["session"] == current), {"session": current})
                    ended = await _follow(client, current, 0, lambda event: on_event(cell, event))
                    on_event(cell, {"kind": "end", "state": ended.state or "unknown"})
                info = await client.study_status(study, after=info["version"])
            return info

    return asyncio.run(go())
