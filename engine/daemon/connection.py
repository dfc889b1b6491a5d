"""One client connection: reads newline-delimited JSON requests, dispatches each to its handler in
``ops``, writes the replies, and owns the connection's subscriptions (streams of session events).

What one client may hold of the engine is bounded: a partial line at most MAX_LINE bytes, and all
connections' partial lines together at most ``Limits.buffered`` bytes (a line past either is refused as
``too_long`` and skipped); the buffer is released when the connection closes. A client that says
nothing for ``Limits.hello_timeout`` seconds before ``hello``, or ``Limits.idle_timeout`` seconds after
it while following nothing, is told ``idle`` and disconnected.

What the engine holds for a client that does not read is bounded too. Its send queue is the transport's
buffer, at most ``Limits.send_buffer`` bytes before every sender waits, plus one message per
subscription waiting its turn; at most ``Limits.subscriptions`` subscriptions per connection (more are
refused ``limit``). A send that waits ``Limits.stall_timeout`` seconds for the client to read is the
end of the connection (cut, ``stalled`` in the log). A following client must read: one that neither
sends a request nor reads what the engine sent (heartbeats included) for ``Limits.idle_timeout`` seconds
is told ``idle`` and disconnected, subscriptions or not.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import fcntl
import logging
import termios
import time
import traceback
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

from engine.daemon import ops
from sessions import protocol as P

log = logging.getLogger("mmul.engine")

READ_CHUNK = 65536
TRIM_AFTER = 256 << 10   # a closed connection that buffered this much hands the memory back to the OS


@dataclass
class Limits:
    """The engine's bounds on its clients (tests shorten the timeouts)."""

    hello_timeout: float = 10.0    # seconds to say hello
    idle_timeout: float = 300.0    # seconds of silence allowed to a client that follows no session
    buffered: int = 64 << 20       # bytes of partial lines held for all connections together
    connections: int = 512         # connections served at once; more are told `busy` and closed
    subscriptions: int = 16        # subscriptions one connection may hold; more are refused `limit`
    send_buffer: int = 256 << 10   # bytes the engine buffers for one client before its senders wait
    stall_timeout: float = 30.0    # seconds a send may wait for the client to read before it is cut off
    lag: int = 10_000              # live events a subscriber may fall behind before it is ended `behind`
    used: int = 0                  # bytes of partial lines held now


def unread_bytes(writer: asyncio.StreamWriter) -> int:
    """Bytes sent to the client that it has not read yet: the transport's buffer plus, on Linux, the
    socket's (SIOCOUTQ; elsewhere only the transport's is known)."""
    pending = writer.transport.get_write_buffer_size()
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            pending += int.from_bytes(fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4), "little")
        except (OSError, ValueError):
            pass
    return pending


def _trim_memory() -> None:
    """Return freed heap memory to the OS (glibc keeps large freed buffers in the process otherwise)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Connection:
    """One client connection: reads lines (at most MAX_LINE bytes), dispatches ops, writes replies."""

    def __init__(self, daemon: ops.Daemon, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 limits: Limits | None = None):
        self.daemon = daemon
        self.reader = reader
        self.writer = writer
        self.limits = limits or Limits()
        self.greeted = False
        self.subscriptions: dict[int, asyncio.Task] = {}
        self.held = 0          # bytes of this connection's partial line, counted in limits.used
        self.peak = 0
        self.caught_up = time.monotonic()   # when the client had last read everything sent to it
        self.waiting = 0                     # sends waiting for the client to read (for `status`)
        self._write_lock = asyncio.Lock()
        writer.transport.set_write_buffer_limits(high=self.limits.send_buffer)

    async def send(self, message: dict) -> None:
        self.waiting += 1
        try:
            await self._send(P.encode(message))
        finally:
            self.waiting -= 1

    async def _send(self, data: bytes) -> None:
        async with self._write_lock:
            if self.writer.is_closing():
                raise ConnectionError("connection closed")
            self.writer.write(data)
            try:
                await asyncio.wait_for(self.writer.drain(), self.limits.stall_timeout)
            except asyncio.TimeoutError:
                self.cut(f"it read nothing for {self.limits.stall_timeout:.0f} s while the engine had "
                         f"{self.writer.transport.get_write_buffer_size()} bytes to send")
                raise ConnectionError("the client stopped reading") from None

    def cut(self, why: str) -> None:
        """Drop the connection now, its unsent bytes with it (a client that does not read cannot be told)."""
        log.warning("cut off a client (%s): %s", P.STALLED, why)
        self.writer.transport.abort()

    def heartbeat(self, line: bytes) -> None:
        """Send a heartbeat, noting first whether the client read everything before it; none is added to
        a buffer the client is not emptying."""
        if unread_bytes(self.writer) == 0:
            self.caught_up = time.monotonic()
        if self.writer.transport.get_write_buffer_size() == 0 and not self.writer.is_closing():
            self.writer.write(line)

    def reading(self, within: float) -> bool:
        """Whether the client read everything sent to it at some point in the last ``within`` seconds."""
        if unread_bytes(self.writer) == 0:
            self.caught_up = time.monotonic()
        return time.monotonic() - self.caught_up < within

    async def serve(self) -> None:
        lines = self._lines()
        try:
            async for line in lines:
                if line is None:
                    await self.send(P.error(None, P.TOO_LONG,
                                            f"line longer than {P.MAX_LINE} bytes; send smaller requests"))
                    continue
                await self.send(await self._dispatch(line))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await lines.aclose()
            self._hold(0)
            if self.peak >= TRIM_AFTER:
                _trim_memory()

    def _hold(self, size: int) -> None:
        self.limits.used += size - self.held
        self.held = size
        self.peak = max(self.peak, size)

    async def _read(self) -> bytes:
        """The next chunk; b"" at the end, or when the client stayed silent past its timeout."""
        while True:
            timeout = self.limits.idle_timeout if self.greeted else self.limits.hello_timeout
            try:
                return await asyncio.wait_for(self.reader.read(READ_CHUNK), timeout)
            except asyncio.TimeoutError:
                if self.subscriptions and self.reading(timeout):
                    continue  # a follower that reads need not speak
                what = "say hello" if not self.greeted else "send a request"
                try:
                    await self.send(P.error(None, P.IDLE, f"no request for {timeout:.0f} s (connect, {what}); "
                                                          "closing the connection"))
                except ConnectionError:
                    pass
                return b""

    async def _lines(self) -> AsyncIterator[bytes | None]:
        """Yield complete lines; a line longer than MAX_LINE (or than the engine's buffer budget allows)
        yields None and is skipped whole."""
        buf = bytearray()
        discarding = False
        try:
            while True:
                chunk = await self._read()
                if not chunk:
                    return
                while chunk:
                    nl = chunk.find(b"\n")
                    if nl < 0:
                        if not discarding:
                            buf += chunk
                            if len(buf) > P.MAX_LINE or self.limits.used + len(buf) - self.held > self.limits.buffered:
                                buf = bytearray()
                                discarding = True
                            self._hold(len(buf))
                        break
                    head, chunk = chunk[:nl], chunk[nl + 1:]
                    if discarding:
                        discarding = False
                        yield None
                        continue
                    buf += head
                    line, buf = bytes(buf), bytearray()
                    self._hold(0)
                    if len(line) > P.MAX_LINE:
                        yield None
                    elif line.strip():
                        yield line
        finally:
            self._hold(0)

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

    def can_subscribe(self) -> bool:
        return len(self.subscriptions) < self.limits.subscriptions

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
