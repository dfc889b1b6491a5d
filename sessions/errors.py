"""What the session store raises on purpose, each with a one-line message."""
from __future__ import annotations


class UnknownSession(KeyError):
    """No session with that id (one-line message)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class SessionBusy(RuntimeError):
    """The session is queued or running in a live process (cannot be deleted or reopened)."""


class SessionDamaged(ValueError):
    """A session whose files cannot be read; ``reason`` names the file and what is wrong with it (never
    quoting its contents)."""

    def __init__(self, session_id: str, reason: str):
        super().__init__(f"session {session_id} is damaged: {reason}; `mmul-workbench sessions check --repair` "
                         "moves it aside (`sessions delete` removes it)")
        self.session_id = session_id
        self.reason = reason
