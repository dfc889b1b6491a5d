"""Sessions home: every session from the catalog (re-read each second, in a thread), filter, sort,
open (monitor: live or stored), mark several and compare, delete (confirmed), export."""
from __future__ import annotations

import json
import time
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from screens.messages import SessionsLoaded
from screens.services import Services
from screens.widgets.confirm import ConfirmScreen
from sessions.export import session_document, write_export
from sessions.store import SessionBusy, SessionDamaged, UnknownSession
from sessions.numbers import fmt, format_duration
from sessions.summary import format_deletion, run_seconds, summary_metrics, test_headline, test_headline_name

SORTS = ("started", "status", "method", "df_dr_auc", "test", "duration")
# "test": the test split's headline, r_mean (retrieval) or accuracy (classification)
COLUMNS = ("", "session", "status", "method", "Df/Dr AUC", "test", "model", "data", "deletion",
           "started", "duration")
REFRESH_SECONDS = 1.0


def matches(row: dict, words: list[str]) -> bool:
    text = " ".join(str(row.get(k) or "") for k in ("id", "name", "state", "method", "model", "data")).lower()
    text += " " + format_deletion(row.get("deletion")).lower()
    return all(word in text for word in words)


def sort_rows(rows: list[dict], key: str, reverse: bool) -> list[dict]:
    def value(row: dict):
        if key == "started":
            return row.get("created") or 0
        if key == "duration":
            return run_seconds(row)
        if key in ("df_dr_auc", "test"):
            metrics = summary_metrics(row.get("summary"))
            v = test_headline(metrics) if key == "test" else metrics.get(key)
            return float("-inf") if v is None else v
        return str(row.get("state" if key == "status" else key) or "")

    # "started" newest first by default; the others ascending
    return sorted(rows, key=value, reverse=(not reverse) if key == "started" else reverse)


class HomeScreen(Screen):
    """The sessions table."""

    BINDINGS = [
        Binding("enter", "open", "Open", id="home.open"),
        Binding("slash", "focus_filter", "Filter", id="home.filter"),
        Binding("space", "mark", "Mark", id="home.mark"),
        Binding("c", "compare", "Compare", id="home.compare"),
        Binding("n", "app.new_run", "New run", id="home.new_run"),
        Binding("t", "app.studies", "Studies", id="home.studies"),
        Binding("s", "cycle_sort", "Sort", id="home.sort"),
        Binding("S", "reverse_sort", "Reverse sort", id="home.reverse", show=False),
        Binding("d", "delete", "Delete", id="home.delete"),
        Binding("x", "export", "Export", id="home.export"),
        Binding("r", "refresh", "Refresh", id="home.refresh", show=False),
        Binding("escape", "clear_filter", "Clear filter", id="home.clear_filter", show=False),
    ]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.rows: list[dict] = []
        self.shown: list[dict] = []
        self.marked: set[str] = set()
        self.sort_key = "started"
        self.sort_reverse = False
        self._fingerprint: object = None
        self._load_error: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="engine-status")
        yield Input(placeholder="filter: words matched against id, method, model, data, state  (/)",
                    id="filter")
        table: DataTable = DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Static("", id="home-hint")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "engine_message", self._show_engine)
        self.query_one("#sessions", DataTable).focus()
        self.load_rows()
        self.set_interval(REFRESH_SECONDS, self.load_rows)

    def _show_engine(self, message: str) -> None:
        state = getattr(self.app, "engine_state", "off")
        widget = self.query_one("#engine-status", Static)
        widget.update(message or "engine off (ctrl+r starts it)")
        widget.set_class(state == "failed", "-error")
        widget.set_class(state == "ready", "-ok")

    # data ----------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="catalog", exit_on_error=False)
    def load_rows(self) -> None:
        """Read the catalog (one small file) off the UI thread."""
        try:
            rows = self.services.store.list()
        except Exception as exc:
            self.post_message(SessionsLoaded(None, str(exc).splitlines()[0]))
        else:
            self.post_message(SessionsLoaded(rows))

    def on_sessions_loaded(self, message: SessionsLoaded) -> None:
        if message.error:
            if message.error != self._load_error:
                self.notify(message.error, title="sessions", severity="error", timeout=10)
            self._load_error = message.error
            return
        self._load_error = None
        self.rows = message.rows or []
        self.render_table()

    def render_table(self, force: bool = False) -> None:
        words = self.query_one("#filter", Input).value.lower().split()
        shown = sort_rows([r for r in self.rows if matches(r, words)], self.sort_key, self.sort_reverse)
        running = any(r.get("state") in ("queued", "running") for r in shown)
        fingerprint = (json.dumps(shown, sort_keys=True, default=str), tuple(sorted(self.marked)),
                       int(time.time()) if running else 0)
        if fingerprint == self._fingerprint and not force:
            return
        self._fingerprint = fingerprint
        self.shown = shown
        table = self.query_one("#sessions", DataTable)
        current = self.current_id()
        table.clear()
        for row in shown:
            metrics = summary_metrics(row.get("summary"))
            label = row.get("name") or row["id"]
            table.add_row(
                "*" if row["id"] in self.marked else " ",
                label, row.get("state", "?"), fmt(row.get("method")),
                fmt(metrics.get("df_dr_auc"), "df_dr_auc"), fmt(test_headline(metrics), test_headline_name(metrics)),
                fmt(row.get("model")), fmt(row.get("data")), format_deletion(row.get("deletion")),
                time.strftime("%m-%d %H:%M", time.localtime(row.get("created") or 0)),
                format_duration(run_seconds(row)),
                key=row["id"],
            )
        if current is not None:
            for index, row in enumerate(shown):
                if row["id"] == current:
                    table.move_cursor(row=index, animate=False)
                    break
        total = len(self.rows)
        hint = f"{len(shown)} of {total} sessions" if words else f"{total} sessions"
        hint += f"  sort: {self.sort_key}{' (reversed)' if self.sort_reverse else ''}"
        if self.marked:
            hint += f"  marked: {len(self.marked)} (c compares)"
        if not total:
            hint = "no sessions yet: n starts a new run (or `mmul-workbench demo`)"
        self.query_one("#home-hint", Static).update(hint)

    def current_id(self) -> str | None:
        table = self.query_one("#sessions", DataTable)
        if not self.shown or table.cursor_row is None or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row]["id"]

    def current_row(self) -> dict | None:
        sid = self.current_id()
        return next((r for r in self.shown if r["id"] == sid), None)

    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self.render_table()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#sessions", DataTable).focus()

    @on(DataTable.RowSelected, "#sessions")
    def _row_selected(self) -> None:
        self.action_open()

    # actions -------------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.load_rows()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        self.query_one("#sessions", DataTable).focus()

    def action_cycle_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self.render_table(force=True)

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.render_table(force=True)

    def action_open(self) -> None:
        row = self.current_row()
        if row is None:
            return
        from screens.monitor import MonitorScreen

        self.app.push_screen(MonitorScreen(self.services.source_for(row), services=self.services,
                                           device=row.get("device")))

    def action_mark(self) -> None:
        sid = self.current_id()
        if sid is None:
            return
        self.marked.symmetric_difference_update({sid})
        self.render_table(force=True)

    def action_compare(self) -> None:
        ids = [r["id"] for r in self.shown if r["id"] in self.marked]
        ids += [sid for sid in self.marked if sid not in ids]
        if len(ids) < 2:
            self.notify("mark two or more sessions with space, then press c", severity="warning")
            return
        from screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(ids, self.services))

    def action_delete(self) -> None:
        row = self.current_row()
        if row is None:
            return
        sid = row["id"]

        def done(yes: bool | None) -> None:
            if yes:
                self.delete_session(sid)

        self.app.push_screen(ConfirmScreen(f"Delete session {sid} ({row.get('method')}, "
                                           f"{row.get('state')})? Its files are removed."), done)

    @work(thread=True, group="delete", exit_on_error=False)
    def delete_session(self, sid: str) -> None:
        try:
            self.services.store.delete(sid)
        except (SessionBusy, UnknownSession, OSError) as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.marked.discard(sid)
        self.app.call_from_thread(self.notify, f"deleted {sid}")
        self.load_rows()

    def action_export(self) -> None:
        row = self.current_row()
        if row is not None:
            self.export_session(row["id"], Path.cwd() / "mmul-exports")

    @work(thread=True, group="export", exit_on_error=False)
    def export_session(self, sid: str, directory: Path) -> None:
        try:
            doc = session_document(self.services.store, sid)
            directory.mkdir(parents=True, exist_ok=True)
            for kind in ("json", "csv"):
                write_export(doc, directory / f"{sid}.{kind}", kind)
        except (SessionDamaged, UnknownSession, OSError) as exc:
            self.app.call_from_thread(self.notify, str(exc).splitlines()[0], title="export", severity="error")
            return
        self.app.call_from_thread(self.notify, f"exported {sid} to {directory}/{sid}.json and .csv")
