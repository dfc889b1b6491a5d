"""Studies: every study under $MMUL_HOME/studies (re-read every two seconds, in a thread), with its
protocol and how many of its runs finished; enter opens its grid, n starts a new one."""
from __future__ import annotations

import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from screens.messages import StudiesLoaded
from screens.services import Services
from screens.home_table import cell_widths, fit_columns
from screens.study_data import list_studies
from screens.widgets.filled_table import clear_for
from screens.widgets.footer import Footer
from sessions.summary import format_deletion

REFRESH_SECONDS = 2.0
# progress first after the id
COLUMNS = ("study", "runs", "methods", "model", "data", "deletion", "seeds", "updated")
# what a narrow terminal keeps (it cut the columns beyond its edge mid-word: "delet", "rando")
PRIORITY = ("study", "runs", "methods", "data", "model", "updated", "deletion", "seeds")


def study_row(row: dict) -> tuple[str, ...]:
    """A study in words, for the list (a damaged record says why in the methods column)."""
    spec, cells = row["spec"], row["cells"]
    if row.get("error"):
        return row["id"], "-", row["error"], "-", "-", "-", "-", "-"
    runs = len(spec.get("methods") or []) * len(spec.get("seeds") or [])
    finished = sum(cell.get("state") == "finished" for cell in cells)
    return (row["id"], f"{finished}/{runs}", ",".join(spec.get("methods") or []), str(spec.get("model")),
            str(spec.get("data")), format_deletion(spec.get("deletion")), ",".join(map(str, spec.get("seeds") or [])),
            time.strftime("%m-%d %H:%M", time.localtime(row["updated"])))


class StudiesScreen(Screen):
    DEFAULT_CSS = """
    StudiesScreen #studies-status {
        height: auto;
        padding: 0 1;
        background: $boost;
    }
    StudiesScreen #studies {
        height: 1fr;
    }
    """
    BINDINGS = [
        Binding("enter", "open", "Open grid", id="studies.open"),
        Binding("n", "app.new_study", "New study", id="studies.new"),
        Binding("r", "refresh", "Refresh", id="studies.refresh", show=False),
        Binding("escape,q", "back", "Back", id="studies.back"),
    ]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.rows: list[dict] = []
        self._columns: list[str] = []  # the columns drawn now

    def compose(self) -> ComposeResult:
        yield Static("[b]Studies[/b]  enter opens a study's grid, n starts a new study", id="studies-status")
        yield DataTable(id="studies", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#studies", DataTable).focus()
        self.load()
        self.set_interval(REFRESH_SECONDS, self.load)

    @work(thread=True, exclusive=True, group="studies", exit_on_error=False)
    def load(self) -> None:
        self.post_message(StudiesLoaded(list_studies(self.services.store)))

    def on_studies_loaded(self, message: StudiesLoaded) -> None:
        shown = [study_row(row) for row in message.rows]
        if shown == [study_row(row) for row in self.rows] and self.rows and self._columns:
            return
        self.rows = message.rows
        self.render_rows()

    def on_resize(self) -> None:
        self.render_rows()

    def render_rows(self) -> None:
        """The studies in the columns that fit the table's width (the lowest-priority ones left out, and named)."""
        shown = [study_row(row) for row in self.rows]
        table = self.query_one("#studies", DataTable)
        columns = fit_columns(cell_widths(COLUMNS, shown), max(table.size.width - 2, 40), PRIORITY, COLUMNS)
        cursor = table.cursor_row
        self._columns = clear_for(table, columns, self._columns)
        for row in shown:
            table.add_row(*(row[COLUMNS.index(name)] for name in columns), key=row[0])
        if shown:
            table.move_cursor(row=min(cursor, len(shown) - 1), animate=False)
        hidden = [name for name in COLUMNS if name not in columns]
        self.query_one("#studies-status", Static).update(
            (f"[b]Studies[/b]  {len(shown)} in all; enter opens a study's grid, n starts a new study"
             + (f"  hidden: {', '.join(hidden)}" if hidden else ""))
            if shown else "[b]Studies[/b]  none yet: n starts one (or `mmul-workbench study ...`)")

    @on(DataTable.RowSelected, "#studies")
    def _row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        row = self.query_one("#studies", DataTable).cursor_row
        if not 0 <= row < len(self.rows) or self.rows[row].get("error"):
            return
        from screens.study_grid import StudyGridScreen

        self.app.push_screen(StudyGridScreen(self.rows[row]["id"], self.services))

    def action_refresh(self) -> None:
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
