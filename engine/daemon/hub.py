"""Getting a session's events to its subscribers in order, with no gap and no duplicate.

A ``Hub`` fans one live session's events out to the subscribers on the event loop. A
``Subscription`` is one subscriber's stream: the stored events from ``from_seq``, then the hub's
(or, for a session another process writes, the files as they grow), then one ``end`` message.

Stored events stream one segment file at a time (``SessionReader.event_chunks``, one parsed copy shared
by every subscriber of the session), so a replay never holds the log. A live subscriber whose client
reads slower than the run writes holds at most ``lag`` events: one more and it is ended with state
``behind`` and ``from_seq`` (the next event it needs), and the client resubscribes from there (no gap,
no duplicate: ``workbench.client.async_client`` does so by itself).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import traceback
from collections.abc import Awaitable, Callable

from sessions import protocol as P
from sessions.schema import TERMINAL_STATES
from sessions.store import SessionBusy, SessionDamaged, SessionStore, UnknownSession
from sessions.writer import SessionWriter

log = logging.getLogger("mmul.engine")

FELL_BEHIND = object()   # queued to a live subscriber that fell ``lag`` events behind

HUB_KEEP = 4096          # recent events each live session keeps in memory (older ones are on disk)
LAG = 10_000             # live events a subscriber may fall behind before it is ended ``behind``
TAIL_POLL = 0.5          # seconds between disk polls when following a session another process writes


class Hub:
    """Fan-out of one live session's events to subscribers (lives on the event loop).

    Invariant: every event with seq < ``start`` is on disk (flushed), so a subscriber replays
    [from_seq, start) from the store and [start, ...) from here, with no gap and no duplicate."""

    def __init__(self, writer: SessionWriter):
        self.writer = writer
        self.buf: collections.deque[dict] = collections.deque()
        self.next_seq = writer.last_seq + 1
        self.subscribers: set[Subscription] = set()
        self.end_state: str | None = None
        self.end_message: str | None = None   # why it ended, where the session's own file could not take it

    @property
    def start(self) -> int:
        return self.buf[0]["seq"] if self.buf else self.next_seq

    def publish(self, event: dict) -> None:
        self.buf.append(event)
        self.next_seq = event["seq"] + 1
        flushed = self.writer.flushed_seq
        while len(self.buf) > HUB_KEEP and self.buf[0]["seq"] <= flushed:
            self.buf.popleft()
        for follower in list(self.subscribers):
            if not follower.offer(event):
                self.subscribers.discard(follower)

    def close(self, state: str, message: str | None = None) -> None:
        self.end_state, self.end_message = state, message
        for follower in self.subscribers:
            follower.queue.put_nowait(None)


class Subscription:
    """Subscription ``sub`` of one connection to ``session``, from ``from_seq`` on.

    Made on the event loop while the hub is still open: joining the hub there is atomic (everything
    before ``start`` is on disk, the snapshot covers [start, next_seq), the queue gets the rest)."""

    def __init__(self, sub: int, session: str, from_seq: int, hub: Hub | None, store: SessionStore,
                 send: Callable[[dict], Awaitable[None]], lag: int = LAG):
        self.sub = sub
        self.lag = lag
        self.session = session
        self.store = store
        self.send_message = send
        self.hub = hub
        self.expected = from_seq
        self.queue: asyncio.Queue | None = None
        self.snapshot: list[dict] = []
        self.start = 0
        if hub is not None:
            self.queue = asyncio.Queue()
            hub.subscribers.add(self)
            self.snapshot = list(hub.buf)
            self.start = hub.start

    def offer(self, event: dict) -> bool:
        """Queue a live event; False (and the stream told it is behind) when ``lag`` are queued already."""
        assert self.queue is not None
        if self.queue.qsize() >= self.lag:
            self.queue.put_nowait(FELL_BEHIND)
            return False
        self.queue.put_nowait(event)
        return True

    async def run(self) -> None:
        """Stream until the session ends (or the client goes away); always ends with ``end``."""
        sub, session = self.sub, self.session
        try:
            if self.hub is not None:
                state = await self._stream_live()
            else:
                state = await self._stream_stored()
            if state == P.BEHIND:
                log.info("subscription %d to %s fell %d events behind: ended, resubscribe from %d", sub, session,
                         self.lag, self.expected)
                await self.send_message({"type": "end", "sub": sub, "session": session, "state": state,
                                         "from_seq": self.expected,
                                         "message": f"the client fell more than {self.lag} events behind; "
                                                    f"subscribe again from seq {self.expected}"})
                return
            said = self.hub.end_message if self.hub is not None else None
            await self.send_message({"type": "end", "sub": sub, "session": session, "state": state,
                                     **({"message": said} if said else {})})
        except asyncio.CancelledError:
            raise
        except (ConnectionError, RuntimeError):
            pass
        except UnknownSession as exc:
            await self._end("deleted", str(exc))
        except SessionDamaged as exc:
            log.warning("subscription %d: %s", sub, exc)
            await self._end("damaged", str(exc))
        except Exception as exc:  # the client must hear the end whatever went wrong
            log.error("subscription %d to %s failed:\n%s", sub, session, traceback.format_exc())
            await self._end("error", f"the engine could not stream session {session}: {type(exc).__name__}")

    async def _end(self, state: str, message: str) -> None:
        try:
            await self.send_message({"type": "end", "sub": self.sub, "session": self.session, "state": state,
                                     "message": message})
        except (ConnectionError, RuntimeError):
            pass

    async def _send(self, events: list[dict]) -> None:
        events = [e for e in events if e["seq"] >= self.expected]
        for i in range(0, len(events), P.EVENT_BATCH):
            chunk = events[i:i + P.EVENT_BATCH]
            if chunk[0]["seq"] != self.expected:
                log.error("subscription %d to %s: gap at %d (got %d)", self.sub, self.session, self.expected,
                          chunk[0]["seq"])
            await self.send_message({"type": "events", "sub": self.sub, "session": self.session,
                                     "events": chunk})
            self.expected = chunk[-1]["seq"] + 1

    async def _stream_live(self) -> str:
        hub, queue = self.hub, self.queue
        assert hub is not None and queue is not None
        try:
            if self.expected < self.start:
                await self._replay(until=self.start)
            snapshot, self.snapshot = self.snapshot, []
            await self._send(snapshot)
            del snapshot
            while True:
                item = await queue.get()
                batch = []
                while item is not None and item is not FELL_BEHIND:
                    batch.append(item)
                    if queue.empty():
                        item = False
                        break
                    item = queue.get_nowait()
                if item is FELL_BEHIND:   # what it had queued is dropped: it resubscribes from self.expected
                    while not queue.empty():
                        queue.get_nowait()
                    return P.BEHIND
                if batch:
                    await self._send(batch)
                if item is None:
                    break
        finally:
            hub.subscribers.discard(self)
        return hub.end_state or "unknown"

    async def _replay(self, until: int | None = None) -> None:
        """Send the stored events from ``expected`` (up to ``until``), one segment file at a time."""
        chunks = self.store.event_chunks(self.session, self.expected)
        try:
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                if until is not None and chunk[-1]["seq"] >= until:
                    await self._send([e for e in chunk if e["seq"] < until])
                    return
                await self._send(chunk)
                del chunk
        finally:
            try:
                chunks.close()
            except ValueError:   # cancelled while a thread reads its next file: it is dropped when done
                pass

    async def _stream_stored(self) -> str:
        """Replay a stored session; follow it on disk while another live process writes it."""
        store, session = self.store, self.session
        while True:
            live = await asyncio.to_thread(store.is_live, session)
            meta = await asyncio.to_thread(store.get, session)   # read before the events: they
            await self._replay()                                     # are a superset
            if meta["state"] in TERMINAL_STATES:
                return meta["state"]
            if not live:
                # its writer (a headless run) died: mark it interrupted, as engine start would
                try:
                    writer = await asyncio.to_thread(store.reopen, session)
                    await asyncio.to_thread(writer.finish, "interrupted",
                                            None, "the process writing this run died")
                    log.info("session %s: its writer died; marked interrupted", session)
                except SessionBusy:
                    pass
                continue
            await asyncio.sleep(TAIL_POLL)
