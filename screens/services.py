"""What the screens need from the shell and the engine, as one object the App hands them.

Screens type against ``Services`` and never import the shell: the App passes its implementation
(``workbench.services.EngineServices``) and tests pass theirs. Failures come back as
``engine.errors.SpecError`` (a spec the engine refuses; ``field`` names the form field) or as
``ServiceError`` (the engine is not there, or answered with an error).
"""
from __future__ import annotations

from typing import Protocol

from sessions.source import EventSource
from sessions.store import SessionStore


class ServiceError(RuntimeError):
    """The engine could not do what a screen asked (``code``: a sessions.protocol error code)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class DeletionPreview(Protocol):
    selected: int        # units the deletion set selects
    total: int           # training units in the world
    samples: list[str]   # a few of the selected units' captions


class StudyLaunch(Protocol):
    """A study started in the background (sent to the engine as a job, followed there)."""

    def poll(self) -> int | None:
        """Its exit code (as `mmul-workbench study` would exit), or None while it runs."""

    def study_id(self) -> str | None:
        """The study's id once the engine has accepted it (or None)."""

    def error(self) -> str | None:
        """Why it ended with an error, in one line (None while it runs or when it succeeded)."""


class Services(Protocol):
    store: SessionStore

    def validate(self, spec: dict) -> dict:
        """The normalised spec (a run, or a ``kind: pulse`` one); SpecError naming its field."""

    def preview_deletion(self, data: str, deletion: dict) -> DeletionPreview | None:
        """What ``deletion`` selects in built-in world ``data`` (None for real data); SpecError.
        Blocking (it may build the world): call it from a thread worker."""

    async def submit(self, spec: dict) -> dict:
        """Queue a validated spec; the engine's reply (``session``, ``device``, ...)."""

    async def cancel(self, session_id: str) -> dict:
        """Ask the engine to stop a queued or running session."""

    def live_source(self, session_id: str) -> EventSource:
        """A session followed live through the engine."""

    def source_for(self, row: dict) -> EventSource:
        """The source to open a catalog row with: live while the engine runs it, else stored."""

    def forget_quality(self, scores: list, reference: list) -> float | None:
        """The KS p-value of a run's per-example Df scores against Retrain's (for a study's grid)."""

    def launch_study(self, args: list[str]) -> StudyLaunch:
        """Send the study of ``mmul-workbench study ARGS`` to the engine and follow it in the background;
        ServiceError when it cannot start."""
