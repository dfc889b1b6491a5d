"""Compare: two or more sessions' curves overlaid on the same plots and their final metrics side
by side. Events are read in a thread; t / m cycle the loss term and the metric that are overlaid."""
from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from screens.messages import CompareLoaded
from screens.services import Services
from screens.widgets.plot import Series, SeriesPlot
from sessions.numbers import fmt
from sessions.series import eval_series, final_table, loss_series
from sessions.summary import summary_metrics


def _series(xs, ys) -> Series:
    out = Series()
    out.xs.extend(float(x) for x in xs)
    out.ys.extend(float(y) for y in ys)
    return out


def final_metrics(events: list[dict], summary) -> dict[str, float]:
    """The last "after" value of each metric, else the summary's metrics."""
    columns, rows = final_table(events)
    after = next((c for c in reversed(columns) if c.startswith("after")), columns[-1] if columns else None)
    out = {name: values[after] for name, values in rows.items() if after in values}
    return out or summary_metrics(summary)


class CompareScreen(Screen):
    BINDINGS = [
        Binding("t", "next_term", "Loss term", id="compare.term"),
        Binding("m", "next_metric", "Metric", id="compare.metric"),
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

    def compose(self) -> ComposeResult:
        yield Static(f"comparing {len(self.session_ids)} sessions: loading...", id="cmp-status")
        with Horizontal(id="cmp-plots"):
            yield SeriesPlot("loss: total", id="cmp-loss")
            yield SeriesPlot("metric over steps", id="cmp-metric")
        table: DataTable = DataTable(id="cmp-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def load(self) -> None:
        store = self.services.store
        runs = []
        try:
            for sid in self.session_ids:
                meta = store.get(sid)
                events = store.events(sid)
                spec = meta.get("spec") or {}
                label = f"{spec.get('method', '?')} {sid[-4:]}"
                runs.append({"id": sid, "label": label, "meta": meta,
                             "losses": {k: _series(*v) for k, v in loss_series(events).items()},
                             "evals": {k: _series(*v) for k, v in eval_series(events).items()},
                             "final": final_metrics(events, meta.get("summary"))})
        except Exception as exc:
            self.post_message(CompareLoaded(runs, str(exc).splitlines()[0]))
            return
        self.post_message(CompareLoaded(runs))

    def on_compare_loaded(self, message: CompareLoaded) -> None:
        if message.error:
            self.notify(message.error, severity="error")
        self.runs = message.runs
        self.terms = sorted({t for r in self.runs for t in r["losses"]}, key=lambda t: (t != "total", t))
        self.metrics = sorted({m for r in self.runs for m in r["evals"]} | {m for r in self.runs for m in r["final"]},
                              key=lambda m: (m != "df_dr_auc", m))
        if self.terms and self.term not in self.terms:
            self.term = self.terms[0]
        if self.metrics and self.metric not in self.metrics:
            self.metric = self.metrics[0]
        self.draw()
        table = self.query_one("#cmp-table", DataTable)
        table.clear(columns=True)
        table.add_columns("metric", *(r["label"] for r in self.runs))
        names = sorted({m for r in self.runs for m in r["final"]})
        for name in names:
            table.add_row(name, *(fmt(r["final"].get(name), name) for r in self.runs))
        for key in ("state", "model", "data"):
            table.add_row(key, *(str((r["meta"].get("spec") or {}).get(key) if key != "state"
                                     else r["meta"].get("state")) for r in self.runs))
        self.query_one("#cmp-status", Static).update(
            "comparing " + ", ".join(r["id"] for r in self.runs) + "   (t: loss term, m: metric)")

    def draw(self) -> None:
        loss = self.query_one("#cmp-loss", SeriesPlot)
        loss.title = f"loss: {self.term}"
        loss.set_series({r["label"]: r["losses"][self.term] for r in self.runs if self.term in r["losses"]})
        metric = self.query_one("#cmp-metric", SeriesPlot)
        metric.title = f"{self.metric} over steps"
        metric.set_series({r["label"]: r["evals"][self.metric] for r in self.runs if self.metric in r["evals"]})

    def action_next_term(self) -> None:
        if self.terms:
            self.term = self.terms[(self.terms.index(self.term) + 1) % len(self.terms)]
            self.draw()

    def action_next_metric(self) -> None:
        if self.metrics:
            self.metric = self.metrics[(self.metrics.index(self.metric) + 1) % len(self.metrics)]
            self.draw()

    def action_back(self) -> None:
        self.app.pop_screen()
