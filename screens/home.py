"""Sessions home: every session from the catalog (re-read each second, in a thread), filter, sort,
open (monitor: live or stored), mark several and compare, delete (confirmed), export. The table keeps the
columns that fit the terminal (screens.home_table: whole columns dropped by priority, never a value cut);
under it the highlighted session's detail: what it ran and its verdict (sessions.verdict)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.widgets import DataTable, Header, Input, Static

from screens.home_table import (COLUMNS, STATE_COLOURS, column_widths, deletion_cell, fit_columns, kind_label,
                                requests_of, row_cells)
from screens.messages import DetailLoaded, SessionsLoaded
from screens.services import Services
from screens.widgets.clamped import ClampedText
from screens.widgets.confirm import ConfirmScreen
from screens.widgets.filled_table import clear_for
from screens.widgets.footer import Footer
from sessions.attacks import attack_line, attacks_brief, attacks_of
from sessions.recovery import NotResumable, resume_spec
from sessions.resuming import resumed_by_words
from sessions.export import session_document, write_export
from sessions.store import SessionBusy, SessionDamaged, UnknownSession, busy_message
from sessions.study import cells_of_session
from sessions.summary import format_deletion, summary_metrics, test_headline, took
from sessions.verdict import last_request_only, last_requests, session_verdict

SORTS = ("started", "status", "kind", "method", "df_dr_auc", "test", "duration")  # the columns' order
SORT_LABELS = {"df_dr_auc": "Df/Dr AUC"}   # a sort is named as its column is headed
REFRESH_SECONDS = 1.0


def matches(row: dict, words: list[str]) -> bool:
    text = " ".join(str(row.get(k) or "") for k in ("id", "name", "state", "method", "model", "data")).lower()
    text += " " + format_deletion(row.get("deletion")).lower() + " " + kind_label(row)
    return all(word in text for word in words)


def sort_rows(rows: list[dict], key: str, reverse: bool) -> list[dict]:
    def value(row: dict):
        if key == "started":
            return row.get("created") or 0
        if key == "duration":
            return took(row)
        if key == "kind":  # runs, then pulse runs; each by its number of requests (k=10 after k=5)
            return (row.get("kind") == "pulse", requests_of(row))
        if key in ("df_dr_auc", "test"):
            metrics = summary_metrics(row.get("summary"))
            v = test_headline(metrics) if key == "test" else metrics.get(key)
            return float("-inf") if v is None else v
        return str(row.get("state" if key == "status" else key) or "")

    # "started" newest first by default; the others ascending
    return sorted(rows, key=value, reverse=(not reverse) if key == "started" else reverse)


def detail_text(row: dict, verdict: list[str], compact: bool = False, resumed_by: str | None = None) -> str:
    """The highlighted session in a few lines: what it is, then its verdict (the words of `replay --headless`),
    or why it has none (still running, or how it ended). ``compact`` (80x24, four lines): of a request run's
    verdicts only the last request's, the state it ended in, so that it is not cut mid-sentence."""
    verdict = last_request_only(verdict) if compact else last_requests(verdict)
    method = str(row.get("method") or "").removeprefix("attack:")  # the kind says attack ("attack attack:relearn")
    head = f"{row.get('name') or row['id']}: {row.get('state', '?')}, {kind_label(row)} {method}"
    head += f" on {row.get('model') or '?'} / {row.get('data') or '?'}"
    if deletion := deletion_cell(row):
        head += f", deletion {deletion}" if row.get("kind") != "pulse" else f", forgets {deletion}"
    if verdict:
        return "\n".join([head, *verdict])
    if row.get("state") in ("queued", "running"):
        return head + "\n(no verdict until it finishes)"
    # a stopped run a later run went on from says which (it said only "cancelled by request")
    return head + "".join(f"\n{line}" for line in (row.get("message"), resumed_by) if line)


RESUMABLE_STATES = ("cancelled", "failed", "interrupted")  # the states a run stops in and may be resumed from


class HomeScreen(Screen):
    """The sessions table."""

    SCOPED_CSS = False  # the -compact rules start at the App, above the screen
    DEFAULT_CSS = """
    HomeScreen #engine-status {
        height: 1;
        padding: 0 1;
        background: $boost;
        color: $text-muted;
    }
    HomeScreen #engine-status.-ok {
        color: $success;
    }
    HomeScreen #engine-status.-error {
        background: $error 30%;
        color: $text;
        height: auto;
    }
    HomeScreen #filter {
        margin: 0 1;
    }
    HomeScreen #sessions {
        height: 1fr;
        width: 100%;
    }
    HomeScreen #home-hint {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    HomeScreen #home-detail {
        height: auto;
        max-height: 40%;  /* a verdict per request and a line per attack: room the table can give */
        padding: 0 1;
        background: $boost;
    }
    .-compact HomeScreen #home-detail {
        max-height: 4;
    }
    .-compact HomeScreen #filter {
        border: none;
        height: 1;
        margin: 0;
    }
    """

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
        Binding("R", "resume", "Resume", id="home.resume", show=False),  # the footer is full at 120 columns: f1 lists it
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
        self._columns: list[str] = []
        self._detail_key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="engine-status")
        yield Input(placeholder="filter: words matched against id, method, model, data, state  (/)",
                    id="filter")
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Static("", id="home-hint")
        yield ClampedText("", id="home-detail")
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
        self.marked &= {row["id"] for row in self.rows}  # a session deleted elsewhere is marked no longer
        self.render_table()

    def render_table(self, force: bool = False) -> None:
        words = self.query_one("#filter", Input).value.lower().split()
        shown = sort_rows([r for r in self.rows if matches(r, words)], self.sort_key, self.sort_reverse)
        running = any(r.get("state") in ("queued", "running") for r in shown)
        table = self.query_one("#sessions", DataTable)
        fingerprint = (json.dumps(shown, sort_keys=True, default=str), tuple(sorted(self.marked)),
                       int(time.time()) if running else 0, self.table_width(len(shown)))
        if fingerprint == self._fingerprint and not force:
            return
        self._fingerprint = fingerprint
        current = self.current_id()  # read against the rows drawn so far: the cursor stays on its session
        self.shown = shown
        cells = [row_cells(row, row["id"] in self.marked) for row in shown]
        columns = fit_columns(column_widths(cells), self.table_width(len(shown)))
        self._columns = clear_for(table, columns, self._columns)
        for row, text in zip(shown, cells):
            state = text["status"]
            text["status"] = Text(state, style=self.state_style(state))
            table.add_row(*(text[name] for name in columns), key=row["id"])
        if current is not None:
            for index, row in enumerate(shown):
                if row["id"] == current:
                    table.move_cursor(row=index, animate=False)
                    break
        total = len(self.rows)
        parts = [f"{len(shown)} of {total} sessions" if words else f"{total} sessions",
                 f"sort: {SORT_LABELS.get(self.sort_key, self.sort_key)}{' (reversed)' if self.sort_reverse else ''}"]
        if self.marked:
            out_of_view = len(self.marked - {row["id"] for row in shown})  # marks outlive a filter: said, not lost
            parts.append(f"marked: {len(self.marked)}" + (f", {out_of_view} filtered out" if out_of_view else "")
                         + " (c compares" + (" all)" if out_of_view else ")"))
        hidden = [c for c in COLUMNS if c not in columns]   # a wider terminal shows them
        named = f"hidden: {', '.join(hidden[:2])}" + (f" +{len(hidden) - 2}" if len(hidden) > 2 else "")
        room = (self.size.width or self.app.size.width) - 2
        # what is hidden said as far as the line has room (at 80x24 with marks it was cut: `hidden: kind,`)
        fitting = [text for text in (named, f"hidden: {len(hidden)} columns") if hidden
                   and len("  ".join([*parts, text])) <= room]
        hint = "  ".join(parts + fitting[:1])
        if not total:
            hint = "no sessions yet: n starts a new run (or `mmul-workbench demo`)"
        self.query_one("#home-hint", Static).update(hint)
        self.show_detail()

    def table_width(self, rows: int) -> int:
        """The cells the table's columns may take: its width, less the vertical scrollbar's when its rows
        overflow it (the header takes a line)."""
        table = self.query_one("#sessions", DataTable)
        width = table.size.width or self.app.size.width
        overflows = rows + 1 > table.size.height
        return max(0, width - (table.styles.scrollbar_size_vertical if overflows else 0))

    def state_style(self, state: str) -> Style:
        variable = self.app.theme_variables.get(STATE_COLOURS.get(state, ""), "")
        try:
            colour = Color.parse(variable).rich_color if variable else None
        except Exception:  # a theme without that variable: the plain word
            colour = None
        return Style(color=colour, bold=state == "running")

    def on_resize(self) -> None:
        self.render_table(force=True)
        # the detail's form follows the size (at 80x24 a sequence's last request alone): it was left as it was
        # drawn until the cursor moved, cut mid-line after the terminal shrank
        self.call_after_refresh(self.show_detail)

    # the highlighted session's detail -------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#sessions")
    def _row_highlighted(self) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        """The highlighted session's verdict and its attacks (read in a thread; again only when its row changed)."""
        row = self.current_row()
        key = None if row is None else (row["id"], row.get("state"), row.get("updated"), self.app.has_class("-compact"))
        if key == self._detail_key:
            return
        self._detail_key = key
        if row is None:
            self.query_one("#home-detail", ClampedText).update("")
            return
        self.load_detail(row)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def load_detail(self, row: dict) -> None:
        store = self.services.store
        try:
            lines = session_verdict(store, store.get(row["id"]))
            attacks = attacks_of(store, row["id"])
            if self.app.has_class("-compact"):  # four lines: the attacks in one
                lines += [brief] if (brief := attacks_brief(attacks)) else []
            else:
                lines += [f"attack {attack_line(attack)}" for attack in attacks]
            resumed_by = resumed_by_words(store, row["id"]) if row.get("state") in RESUMABLE_STATES else None
        except (SessionDamaged, UnknownSession, OSError) as exc:
            lines, resumed_by = [str(exc).splitlines()[0]], None
        self.post_message(DetailLoaded(row["id"], detail_text(row, lines, self.app.has_class("-compact"), resumed_by)))

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        if message.session_id == self.current_id():
            self.query_one("#home-detail", ClampedText).update(message.text)

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
        """The next sort among the columns shown (at 80x24 it sorted by the hidden kind and started), ascending
        again (a reversed sort stayed reversed on the next column; a review)."""
        shown = [key for key in SORTS if SORT_LABELS.get(key, key) in self._columns] or list(SORTS)
        at = shown.index(self.sort_key) if self.sort_key in shown else -1
        self.sort_key, self.sort_reverse = shown[(at + 1) % len(shown)], False
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

    def action_resume(self) -> None:
        """Go on with a stopped run of K requests from its resume point, in the engine (`mmul-workbench resume`)."""
        row = self.current_row()
        if row is None:
            return
        try:
            spec = resume_spec(self.services.store, row["id"])
        except NotResumable as exc:
            self.notify(str(exc), severity="warning")
            return
        self.submit_resume(spec, row.get("device"))

    @work(exclusive=True, group="resume", exit_on_error=False)
    async def submit_resume(self, spec: dict, device: str | None) -> None:
        from engine.errors import SpecError
        from screens.services import ServiceError

        try:
            reply = await self.services.submit(spec)
        except (SpecError, ServiceError) as exc:
            self.notify(f"resume: {exc}", severity="error")
            return
        from screens.monitor import MonitorScreen

        self.notify(f"resuming {spec['resumes']['session']} as {reply['session']}")
        self.app.push_screen(MonitorScreen(self.services.live_source(reply["session"]), services=self.services,
                                           replay=False, device=reply.get("device") or device))

    def action_mark(self) -> None:
        sid = self.current_id()
        if sid is None:
            return
        self.marked.symmetric_difference_update({sid})
        self.render_table(force=True)

    def marked_ids(self) -> list[str]:
        """The marked sessions, in the table's order, then those a filter hides."""
        ids = [r["id"] for r in self.shown if r["id"] in self.marked]
        return ids + sorted(self.marked.difference(ids))

    def action_compare(self) -> None:
        ids = self.marked_ids()
        if len(ids) < 2:
            self.notify("mark two or more sessions with space, then press c", severity="warning")
            return
        from screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(ids, self.services))

    def action_delete(self) -> None:
        """The marked sessions, or the highlighted one when none is marked (as `x` exports and `c` compares)."""
        marked = self.marked_ids()
        if marked:
            self.ask_to_delete_marked(marked)
            return
        row = self.current_row()
        if row is None:
            return
        sid = row["id"]
        if row.get("live"):   # refused before the question, not after a yes
            self.notify(busy_message(sid), severity="warning")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.delete_sessions([sid])

        about = ", ".join([*([sid] if row.get("name") else []), str(row.get("method")), str(row.get("state"))])
        cells = cells_of_session(sid, self.services.store.home)   # as `sessions delete` refuses without --force
        study = (f" It is the cell {'; '.join(cells)}: the study's grid lacks it until the study runs it again."
                 if cells else "")
        self.app.push_screen(ConfirmScreen(f"Delete session {row.get('name') or sid} ({about})? Its files are "
                                           f"removed.{study}", yes="Yes, delete"), done)

    def ask_to_delete_marked(self, marked: list[str]) -> None:
        rows = {r["id"]: r for r in self.rows}
        live = [sid for sid in marked if (rows.get(sid) or {}).get("live")]
        if live:   # refused before the question, as for one session
            self.notify(busy_message(live[0]) if len(live) == 1 else
                        f"{len(live)} marked sessions are queued or running ({', '.join(live)}); cancel them first "
                        "or unmark them (space)", severity="warning")
            return
        cells = [cell for sid in marked for cell in cells_of_session(sid, self.services.store.home)]
        study = (f" Study cells among them: {'; '.join(cells)}; the grids lack them until their studies run them "
                 "again." if cells else "")
        names = ", ".join((rows.get(sid) or {}).get("name") or sid for sid in marked[:3])
        more = f" and {len(marked) - 3} more" if len(marked) > 3 else ""

        def done(yes: bool | None) -> None:
            if yes:
                self.delete_sessions(marked)

        what, its = (f"the marked session {names}", "Its") if len(marked) == 1 else \
            (f"the {len(marked)} marked sessions ({names}{more})", "Their")
        shown = {row["id"] for row in self.shown}
        hidden = sum(sid not in shown for sid in marked)   # marked, then filtered out of view: said, as the hint does
        out_of_view = f" {hidden} of them {'is' if hidden == 1 else 'are'} filtered out of view." if hidden else ""
        self.app.push_screen(ConfirmScreen(f"Delete {what}?{out_of_view} {its} files are removed.{study}",
                                           yes="Yes, delete"), done)

    @work(thread=True, group="delete", exit_on_error=False)
    def delete_sessions(self, ids: list[str]) -> None:
        """Each session that can be deleted is; one that cannot is named, and the others still go."""
        deleted = []
        for sid in ids:
            try:
                self.services.store.delete(sid)
            except (SessionBusy, UnknownSession, OSError) as exc:
                self.app.call_from_thread(self.notify, str(exc), severity="error")
                continue
            self.marked.discard(sid)
            deleted.append(sid)
        if deleted:
            self.app.call_from_thread(self.notify, f"deleted {deleted[0]}" if len(deleted) == 1 else
                                      f"deleted {len(deleted)} sessions")
        self.load_rows()

    def action_export(self) -> None:
        """The marked sessions, or the highlighted one when none is marked (as `c` compares the marked)."""
        ids = self.marked_ids()
        if not ids and (row := self.current_row()) is not None:
            ids = [row["id"]]
        if ids:
            self.export_sessions(ids, Path.cwd() / "mmul-exports")

    @work(thread=True, group="export", exit_on_error=False)
    def export_sessions(self, ids: list[str], directory: Path) -> None:
        """Each session that can be read is exported; one that cannot is named, and the others still go."""
        done = []
        for sid in ids:
            try:
                doc = session_document(self.services.store, sid)
                directory.mkdir(parents=True, exist_ok=True)
                for kind in ("json", "csv"):
                    write_export(doc, directory / f"{sid}.{kind}", kind)
            except (SessionDamaged, UnknownSession, OSError) as exc:
                self.app.call_from_thread(self.notify, f"{sid}: {str(exc).splitlines()[0]}", title="export",
                                          severity="error")
            else:
                done.append(sid)
        if done:
            what = f"{done[0]} to {directory}/{done[0]}.json and .csv" if len(done) == 1 else \
                f"{len(done)} sessions to {directory}/ (a .json and a .csv each)"
            self.app.call_from_thread(self.notify, f"exported {what}")
