"""The engine client's errors, and the one place an error reply becomes one of them."""
from __future__ import annotations

from sessions import protocol as P


class EngineError(RuntimeError):
    """An error reply from the engine (``code`` is one of sessions.protocol's codes)."""

    def __init__(self, message: str, code: str = P.INTERNAL, session: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.session = session

    def __str__(self) -> str:
        return self.message


class SpecRejected(EngineError):
    """The engine refused the run spec (bad input; nothing was queued). ``field`` names the spec
    entry at fault when the reply says which."""

    def __init__(self, message: str, code: str = P.BAD_SPEC, field: str | None = None):
        super().__init__(message, code)
        self.field = field


class EngineNotRunning(EngineError):
    """No engine answers on the socket."""


class EngineDisconnected(EngineError):
    """The connection to the engine was lost."""


class EngineStartError(EngineError):
    """The engine could not be started (the message names its log)."""


class EngineOtherVersion(EngineError):
    """An engine of another protocol or schema (one started before an upgrade) refused this client's hello."""


def check_reply(reply: dict) -> dict:
    """The reply itself when it is ok; else raise what its error says."""
    if reply.get("ok"):
        return reply
    error = reply.get("error") or {}
    code, message = error.get("code", P.INTERNAL), error.get("message", "engine error")
    if code == P.BAD_SPEC:
        raise SpecRejected(message, code, error.get("field"))
    if code == P.VERSION_MISMATCH:
        raise EngineOtherVersion(message, code)
    raise EngineError(message, code)


def strip(reply: dict) -> dict:
    """A reply without its envelope (``id``, ``ok``)."""
    return {k: v for k, v in reply.items() if k not in ("id", "ok")}
