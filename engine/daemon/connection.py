"""One client connection: reads newline-delimited JSON requests, dispatches each to its handler in
``ops``, writes the replies, and owns the connection's subscriptions (streams of session events)."""
from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from engine.daemon import ops
from sessions import protocol as P

log = logging.getLogger("mmul.engine")


class Connection:
    """One client connection: reads lines (at most MAX_LINE bytes), dispatches ops, writes replies."""

    def __init__(self, daemon: ops.Daemon, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.daemon = daemon
        self.reader = reader
        self.writer = writer
        self.greeted = False
        self.subscriptions: dict[int, asyncio.Task] = {}
        self._write_lock = asyncio.Lock()

    async def send(self, message: dict) -> None:
        data = P.encode(message)
        async with self._write_lock:
            if self.writer.is_closing():
                raise ConnectionError("connection closed")
            self.writer.write(data)
            await self.writer.drain()

    async def serve(self) -> None:
        try:
            async for line in self._lines():
                if line is None:
                    await self.send(P.error(None, P.TOO_LONG,
                                            f"line longer than {P.MAX_LINE} bytes; send smaller requests"))
                    continue
                await self.send(await self._dispatch(line))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    async def _lines(self) -> AsyncIterator[bytes | None]:
        """Yield complete lines; a line longer than MAX_LINE yields None (and is skipped whole)."""
        buf = bytearray()
        discarding = False
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                return
            while chunk:
                nl = chunk.find(b"\n")
                if nl < 0:
                    if not discarding:
                        buf += chunk
                        if len(buf) > P.MAX_LINE:
                            buf.clear()
                            discarding = True
                    break
                head, chunk = chunk[:nl], chunk[nl + 1:]
                if discarding:
                    discarding = False
                    yield None
                    continue
                buf += head
                if len(buf) > P.MAX_LINE:
                    buf.clear()
                    yield None
                    continue
                line = bytes(buf)
                buf.clear()
                if line.strip():
                    yield line

    async def _dispatch(self, line: bytes) -> dict:
        rid = None
        try:
            message = P.decode(line)
            rid = message.get("id") if isinstance(message.get("id"), (int, str)) else None
            rid, op, fields = P.parse_request(message)
            if op != "hello" and not self.greeted:
                return P.error(rid, P.HELLO_REQUIRED, "send hello first: "
                               '{"op": "hello", "protocol": %d}' % P.PROTOCOL_VERSION)
            return await ops.HANDLERS[op](self.daemon, self, rid, **fields)
        except P.ProtocolError as exc:
            return P.error(exc.request_id if exc.request_id is not None else rid, exc.code, exc.message)
        except Exception as exc:
            log.error("request failed:\n%s", traceback.format_exc())
            return P.error(rid, P.INTERNAL, f"{type(exc).__name__}: {exc}".splitlines()[0])

    # subscriptions -------------------------------------------------------------------------------

    def add_subscription(self, sub: int, stream: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(stream)
        task.add_done_callback(lambda _: self.subscriptions.pop(sub, None))
        self.subscriptions[sub] = task

    def cancel_subscription(self, sub: int) -> bool:
        task = self.subscriptions.pop(sub, None)
        if task is None:
            return False
        task.cancel()
        return True

    def cancel_subscriptions(self) -> None:
        for task in self.subscriptions.values():
            task.cancel()
        self.subscriptions.clear()
