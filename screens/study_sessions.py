"""One method's sessions in a study: a row per seed (state, session, its headline metrics); enter opens
the session in the monitor (live while it runs, else replay), c compares them. Re-read each second."""
from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from screens.messages import StudyLoaded
from screens.services import Services
from screens.study_data import load_study, method_cells
from screens.widgets.footer import Footer
from sessions.catalog import session_label
from sessions.numbers import fmt
from sessions.study import without_study_id
from sessions.summary import summary_metrics, test_headline, test_headline_name, took

REFRESH_SECONDS = 1.0
COLUMNS = ("seed", "state", "session", "Df/Dr AUC", "test", "duration")


class StudySessionsScreen(Screen):
    SCOPED_CSS = False  # the -compact rules start at the App, above the screen
    DEFAULT_CSS = """
    StudySessionsScreen #study-sessions-status {
        height: auto;
        padding: 0 1;
        background: $boost;
    }
    StudySessionsScreen #study-sessions {
        height: 1fr;
    }
    """

    BINDINGS = [
        Binding("enter", "open", "Open", id="study_sessions.open"),
        Binding("c", "compare", "Compare", id="study_sessions.compare"),
        Binding("escape,q", "back", "Back", id="study_sessions.back"),
    ]

    def __init__(self, study_id: str, method: str, services: Services) -> None:
        super().__init__()
        self.study_id, self.method, self.services = study_id, method, services
        self.cells: list[dict] = []
        self.summaries: dict[str, dict] = {}

    def compose(self) -> ComposeResult:
        yield Static(f"[b]{self.method}[/b] in {self.study_id}: loading...", id="study-sessions-status")
        table: DataTable = DataTable(id="study-sessions", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#study-sessions", DataTable).focus()
        self.load()
        self.set_interval(REFRESH_SECONDS, self.load)

    @work(thread=True, exclusive=True, group="study", exit_on_error=False)
    def load(self) -> None:
        try:
            # no KS here: this screen shows each run's own numbers
            self.post_message(StudyLoaded(load_study(self.services.store, self.study_id, None, self.summaries)))
        except Exception as exc:  # StudyError, a session that vanished mid-read: one line, next poll again
            self.post_message(StudyLoaded(None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))

    def on_study_loaded(self, message: StudyLoaded) -> None:
        status = self.query_one("#study-sessions-status", Static)
        if message.study is None:
            status.update(f"[b]{self.method}[/b] in {self.study_id}: {message.error}")
            return
        cells = method_cells(message.study, self.method)
        status.update(f"[b]{self.method}[/b] in {self.study_id}: {len(cells)} run{'' if len(cells) == 1 else 's'}   enter opens one, "
                      "c compares them")
        if [(c["session"], c["state"], (c["row"] or {}).get("summary")) for c in cells] == \
                [(c["session"], c["state"], (c["row"] or {}).get("summary")) for c in self.cells]:
            return
        self.cells = cells
        table = self.query_one("#study-sessions", DataTable)
        cursor = table.cursor_row
        table.clear()
        for cell in cells:
            row = cell["row"] or {}
            metrics = summary_metrics(row.get("summary"))
            label = session_label(cell["session"], without_study_id(row.get("name")), self.method) \
                if cell["session"] else "-"
            table.add_row(str(cell["seed"]), cell["state"], label,
                          fmt(metrics.get("df_dr_auc"), "df_dr_auc"),
                          fmt(test_headline(metrics), test_headline_name(metrics)),
                          fmt(took(row), "seconds") if row else "-")  # as the home and `sessions list`
        if cells:
            table.move_cursor(row=min(cursor, len(cells) - 1), animate=False)

    def current(self) -> dict | None:
        row = self.query_one("#study-sessions", DataTable).cursor_row
        return self.cells[row] if 0 <= row < len(self.cells) else None

    def action_open(self) -> None:
        cell = self.current()
        if cell is None or not cell["row"]:
            self.notify("this run has no session yet", severity="warning")
            return
        from screens.monitor import MonitorScreen

        self.app.push_screen(MonitorScreen(self.services.source_for(cell["row"]), services=self.services,
                                           device=cell["row"].get("device")))

    def on_data_table_row_selected(self) -> None:
        self.action_open()

    def action_compare(self) -> None:
        ids = [c["session"] for c in self.cells if c["row"]]
        if len(ids) < 2:
            self.notify("compare needs two or more of this method's runs with a session", severity="warning")
            return
        from screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(ids, self.services))

    def action_back(self) -> None:
        self.app.pop_screen()
