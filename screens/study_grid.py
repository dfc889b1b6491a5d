"""A study's grid: one row per method, one column per metric (mean ± std over the seeds, and n), the
headline metrics first. ``s`` sorts by the column under the cursor (``S`` reverses; clicking a header
does the same); enter opens that method's sessions. The study is re-read each second in a thread, so
a running study fills in as its cells finish."""
from __future__ import annotations

import json

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from screens.messages import StudyLoaded
from screens.services import Services
from screens.study_data import fixed_columns, grid_metrics, grid_rows, header, load_study, progress
from screens.widgets.column_table import ColumnTable
from screens.widgets.footer import Footer
from sessions.study import StudyError, ranking_rule

REFRESH_SECONDS = 1.0


class StudyGridScreen(Screen):
    SCOPED_CSS = False  # the -compact rules start at the App, above the screen
    DEFAULT_CSS = """
    StudyGridScreen #study-status {
        height: auto;
        padding: 0 1;
        background: $boost;
    }
    StudyGridScreen #study-grid {
        height: 1fr;
    }
    StudyGridScreen #study-hint {
        height: auto;
        padding: 0 1;
        color: $text-muted;
    }
    .-compact StudyGridScreen #study-hint {
        display: none;
    }
    """

    BINDINGS = [
        Binding("enter", "open_method", "Sessions", id="study.open"),
        Binding("s", "sort", "Sort by column", id="study.sort"),
        Binding("S", "reverse_sort", "Reverse sort", id="study.reverse"),
        Binding("r", "refresh", "Refresh", id="study.refresh", show=False),
        Binding("escape,q", "back", "Back", id="study.back"),
    ]

    def __init__(self, study_id: str, services: Services) -> None:
        super().__init__()
        self.study_id = study_id
        self.services = services
        self.study: dict | None = None
        self.metrics: list[str] = []
        self.sort_key = "method"
        self.sort_reverse = False
        self.rows: list[list[str]] = []
        self.error: str | None = None
        self.summaries: dict[str, dict] = {}   # finished sessions' summaries, read once
        self._fingerprint: object = None
        self.status_text = f"[b]{study_id}[/b]: loading..."
        self._status_shown: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"[b]{self.study_id}[/b]: loading...", id="study-status")
        yield ColumnTable(id="study-grid", cursor_type="cell", zebra_stripes=True, fixed_columns=1)  # the method stays
        yield Static("", id="study-hint")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#study-grid", DataTable)
        table.focus()
        self.watch(table, "scroll_x", self.show_status, init=False)
        self.load()
        self.set_interval(REFRESH_SECONDS, self.load)

    @work(thread=True, exclusive=True, group="study", exit_on_error=False)
    def load(self) -> None:
        try:
            study = load_study(self.services.store, self.study_id, self.services.forget_quality, self.summaries)
        except StudyError as exc:
            self.post_message(StudyLoaded(None, str(exc)))
        except Exception as exc:  # a session that vanished or is damaged mid-read: say so, try again next poll
            self.post_message(StudyLoaded(None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
        else:
            self.post_message(StudyLoaded(study))

    def on_study_loaded(self, message: StudyLoaded) -> None:
        if message.study is None:
            self.error = message.error
            self.show_status()
            return
        self.error = None
        self.study = message.study
        self.render_grid()
        self.show_status()  # each poll: the first one can run before the grid has its final width

    def render_grid(self, force: bool = False) -> None:
        study = self.study
        if study is None:
            return
        fingerprint = json.dumps([study["methods"], [(c["session"], c["state"]) for c in study["cells"]],
                                  study.get("ranking"), self.sort_key, self.sort_reverse], sort_keys=True, default=str)
        if fingerprint == self._fingerprint and not force:
            return
        self._fingerprint = fingerprint
        spec = study["spec"]
        self.status_text = (f"[b]{self.study_id}[/b]  {spec.get('model')} on {spec.get('data')}, seeds "
                            f"{', '.join(map(str, spec.get('seeds') or []))}: {progress(study)}")
        table = self.query_one("#study-grid", DataTable)
        cursor = table.cursor_coordinate
        self.metrics = grid_metrics(study)
        self.rows = grid_rows(study, self.metrics, self.sort_key, self.sort_reverse)
        table.clear(columns=True)
        for key in (*fixed_columns(study), *self.metrics):
            marker = (" v" if self.sort_reverse else " ^") if key == self.sort_key else ""
            table.add_column(header(key) + marker, key=key)
        for row in self.rows:
            table.add_row(*row, key=row[0])
        if self.rows:
            table.cursor_coordinate = table.validate_cursor_coordinate(cursor)
        self.call_after_refresh(self.show_status)
        ranking = study.get("ranking")
        # the rank column read as contradicting its numbers (a method closest to Retrain's AUC "over tol.") while
        # the rule that decides it, and the tolerance, were said only by `study` on a terminal
        rule = f"rank by closeness to Retrain: {ranking_rule(ranking)}\n" if ranking else ""
        self.query_one("#study-hint", Static).update(
            f"{rule}sort: {header(self.sort_key)}{' (reversed)' if self.sort_reverse else ''}   "
            "s sorts by the cursor's column, S reverses, enter shows the method's sessions; mean ± std, n = "
            "finished/runs")

    def show_status(self, *_) -> None:
        """The status line, with the metric columns out of view: forget quality and MIA sat past the right edge of
        an 80- or 120-column grid with nothing saying so (a review)."""
        if self.error is not None:  # a load's error stays said (a resize or a scroll wrote the plain status over it)
            text = f"[b]{self.study_id}[/b]: {self.error}"
        else:
            left, right = self.query_one("#study-grid", ColumnTable).columns_out_of_view()
            parts = [self.status_text]
            if right:
                parts.append(f"→ {', '.join(right[:2])}" + (f" +{len(right) - 2}" if len(right) > 2 else ""))
            if left:
                parts.append(f"← {len(left)} column{'s' if len(left) > 1 else ''}")
            text = "   ".join(parts)
        if text != self._status_shown:   # read each second: laid out again only when it changed
            self._status_shown = text
            self.query_one("#study-status", Static).update(text)

    def on_resize(self) -> None:
        self.call_after_refresh(self.show_status)

    # actions ---------------------------------------------------------------------------------------

    def column_key(self, column: int) -> str:
        keys = [*fixed_columns(self.study or {}), *self.metrics]
        return keys[column] if 0 <= column < len(keys) else "method"

    def sort_by(self, key: str) -> None:
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key, self.sort_reverse = key, False
        self.render_grid(force=True)

    def action_sort(self) -> None:
        self.sort_by(self.column_key(self.query_one("#study-grid", DataTable).cursor_column))

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.render_grid(force=True)

    @on(DataTable.HeaderSelected, "#study-grid")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(self.column_key(event.column_index))

    @on(DataTable.CellSelected, "#study-grid")
    def _cell_selected(self) -> None:
        self.action_open_method()

    def action_open_method(self) -> None:
        table = self.query_one("#study-grid", DataTable)
        if self.study is None or not self.rows or table.cursor_row >= len(self.rows):
            return
        from screens.study_sessions import StudySessionsScreen

        self.app.push_screen(StudySessionsScreen(self.study_id, self.rows[table.cursor_row][0], self.services))

    def action_refresh(self) -> None:
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
