"""What the App hands its screens (``screens.services.Services``): the session store, spec checks,
the deletion preview (in process, through ``engine.api``) and the engine daemon (submit, cancel,
start, live sources).

Tests replace the engine parts with fakes (``engine_starter``, ``submitter``, ``live_source_factory``);
the rest is the real thing on a temp $MMUL_HOME.
"""
from __future__ import annotations

import os
from typing import Any, Awaitable, Callable

from engine.errors import SpecError
from screens.services import DeletionPreview, ServiceError
from sessions.schema import ACTIVE_STATES
from sessions.source import EventSource, StoredSource
from sessions.store import SessionStore
from workbench.client.errors import EngineError, SpecRejected

Submitter = Callable[[dict], Awaitable[dict]]
EngineStarter = Callable[[], Any]
SourceFactory = Callable[[str], EventSource]


class EngineServices:
    """The real services, with the engine parts replaceable (tests inject fakes)."""

    def __init__(self, store: SessionStore, home: str | os.PathLike | None = None, *,
                 engine_starter: EngineStarter | None = None, submitter: Submitter | None = None,
                 live_source_factory: SourceFactory | None = None) -> None:
        self.store = store
        self.home = home
        self.engine_ready = False     # set by the App once the daemon answers
        self.submitted: list[dict] = []
        self._engine_starter = engine_starter
        self._submitter = submitter
        self._live_source_factory = live_source_factory
        self.study_launcher: Callable[[list[str]], Any] | None = None   # tests: a fake StudyLaunch factory

    # in process ----------------------------------------------------------------------------------

    def validate(self, spec: dict) -> dict:
        """The spec checked as the engine checks its shape, paths made absolute against the TUI's
        directory; what only the engine knows (its devices, the data's records) it checks on submit and
        refuses by field. Torch-free: the TUI never imports torch."""
        from engine import spec as specs
        from engine.spec.inputs import absolute_paths

        spec = absolute_paths(spec)
        if isinstance(spec, dict) and spec.get("kind") == "pulse":
            return specs.validate_pulse(spec)
        return specs.validate(spec)

    def preview_deletion(self, data: str, deletion: dict) -> DeletionPreview | None:
        from engine.api import preview_deletion

        return preview_deletion(data, deletion)

    def forget_quality(self, scores: list, reference: list) -> float | None:
        from engine.api import forget_quality

        return forget_quality(scores, reference)

    def launch_study(self, args: list[str]):
        """The study of `mmul-workbench study ARGS`, sent to the engine as a job and followed there
        (workbench.study_launch), as `study ARGS --engine` would."""
        if self.study_launcher is not None:
            return self.study_launcher(list(args))
        from workbench.study_launch import EngineStudy

        try:
            return EngineStudy(args, self.home)
        except (OSError, RuntimeError) as exc:  # no thread could start
            raise ServiceError(f"the study could not start: {exc}") from None

    # the engine daemon ---------------------------------------------------------------------------

    def start_engine(self) -> dict:
        """Find or start the daemon (blocking: it polls; run it in a thread). EngineError names the log."""
        if self._engine_starter is not None:
            return dict(self._engine_starter() or {})
        from workbench.client.process import start_engine

        return start_engine(self.home)

    def engine_answers(self) -> bool:
        """Whether this version's daemon still answers on its socket (blocking, about a millisecond; a second at
        most): one of another version, which refuses this client, does not (the home then says the engine stopped,
        and ctrl+r names the version). An injected engine (tests) is taken to answer."""
        if self._engine_starter is not None or self._submitter is not None:
            return True
        from workbench.client.errors import EngineOtherVersion
        from workbench.client.sync import ping

        try:
            return ping(self.home, timeout=1.0) is not None
        except EngineOtherVersion:   # the states poll died on it every 2 s, in silence
            return False

    async def submit(self, spec: dict) -> dict:
        self.submitted.append(spec)
        if self._submitter is not None:
            return await self._submitter(spec)
        return await self._ask(lambda client: client.submit(spec, name=spec.get("name")))

    async def cancel(self, session_id: str) -> dict:
        return await self._ask(lambda client: client.cancel(session_id))

    async def _ask(self, request: Callable[[Any], Awaitable[dict]]) -> dict:
        """One request on a fresh connection, its errors as the screens know them."""
        from workbench.client.async_client import EngineClient

        try:
            async with EngineClient(self.home) as client:
                return await request(client)
        except SpecRejected as exc:
            raise SpecError(str(exc), field=exc.field) from None
        except EngineError as exc:
            raise ServiceError(str(exc), exc.code) from None

    def live_source(self, session_id: str) -> EventSource:
        if self._live_source_factory is not None:
            return self._live_source_factory(session_id)
        from workbench.sources import LiveSource

        return LiveSource(session_id, self.home)

    def source_for(self, row: dict) -> EventSource:
        """Live while the engine runs the session; else the stored one (followed while a headless
        process still writes it)."""
        active = row.get("state") in ACTIVE_STATES
        if active and (self.engine_ready or self._live_source_factory is not None):
            return self.live_source(row["id"])
        return StoredSource(row["id"], self.store, follow=active)
