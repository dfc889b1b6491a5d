"""Blocking calls to the engine, one request per connection (``engine start``/``status``/``stop``)."""
from __future__ import annotations

import json
import os
import socket
from typing import Any

from sessions import protocol as P
from workbench.client.errors import EngineDisconnected, EngineError, EngineNotRunning, EngineOtherVersion, check_reply

Home = str | os.PathLike | None


def call(paths: P.EnginePaths, op: str, timeout: float = 10.0, **fields: Any) -> dict:
    """Connect, hello, one request, return its reply (raises EngineNotRunning / EngineError)."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(paths.socket))
    except (FileNotFoundError, ConnectionRefusedError, socket.timeout, OSError) as exc:
        raise EngineNotRunning(f"no engine answers on {paths.socket} ({exc.__class__.__name__})",
                               "not_running") from None
    try:
        reader = sock.makefile("rb")
        requests = [P.hello_request(0)]
        if op != "hello":
            requests.append({"id": 1, "op": op, **fields})
        sock.sendall(b"".join(P.encode(r) for r in requests))
        replies: dict[Any, dict] = {}
        while len(replies) < len(requests):
            line = reader.readline(P.CLIENT_LINE_LIMIT)
            if not line:
                raise EngineDisconnected("the engine closed the connection", "disconnected")
            message = json.loads(line)
            if "id" in message:
                replies[message["id"]] = message
        check_reply(replies[0])
        return check_reply(replies[len(requests) - 1])
    except (socket.timeout, ConnectionError) as exc:
        raise EngineDisconnected(f"the engine did not answer ({exc.__class__.__name__})", "disconnected") from None
    finally:
        sock.close()


def ping(home: Home = None, timeout: float = 2.0) -> dict | None:
    """The engine's hello reply, or None when no engine answers. An engine of another protocol (one started before
    an upgrade) raises its EngineError: taken for none, a start waited 30 s on the lock it holds and blamed the time."""
    try:
        return call(P.engine_paths(home), "hello", timeout=timeout)
    except EngineOtherVersion:
        raise
    except EngineError:
        return None
