"""Compare: two or more sessions' curves overlaid in the panels by question (sessions.panels: forget, keep,
privacy, general ability, loss terms; one colour per session, the legend with session names) and their final
metrics side by side. Curves are over unlearning steps only (a run that trained its original lines up with one
that reused a cached one). Events are read in a thread; the curves are transformed for drawing by screens.curves.

Keys: t / m cycle the loss term and the metric overlaid (a metric shows in the panel of its question); x switches the x axis (step, fraction of the
run, request) so a 300-step run lines up with a 5,000-step one; s toggles EMA smoothing (debiased);
l toggles a log y axis; / filters metric names by glob (the plots and the table). Each session keeps
one colour in every plot; the table lists the headline metrics first."""
from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from screens.curves import SMOOTHING, X_AXES, ema, map_x, session_colours
from screens.messages import CompareLoaded
from screens.panels import PanelGrid
from screens.services import Services
from screens.widgets.column_table import ColumnTable
from screens.widgets.filled_table import fill_table
from screens.widgets.footer import Footer
from screens.widgets.plot import Series
from sessions.catalog import described, session_label
from sessions.metric_names import glob_match
from sessions.metric_order import headline_first
from sessions.panels import MAX_SERIES, compare_panels, metric_group
from sessions.series import compare_rows, eval_series, final_metrics, is_unlearning_step, loss_series
from sessions.study import without_study_id

AXIS_LABELS = {"step": "step", "fraction": "fraction of the run", "request": "request"}


def _series(xs, ys) -> Series:
    out = Series()
    out.xs.extend(float(x) for x in xs)
    out.ys.extend(float(y) for y in ys)
    return out


def step_requests(events: list[dict]) -> list[int | None]:
    """The request of each unlearning step, in order (None for a single-request run)."""
    return [event.get("request") for event in events if is_unlearning_step(event)]


def run_entry(session_id: str, meta: dict, events: list[dict]) -> dict:
    """What Compare keeps of one session: its raw curves (x = steps done), the request of each step and
    its final metrics. Its label drops a study cell's study id, which would fill a legend's width with the
    same 18 characters for every cell (the status line names the study)."""
    spec = meta.get("spec") or {}
    name = without_study_id(meta.get("name"))
    return {"id": session_id, "label": session_label(session_id, name, spec.get("method", "?")),
            "meta": meta,
            "losses": loss_series(events), "evals": eval_series(events, split="curve"),
            "steps": step_requests(events), "final": final_metrics(events, meta.get("summary"))}


class CompareScreen(Screen):
    SCOPED_CSS = False  # the -compact rules start at the App, above the screen
    DEFAULT_CSS = """
    CompareScreen #cmp-status {
        height: auto;
        padding: 0 1;
        background: $boost;
    }
    CompareScreen #cmp-plots {
        height: 2fr;
    }
    CompareScreen #cmp-table {
        height: 1fr;
    }
    CompareScreen #cmp-filter {
        margin: 0 1;
    }
    """

    BINDINGS = [
        Binding("t", "next_term", "Loss term", id="compare.term"),
        Binding("m", "next_metric", "Metric", id="compare.metric"),
        Binding("x", "next_axis", "X axis", id="compare.axis"),
        Binding("s", "toggle_smoothing", "Smooth", id="compare.smooth"),
        Binding("l", "toggle_log", "Log scale", id="compare.log"),
        Binding("slash", "focus_filter", "Filter", id="compare.filter"),
        Binding("escape,q", "back", "Back", id="compare.back"),
    ]

    def __init__(self, session_ids: list[str], services: Services) -> None:
        super().__init__()
        self.services = services
        self.session_ids = list(session_ids)
        self.runs: list[dict] = []
        self.terms: list[str] = []
        self.metrics: list[str] = []
        self.term = "total"
        self.metric = "df_dr_auc"
        self.axis = "step"
        self.smoothing = False
        self.log_y = False
        self.pattern = ""
        self.colours: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static(f"comparing {len(self.session_ids)} sessions: loading...", id="cmp-status")
        yield Input(placeholder="metric filter: globs, e.g. *auc*,mia.*  (/)", id="cmp-filter", compact=True)
        yield PanelGrid("cmp", id="cmp-plots")
        # the metric column stays put while the sessions' columns scroll sideways
        table: DataTable = ColumnTable(id="cmp-table", cursor_type="row", zebra_stripes=True, fixed_columns=1)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#cmp-table", DataTable).focus()
        self.load()

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def load(self) -> None:
        store = self.services.store
        runs = []
        try:
            for sid in self.session_ids:
                runs.append(run_entry(sid, store.get(sid), store.events(sid)))
        except Exception as exc:
            self.post_message(CompareLoaded(runs, str(exc).splitlines()[0]))
            return
        self.post_message(CompareLoaded(runs))

    def on_compare_loaded(self, message: CompareLoaded) -> None:
        if message.error:
            self.notify(message.error, severity="error")
        self.runs = message.runs
        self.colours = session_colours(r["label"] for r in self.runs)
        self.apply_filter()

    # what is shown ---------------------------------------------------------------------------------

    def apply_filter(self) -> None:
        """Terms, metrics and table rows the glob selects (the current term/metric kept when it still is)."""
        terms = sorted({t for r in self.runs for t in r["losses"]}, key=lambda t: (t != "total", t))
        metrics = headline_first(m for r in self.runs for m in (*r["evals"], *r["final"]))
        self.terms = glob_match(terms, self.pattern) or terms  # loss terms are few: keep them if none match
        self.metrics = glob_match(metrics, self.pattern)
        if self.terms and self.term not in self.terms:
            self.term = self.terms[0]
        if self.metrics and self.metric not in self.metrics:
            self.metric = self.metrics[0]
        self.draw()
        self.fill_table()

    def fill_table(self) -> None:
        names = glob_match(headline_first(m for r in self.runs for m in r["final"]), self.pattern)
        rows = compare_rows([(r["meta"], r["final"]) for r in self.runs], names)
        fill_table(self.query_one("#cmp-table", DataTable), ["metric", *(r["label"] for r in self.runs)], rows)

    def curve(self, run: dict, raw: tuple[list[float], list[float]]) -> Series:
        xs, ys = raw
        return _series(map_x(xs, self.axis, run["steps"]), ema(ys, SMOOTHING) if self.smoothing else ys)

    def draw(self) -> None:
        """One panel per question over the sessions (the first MAX_SERIES of them), each session in its colour."""
        drawn = [(r["label"],
                  {self.term: self.curve(r, r["losses"][self.term])} if self.term in r["losses"] else {},
                  {m: self.curve(r, r["evals"][m]) for m in self.metrics if m in r["evals"]}) for r in self.runs]
        chosen = {metric_group(self.metric): self.metric} if metric_group(self.metric) else {}
        panels = compare_panels(drawn, chosen=chosen, term=self.term, xlabel=AXIS_LABELS[self.axis])
        for panel in panels:
            panel.title += " (EMA)" if self.smoothing else ""
            for line in panel.lines:   # a session keeps its colour whatever the filter leaves
                line.colour = self.colours.get(line.label, line.colour)
        self.query_one("#cmp-plots", PanelGrid).show(panels, log_y=self.log_y, unfold=metric_group(self.metric))
        self.update_status()

    def update_status(self) -> None:
        ids = ", ".join(described(r["id"], [r["meta"]]) for r in self.runs) or "nothing loaded"
        self.query_one("#cmp-status", Static).update(
            f"comparing {ids}\nx: {self.axis}  smoothing: {f'EMA {SMOOTHING:g}' if self.smoothing else 'off'}  "
            f"y: {'log' if self.log_y else 'linear'}  filter: {self.pattern or '*'}"
            + (f"  plots: the first {MAX_SERIES} sessions" if len(self.runs) > MAX_SERIES else ""))

    # actions ---------------------------------------------------------------------------------------

    @on(Input.Changed, "#cmp-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.pattern = event.value.strip()
        if self.runs:
            self.apply_filter()

    @on(Input.Submitted, "#cmp-filter")
    def _filter_done(self) -> None:
        self.query_one("#cmp-table", DataTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#cmp-filter", Input).focus()

    def action_next_term(self) -> None:
        if self.terms:
            self.term = self.terms[(self.terms.index(self.term) + 1) % len(self.terms)]
            self.draw()

    def action_next_metric(self) -> None:
        if self.metrics:
            self.metric = self.metrics[(self.metrics.index(self.metric) + 1) % len(self.metrics)]
            self.draw()

    def action_next_axis(self) -> None:
        self.axis = X_AXES[(X_AXES.index(self.axis) + 1) % len(X_AXES)]
        self.draw()

    def action_toggle_smoothing(self) -> None:
        self.smoothing = not self.smoothing
        self.draw()

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y
        self.draw()

    def action_back(self) -> None:
        box = self.query_one("#cmp-filter", Input)
        if box.has_focus:
            self.query_one("#cmp-table", DataTable).focus()
            return
        self.app.pop_screen()
