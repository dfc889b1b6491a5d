"""The Textual App: finds or starts the engine in a worker, owns the screens, and turns every
worker error into one visible line (workers compute, handlers mutate).

Never imports torch: the only engine module it reads is ``engine.spec`` (through the New-run
screen) and the torch-free built-in world builder (deletion-set preview, in a thread).
"""
from __future__ import annotations

import os
from functools import partial
from typing import Any, Awaitable, Callable, Iterable

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from sessions.store import SessionStore

Submitter = Callable[[dict], Awaitable[dict]]
EngineStarter = Callable[[], Any]
SourceFactory = Callable[[str], Any]

COMPACT_WIDTH = 100
COMPACT_HEIGHT = 30


class EngineReady(Message):
    def __init__(self, info: dict) -> None:
        super().__init__()
        self.info = info


class EngineFailed(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class WorkbenchApp(App):
    """mmul-workbench. Build it with ``workbench.tui.create_app``."""

    CSS_PATH = "workbench.tcss"
    TITLE = "mmul-workbench"
    SUB_TITLE = "multimodal machine unlearning"

    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("f1", "help", "Help", id="app.help"),
        Binding("ctrl+n", "new_run", "New run", id="app.new_run"),
        Binding("ctrl+r", "restart_engine", "Start engine", id="app.engine", show=False),
    ]

    engine_state: reactive[str] = reactive("off")   # off | starting | ready | failed
    engine_message: reactive[str] = reactive("")

    def __init__(self, *, store: SessionStore | None = None, replay: str | None = None,
                 start_engine: bool = True, engine_starter: EngineStarter | None = None,
                 submitter: Submitter | None = None, live_source_factory: SourceFactory | None = None,
                 home: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.store = store or SessionStore(home)
        self.home = home
        self.replay_id = replay
        self.want_engine = start_engine and replay is None
        self._engine_starter = engine_starter
        self._submitter = submitter
        self._live_source_factory = live_source_factory
        self.submitted: list[dict] = []

    # lifecycle -----------------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.replay_id is not None:
            from screens.monitor import MonitorScreen
            from sessions.source import StoredSource

            self.push_screen(MonitorScreen(StoredSource(self.replay_id, self.store), replay=True,
                                           standalone=True))
        else:
            from screens.home import HomeScreen

            self.push_screen(HomeScreen())
            if self.want_engine:
                self.start_engine()

    def on_resize(self, event) -> None:
        self.set_class(event.size.width < COMPACT_WIDTH or event.size.height < COMPACT_HEIGHT, "-compact")

    # engine --------------------------------------------------------------------------------------

    def start_engine(self) -> None:
        if self.engine_state in ("starting", "ready"):
            return
        self.engine_state = "starting"
        self.engine_message = "starting the engine..."
        self._start_engine_worker()

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def _start_engine_worker(self) -> None:
        """Find or start the daemon (a thread: start_engine polls with sleeps)."""
        try:
            if self._engine_starter is not None:
                info = self._engine_starter() or {}
            else:
                from workbench.client import start_engine

                info = start_engine(self.home)
        except Exception as exc:  # EngineStartError names the log; anything else gets the log too
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "log" not in message:
                from sessions.protocol import engine_paths

                message += f" (see {engine_paths(self.home).log})"
            self.post_message(EngineFailed(message))
        else:
            self.post_message(EngineReady(dict(info)))

    def on_engine_ready(self, message: EngineReady) -> None:
        self.engine_state = "ready"
        pid = message.info.get("pid")
        self.engine_message = "engine ready" + (f" (pid {pid})" if pid else "")

    def on_engine_failed(self, message: EngineFailed) -> None:
        self.engine_state = "failed"
        self.engine_message = f"engine not available: {message.message}"
        self.notify(self.engine_message, title="engine", severity="error", timeout=15)

    def action_restart_engine(self) -> None:
        if self.engine_state != "ready":
            self.engine_state = "off"
            self.start_engine()

    # services for screens ------------------------------------------------------------------------

    async def submit_spec(self, spec: dict) -> dict:
        """Queue a run; returns the engine's reply (``session`` ...). Raises EngineError."""
        self.submitted.append(spec)
        if self._submitter is not None:
            return await self._submitter(spec)
        from workbench.client import EngineClient

        async with EngineClient(self.home) as client:
            return await client.submit(spec, name=spec.get("name"))

    def live_source(self, session_id: str):
        if self._live_source_factory is not None:
            return self._live_source_factory(session_id)
        from workbench.client import LiveSource

        return LiveSource(session_id, self.home)

    def source_for(self, row: dict):
        """A live source for a session the engine runs, else the stored one (following it if a
        headless process still writes it)."""
        from sessions.source import StoredSource

        active = row.get("state") in ("queued", "running")
        if active and (self.engine_state == "ready" or self._live_source_factory is not None):
            return self.live_source(row["id"])
        return StoredSource(row["id"], self.store, follow=active)

    def open_monitor(self, source, *, replay: bool | None = None, device: str | None = None) -> None:
        from screens.monitor import MonitorScreen

        self.push_screen(MonitorScreen(source, replay=replay, device=device))

    # actions -------------------------------------------------------------------------------------

    def action_help(self) -> None:
        from screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_new_run(self) -> None:
        from screens.new_run import NewRunScreen

        if not isinstance(self.screen, NewRunScreen):
            self.push_screen(NewRunScreen())

    # every binding in the command palette ----------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        seen: set[str] = set()
        for owner, bindings in ((screen, type(screen).BINDINGS), (self, type(self).BINDINGS)):
            for binding in bindings:
                if not isinstance(binding, Binding) or not binding.description:
                    continue
                if binding.action in seen or binding.action in ("quit", "command_palette"):
                    continue
                seen.add(binding.action)
                key = binding.key.split(",")[0]
                yield SystemCommand(binding.description, f"{binding.id or binding.action}  [{key}]",
                                    partial(owner.run_action, binding.action))

    # one place where worker errors become a visible line ---------------------------------------------

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            text = str(error).splitlines()[0] if str(error) else type(error).__name__
            self.notify(text, title=event.worker.name or "error", severity="error", timeout=10)
