"""The Textual App: finds or starts the engine in a worker, hands its screens their services, turns
every worker error into one visible line (workers compute, handlers mutate), and toasts when a run or a
study started from the TUI ends while the operator looks at another screen.

Never imports torch: screens read ``engine.spec``; the deletion preview goes through the services
(``engine.api``, torch-free for built-in worlds, in a thread).
"""
from __future__ import annotations

from functools import partial
from typing import Iterable

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from workbench.services import EngineServices

COMPACT_WIDTH = 100
COMPACT_HEIGHT = 30
WATCH_SECONDS = 2.0  # how often the App looks for runs and studies that ended (for its toasts)


class EngineReady(Message):
    def __init__(self, info: dict) -> None:
        super().__init__()
        self.info = info


class EngineFailed(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class StatesRead(Message):
    """The catalog's rows, read in a thread, for the toasts; and whether an engine that was ready stopped
    answering."""

    def __init__(self, rows: list[dict], engine_lost: bool = False) -> None:
        super().__init__()
        self.rows = rows
        self.engine_lost = engine_lost


class WorkbenchApp(App):
    """mmul-workbench. Build it with ``workbench.tui.create_app``."""

    CSS_PATH = "workbench.tcss"
    TITLE = "mmul-workbench"
    SUB_TITLE = "multimodal machine unlearning"

    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("f1", "help", "Help", id="app.help"),
        # Everywhere, but not drawn in the footer: the home's n and t draw the same, and Help lists them.
        Binding("ctrl+n", "new_run", "New run", id="app.new_run", show=False),
        Binding("f2", "studies", "Studies", id="app.studies", show=False),
        Binding("f3", "new_study", "New study", id="app.new_study", show=False),
        Binding("ctrl+r", "restart_engine", "Start engine", id="app.engine", show=False),
    ]

    engine_state: reactive[str] = reactive("off")   # off | starting | ready | failed
    engine_message: reactive[str] = reactive("")

    def __init__(self, services: EngineServices, *, replay: str | None = None, start_engine: bool = True) -> None:
        super().__init__()
        self.services = services
        self.replay_id = replay
        self.want_engine = start_engine and replay is None
        self.watch_seconds = WATCH_SECONDS
        self.seen_states: dict[str, str] | None = None   # session id -> state at the last look
        self.studies: dict[str, object] = {}            # study id -> its StudyLaunch, while it runs

    # lifecycle -----------------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.replay_id is not None:
            from screens.monitor import MonitorScreen
            from sessions.source import StoredSource

            self.push_screen(MonitorScreen(StoredSource(self.replay_id, self.services.store), replay=True,
                                           standalone=True))
        else:
            from screens.home import HomeScreen

            self.push_screen(HomeScreen(self.services))
            if self.want_engine:
                self.start_engine()
            self.set_interval(self.watch_seconds, self.look_for_endings)

    def on_resize(self, event) -> None:
        compact = event.size.width < COMPACT_WIDTH or event.size.height < COMPACT_HEIGHT
        if compact != self.has_class("-compact"):
            self.set_class(compact, "-compact")
            # the screens under the one shown are restyled too: the home, shrunk to 80x24 while a monitor was open,
            # kept its header and boxed filter when the monitor closed
            for screen in self.screen_stack[:-1]:
                self.update_styles(screen)

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
            info = self.services.start_engine()
        except Exception as exc:  # EngineStartError names the log; anything else gets the log too
            from workbench.output import unwritable_home

            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if isinstance(exc, OSError) and (unwritable := unwritable_home(exc)) is not None:
                message = unwritable   # a read-only home: no log could be written there either
            elif "log" not in message:
                from sessions.protocol import engine_paths

                message += f" (see {engine_paths(self.services.home).log})"
            self.post_message(EngineFailed(message))
        else:
            self.post_message(EngineReady(dict(info)))

    def on_engine_ready(self, message: EngineReady) -> None:
        self.services.engine_ready = True
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

    # actions -------------------------------------------------------------------------------------

    def action_quit(self) -> None:
        """ctrl+q: a form the operator has filled in asks first, as escape does (ctrl+q threw it away at once)."""
        from screens.form_base import FormScreen
        from screens.widgets.confirm import ConfirmScreen

        screen = self.screen
        if not (isinstance(screen, FormScreen) and screen.edited):
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmScreen("Quit? What you filled in on this form is not kept.", yes="Yes, quit"),
                         answered)

    def action_help(self) -> None:
        from screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_new_run(self) -> None:
        from screens.new_run import NewRunScreen

        if not isinstance(self.screen, NewRunScreen):
            self.push_screen(NewRunScreen(self.services))

    def action_studies(self) -> None:
        from screens.studies import StudiesScreen

        if not isinstance(self.screen, StudiesScreen):
            self.push_screen(StudiesScreen(self.services))

    def action_new_study(self) -> None:
        from screens.study_form import StudyFormScreen

        if not isinstance(self.screen, StudyFormScreen):
            self.push_screen(StudyFormScreen(self.services))

    # toasts when a run or a study ends while the operator looks elsewhere ------------------------------

    def watch_study(self, study_id: str, launch) -> None:
        """Follow a study started from the TUI, for its toast when its process ends."""
        self.studies[study_id] = launch

    def on_unmount(self) -> None:
        """Closing: a study's attacks running in a child process stop with it (workbench/study_launch.py)."""
        for launch in self.studies.values():
            getattr(launch, "stop", lambda: None)()

    def look_for_endings(self) -> None:
        self._read_states()
        for study_id, launch in list(self.studies.items()):
            code = launch.poll()
            if code is not None:
                del self.studies[study_id]
                from screens.notices import study_notice

                self._toast(study_notice(study_id, code, launch.error()), study=study_id)

    @work(thread=True, exclusive=True, group="watch", exit_on_error=False)
    def _read_states(self) -> None:
        try:
            rows = self.services.store.list()
        except Exception:  # the sessions home says what is wrong with the catalog; no toast every 2 s
            return
        lost = self.engine_state == "ready" and not self.services.engine_answers()  # `engine stop`, a crash
        self.post_message(StatesRead(rows, engine_lost=lost))

    def on_states_read(self, message: "StatesRead") -> None:
        from screens.notices import ended_runs, run_notice

        if message.engine_lost and self.engine_state == "ready":
            self.services.engine_ready = False
            self.engine_state = "failed"
            self.engine_message = "engine stopped: it no longer answers on its socket; ctrl+r starts it"
            self.notify(self.engine_message, title="engine", severity="error", timeout=15)

        if self.seen_states is not None:
            for row in ended_runs(self.seen_states, message.rows):
                self._toast(run_notice(row), session=row["id"])
        self.seen_states = {row["id"]: row.get("state") for row in message.rows}

    def _toast(self, notice: tuple[str, str], *, session: str | None = None, study: str | None = None) -> None:
        """Toast unless the screen on top already shows that session or study."""
        screen = self.screen
        shown_session = getattr(getattr(screen, "source", None), "session_id", None)
        if (session is not None and shown_session == session) or (study is not None and
                                                                    getattr(screen, "study_id", None) == study):
            return
        message, severity = notice
        self.notify(message, title="study" if study else "run", severity=severity, timeout=8)

    # every binding in the command palette ----------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's own commands, then each binding of the screen and the app once by its title: the screen's
        ``n`` and the app's ``ctrl+n`` are one "New run" entry naming both keys (issue 25: duplicate entries)."""
        # Textual's "Keys" shows its key panel: our Help (f1) lists the same keys in the footer's words, once
        builtin = [command for command in super().get_system_commands(screen) if command.title != "Keys"]
        yield from builtin
        entries: dict[str, tuple[str, list[str], object]] = {}   # title -> (id, keys, callback)
        taken = {command.title for command in builtin}
        for owner, bindings in ((screen, type(screen).BINDINGS), (self, type(self).BINDINGS)):
            for binding in bindings:
                if not isinstance(binding, Binding) or not binding.description:
                    continue
                if binding.action in ("quit", "command_palette") or binding.description in taken:
                    continue
                if owner.check_action(binding.action, ()) is False:  # not offered now (Resume while playing)
                    continue
                key = binding.key.split(",")[0]
                if binding.description in entries:
                    entries[binding.description][1].append(key)
                    continue
                entries[binding.description] = (binding.id or binding.action, [key],
                                                partial(owner.run_action, binding.action))
        for title, (name, keys, callback) in entries.items():
            yield SystemCommand(title, f"{name}  [{', '.join(keys)}]", callback)

    # one place where worker errors become a visible line ---------------------------------------------

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            text = str(error).splitlines()[0] if str(error) else type(error).__name__
            self.notify(text, title=event.worker.name or "error", severity="error", timeout=10)
