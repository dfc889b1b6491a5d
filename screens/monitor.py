"""The monitor: live view of a run AND replay of a stored one (the same screen, two sources).

The curves are drawn as panels by question (sessions.panels: forget, keep, privacy, general ability, loss
terms), over unlearning steps: when the run trained its original, those steps are counted apart (the status
line says "original trained N steps") and not drawn. The before/after table lists the headline metrics first.

A worker reads the ``EventSource`` and only appends events to a backlog. A timer (4 Hz) moves
events from the backlog into the ``RunModel`` (all of them when live; ``speed`` x 40 per second in
replay, none while paused) and redraws only what changed; each plot downsamples to ~2 points per
column, the model keeps every point.

The status line also shows the device the run is on: the last ``device`` event (name, and on CUDA
its utilisation and memory, sampled by the engine, so a replay shows them too), else the device the
run resolved (its result's ``device``), else the spec's; and the latest ``memory_mb`` a step carried
(peak CUDA memory, or the engine's peak resident memory on the CPU); "engine disconnected" when a live source's connection stops hearing the engine's heartbeat.
The log pane follows its tail only while the user is at its bottom; scrolled up, its border counts the
lines that arrived since ("N new").
"""
from __future__ import annotations

import asyncio
import time
from collections import deque

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Static

from engine import spec as specs
from screens.panels import PanelGrid
from screens.history_heatmap import HistoryHeatmap
from screens.services import ServiceError, Services
from screens.widgets.clamped import ClampedText
from screens.widgets.column_table import ColumnTable
from screens.widgets.filled_table import fill_table
from screens.widgets.confirm import ConfirmScreen
from screens.widgets.footer import Footer
from screens.widgets.plot import Series
from screens.widgets.tail_log import TailLog
from sessions.history import history_from_events, history_metric
from sessions.metric_names import flatten, short_name
from sessions.numbers import fmt, fmt_delta
from sessions.protocol import HEARTBEAT_INTERVAL
from sessions.schema import TERMINAL_STATES
from sessions.metric_order import headline_first
from sessions.panels import ATTACK_BEFORE, Panel, run_panels
from sessions.series import column_label, is_baseline_step, is_training_step, plotted_metrics
from sessions.summary import deletion_line
from sessions.verdict import last_request_only, last_requests, retrain_reference, session_verdict, without_cost

TICK_SECONDS = 0.25          # redraw at most 4 times a second
REPLAY_RATE = 40             # events per second at speed 1
MAX_APPLY_PER_TICK = 50_000  # a huge backlog catches up over a few ticks, the UI stays responsive
SPEEDS = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
LOG_LINES = 500
REPLAY_TARGET_SECONDS = 10   # the default speed plays a stored session in about this long
STALE_AFTER = 3 * HEARTBEAT_INTERVAL  # no message from the engine for this long: "engine disconnected"


def skipped_in_replay(event: dict) -> bool:
    """A step of the original's training: counted by the status line, not drawn, so a replay does not wait on it."""
    return event.get("kind") == "step" and is_training_step(event)


class RunModel:
    """Everything the monitor draws, built from events (pure Python; testable without a screen)."""

    def __init__(self) -> None:
        self.losses: dict[str, Series] = {}
        self.evals: dict[str, Series] = {}      # during the run and after it (and after each request)
        self.history: list[dict] = []  # eval events of split "history": the heatmap's rows
        self.columns: list[str] = []
        self.final: dict[str, dict[str, float]] = {}
        self.logs: list[str] = []      # lines not yet shown
        self.x = 0                     # unlearning steps seen (the x axis, across requests)
        self.training_steps = 0        # steps of the original's training, when it ran in this session
        self.applied = 0
        self.last_seq = -1
        self.attack = False            # an attack session: its `before` evaluation is the unlearned model
        self.state: str | None = None
        self.phase: str | None = None
        self.request: int | None = None
        self.lr: float | None = None
        self.message: str | None = None
        self.device: str | None = None          # a ``device`` field of any event
        self.memory_mb: float | None = None     # the latest ``memory_mb`` of any event
        self.devices: list[dict] = []           # the last ``device`` event's devices

    def apply(self, event: dict) -> str:
        """Fold one event in; returns what changed: loss, eval, summary, log, status or ''."""
        self.applied += 1
        self.last_seq = event.get("seq", self.last_seq)
        kind = event.get("kind")
        if event.get("device"):
            self.device = str(event["device"])
        memory = event.get("memory_mb")
        if isinstance(memory, (int, float)) and not isinstance(memory, bool):
            self.memory_mb = float(memory)
        if kind == "device":
            self.devices = [d for d in event.get("devices") or [] if isinstance(d, dict) and d.get("name")]
            return "status"
        if kind == "step" and is_training_step(event):
            self.training_steps += 1
            self.phase = event.get("phase", self.phase)
            return "status"
        if is_baseline_step(event):   # Retrain relearned beside an attack: not this session's curve
            return "status"
        if kind == "step":
            for term, value in (event.get("losses") or {}).items():
                if isinstance(value, (int, float)):
                    series = self.losses.get(term)
                    if series is None:
                        series = self.losses[term] = Series()
                    series.append(self.x, float(value))
            self.x += 1
            self.lr = event.get("lr", self.lr)
            self.phase = event.get("phase", self.phase)
            if event.get("request") is not None:
                self.request = event["request"]
            return "loss"
        if kind == "eval":
            metrics = flatten(event.get("metrics") or {})
            split = event.get("split")
            self.attack = self.attack or event.get("phase") == "attack"   # its `before` is the unlearned model
            if split == "history":
                self.history.append(event)
                return "history"
            if split == "step":
                for label, value in plotted_metrics(metrics):
                    self.evals.setdefault(label, Series()).append(self.x, value)
                return "eval"
            label = column_label(event)
            if label not in self.columns:
                self.columns.append(label)
            for name, value in metrics.items():
                self.final.setdefault(name, {})[label] = value
            if split == "after":  # a curve ends at the run's (or the request's) final evaluation
                for label, value in plotted_metrics(metrics):
                    self.evals.setdefault(label, Series()).append(self.x, value)
            return "summary"
        if kind == "log":
            self.logs.append(f"{event.get('level', 'info'):>7} {event.get('message', '')}")
            return "log"
        if kind == "status":
            self.state = event.get("state")
            self.message = event.get("message") or self.message
            self.logs.append(f" status {self.state}" + (f": {event['message']}" if event.get("message") else ""))
            return "status"
        if kind == "phase":
            self.phase = event.get("name")
            if event.get("request") is not None:
                self.request = event["request"]
            self.logs.append(f"  phase {self.phase}" + (f" (request {self.request})"
                                                         if event.get("request") is not None else ""))
            return "log"
        if kind == "artifact":
            self.logs.append(f"  saved {event.get('name')}: {event.get('path')}")
            return "log"
        return ""

    def panels(self, retrain: dict | None = None) -> list[Panel]:
        """The panels drawn (sessions.panels), the original's values and ``retrain``'s as references."""
        before = {name: values["before"] for name, values in self.final.items() if "before" in values}
        return run_panels(self.losses, self.evals, steps=self.x, before=before, retrain=retrain,
                          before_label=ATTACK_BEFORE if self.attack else "original")

    def summary_rows(self) -> list[tuple[str, ...]]:
        """(metric, before, after, delta) when both exist, else one column per split; headlines first."""
        rows = []
        before = "before" if "before" in self.columns else None
        after = next((c for c in reversed(self.columns) if c.startswith("after")), None)
        for name in headline_first(self.final):
            values = self.final[name]
            b = values.get(before) if before else None
            a = values.get(after) if after else None
            if a is None and b is None and values:
                a = list(values.values())[-1]
            rows.append((short_name(name), fmt(b, name), fmt(a, name), fmt_delta(b, a, name)))
        return rows


SUMMARY_HEADERS = ("metric", "before", "after", "delta")


def after_cancel(spec: dict) -> str:
    """What a cancelled run can do next, as its spec says: a run of K requests that writes resume points goes on
    from its last one (the dialog said every run starts again from its first request)."""
    every = specs.resume_minutes(spec)
    if every is not None:
        cadence = "after every request" if every == 0 else f"every {every:g} minutes"
        return (f"It goes on later from its last resume point (written {cadence}) with R on the home or "
                "`mmul-workbench resume`; stopped before its first point, it starts again from its first request.")
    return "Run it again to start it again from its start."


class MonitorScreen(Screen):
    """Panels by question (forget, keep, privacy, general ability, loss terms), the before/after table
    (headlines first; it wins the space over the log at 80x24), log tail and status. ``replay`` (default: not ``source.live``) adds pause/step/speed/end."""

    SCOPED_CSS = False  # the -compact rules start at the App, above the screen
    DEFAULT_CSS = """
    MonitorScreen #mon-status {
        height: auto;
        padding: 0 1;
        background: $boost;
        text-wrap: nowrap;  /* one line at 80 columns: update_status leaves out what does not fit */
        text-overflow: ellipsis;
    }
    MonitorScreen #mon-status.-disconnected {
        background: $error 40%;
    }
    MonitorScreen #mon-plots {
        height: 2fr;
    }
    MonitorScreen #mon-bottom {
        height: 1fr;
        min-height: 8;
    }
    MonitorScreen #mon-summary-box {
        width: 2fr;  /* metric, before, after and delta need about 55 cells; the log and the heatmap give way */
        border: round $panel;
    }
    MonitorScreen #mon-summary {
        height: 1fr;
    }
    MonitorScreen #mon-verdict {
        display: none;
        height: auto;
        max-height: 50%;
        padding: 0 1;
        color: $text;
        background: $boost;
    }
    MonitorScreen #mon-verdict.-shown {
        display: block;
    }
    MonitorScreen #mon-log {
        width: 1fr;
        border: round $panel;
        border-title-color: $text-muted;
        border-subtitle-color: $warning;
        border-subtitle-style: bold;
        background: $surface;
    }
    /* a session that ended without one unlearning step (a quantize or rephrase attack, a run that failed before
       it trained) has nothing over steps to draw: its table and log take the screen */
    MonitorScreen.-stepless #mon-plots {
        display: none;
    }
    /* at 80x24 the before/after table wins the space over the log */
    .-compact MonitorScreen #mon-plots {
        height: 1fr;
    }
    .-compact MonitorScreen #mon-bottom {
        min-height: 6;
    }
    .-compact MonitorScreen #mon-log {
        display: none;
    }
    """


    BINDINGS = [
        Binding("ctrl+k", "cancel_run", "Cancel run", id="monitor.cancel"),   # first: a live run's footer has room for it
        Binding("space", "toggle_pause", "Pause", id="monitor.pause"),
        Binding("space", "resume", "Resume", id="monitor.resume"),   # the same key: the footer's word while paused
        Binding("n", "step", "Step", id="monitor.step"),
        Binding("plus,equals_sign", "faster", "Faster", id="monitor.faster"),
        Binding("minus", "slower", "Slower", id="monitor.slower"),
        Binding("e", "to_end", "Jump to end", id="monitor.end"),
        Binding("escape,q", "back", "Back", id="monitor.back"),
    ]

    def __init__(self, source, *, services: Services | None = None, replay: bool | None = None,
                 standalone: bool = False, device: str | None = None) -> None:
        super().__init__()
        self.source = source
        self.services = services      # cancels a live run (a replay needs none)
        self.device = device          # from the run's spec when the caller knows it
        self.replay = (not getattr(source, "live", False)) if replay is None else replay
        self.standalone = standalone
        self.model = RunModel()
        self.backlog: deque[dict] = deque()
        self.received = 0
        self.paced = 0  # received events a replay spends time on: not the original's training steps (not drawn)
        self.source_done = False
        self.source_error: str | None = None
        self.source_error_code: str | None = None
        self.log_unseen = 0           # log lines that arrived while the user was scrolled up
        self.paused = False
        self.speed: float = 1
        self.speed_set = False
        self.to_end = not self.replay
        self._budget = 0.0
        self._dirty: set[str] = set()
        self.redraws = 0
        self.started = time.monotonic()
        self.verdict_asked = False    # the verdict is read once, when the run is seen finished
        self.retrain: dict | None = None  # a finished Retrain of the same deletion set: its final metrics

    def compose(self) -> ComposeResult:
        yield Static("", id="mon-status")
        yield PanelGrid("panel", id="mon-plots")
        with Horizontal(id="mon-bottom"):
            yield HistoryHeatmap(id="mon-history")
            with Vertical(id="mon-summary-box"):
                yield ClampedText("", id="mon-verdict")
                # the metric's name stays while a narrow box scrolls its numbers sideways
                table: DataTable = ColumnTable(id="mon-summary", cursor_type="row", zebra_stripes=True, fixed_columns=1)
                table.add_columns(*SUMMARY_HEADERS)
                yield table
            log = TailLog(id="mon-log", max_lines=LOG_LINES, wrap=False, markup=False)
            log.border_title = "log"
            yield log
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#mon-history").display = False
        self.set_class(self.replay, "-replay")
        self.consume()
        self.load_reference()
        self.set_interval(TICK_SECONDS, self.tick)
        self.update_status()

    # the worker only appends -----------------------------------------------------------------------

    @work(exclusive=True, group="source", exit_on_error=False)
    async def consume(self) -> None:
        try:
            count = 0
            async for event in self.source:
                self.backlog.append(event)
                self.received += 1
                self.paced += not skipped_in_replay(event)
                count += 1
                if count % 2000 == 0:
                    await asyncio.sleep(0)   # let the UI breathe during a large backlog
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.source_error = text
            self.source_error_code = getattr(exc, "code", None)
            if self.source_error_code != "disconnected":  # a damaged session: the status line cannot hold why
                self.model.logs.append(f"  error {text}")
                self.notify(text, title="this session cannot be read", severity="error", timeout=30)
        finally:
            self.source_done = True
            if not self.speed_set and self.replay and self.paced:
                wanted = self.paced / (REPLAY_RATE * REPLAY_TARGET_SECONDS)
                self.speed = next((s for s in SPEEDS if s >= wanted), SPEEDS[-1])

    # the timer moves events and redraws -------------------------------------------------------------

    def tick(self) -> None:
        if not self.paused:
            if self.to_end:
                self.apply(min(len(self.backlog), MAX_APPLY_PER_TICK))
            else:
                self._budget += REPLAY_RATE * self.speed * TICK_SECONDS
                self.apply_paced()
        self.redraw()

    def apply_paced(self) -> None:
        """Events as the replay budget allows; the original's training steps cost none of it (they are counted,
        not drawn: a PULSE session's replay spent most of its time on blank panels)."""
        count = 0
        while self.backlog and count < MAX_APPLY_PER_TICK:
            free = skipped_in_replay(self.backlog[0])
            if not free and self._budget < 1:
                break
            self.apply(1)
            self._budget -= not free
            count += 1
        if not self.backlog:
            self._budget = 0.0

    def apply(self, count: int) -> None:
        model, backlog, dirty = self.model, self.backlog, self._dirty
        for _ in range(count):
            what = model.apply(backlog.popleft())
            if what:
                dirty.add(what)
        if count:
            dirty.add("status")

    def redraw(self) -> None:
        dirty, self._dirty = self._dirty, set()
        if dirty & {"loss", "eval", "summary", "reference"}:
            self.query_one("#mon-plots", PanelGrid).show(self.model.panels(self.retrain))
        if "status" in dirty:
            self.set_class(self.model.state in TERMINAL_STATES and self.model.x == 0, "-stepless")
            self.refresh_bindings()  # an ended run's footer no longer offers ctrl+k
        if "status" in dirty and self.model.state == "finished" and not self.verdict_asked:
            self.verdict_asked = True
            self.load_verdict()
        if "history" in dirty:
            self.query_one("#mon-history", HistoryHeatmap).show(*history_from_events(self.model.history),
                                                                metric=history_metric(self.model.history))
        if "summary" in dirty:
            fill_table(self.query_one("#mon-summary", DataTable), list(SUMMARY_HEADERS), self.model.summary_rows())
        log = self.query_one("#mon-log", TailLog)
        following = log.follow
        if self.model.logs:
            log.auto_scroll = following
            for line in self.model.logs:
                log.write(line)
            if not following:
                self.log_unseen += len(self.model.logs)
            self.model.logs.clear()
        log.keep_at_end()
        if following:
            self.log_unseen = 0       # at the bottom (or back there): following the tail again
        log.border_subtitle = f"{self.log_unseen} new (end follows)" if self.log_unseen else ""
        if dirty:
            self.redraws += 1
        self.update_status()

    @work(thread=True, exclusive=True, group="reference", exit_on_error=False)
    def load_reference(self) -> None:
        """A finished Retrain of this run's deletion set (sessions.verdict.retrain_reference), read off the UI
        thread: its final metrics are the panels' Retrain lines."""
        store = getattr(self.source, "store", None) or (self.services.store if self.services else None)
        session_id = getattr(self.source, "session_id", None)
        try:
            # a stored source reads its meta once its events start, after this ran at mount: the reference was
            # never drawn in the TUI's replay, where `replay --headless` drew it; the store says it at once
            meta = getattr(self.source, "meta", None) or (store.get(session_id) if store and session_id else None)
            spec = meta.get("spec") if isinstance(meta, dict) else None
            if store is None or not isinstance(spec, dict):
                return
            summary = retrain_reference(store, spec, session_id)
        except Exception:  # an unreadable catalog: the panels without Retrain
            return
        if summary and isinstance(summary.get("metrics"), dict):
            self.app.call_from_thread(self.show_reference, flatten(summary["metrics"]))

    def show_reference(self, metrics: dict[str, float]) -> None:
        self.retrain = metrics
        self._dirty.add("reference")

    @work(thread=True, exclusive=True, group="verdict", exit_on_error=False)
    def load_verdict(self) -> None:
        """The finished run's verdict (sessions.verdict) over the summary panel: its summary and a Retrain of its
        deletion set are read from the store, off the UI thread."""
        store = getattr(self.source, "store", None) or (self.services.store if self.services else None)
        session_id = getattr(self.source, "session_id", None)
        if store is None or session_id is None:
            return
        try:
            lines = session_verdict(store, store.get(session_id))
        except Exception:  # deleted or damaged meanwhile: the table still says what happened
            return
        if lines:
            self.app.call_from_thread(self.show_verdict, lines)

    def show_verdict(self, lines: list[str]) -> None:
        verdict = self.query_one("#mon-verdict", ClampedText)
        # at 80x24 the box holds a few lines: a request run's last request (where it ended), as the home shows it,
        # without its cost (the status line and the log have the run's steps)
        compact = self.app.has_class("-compact")
        verdict.update("\n".join(without_cost(last_request_only(lines)) if compact else last_requests(lines)))
        verdict.add_class("-shown")

    def deletion_label(self) -> str | None:
        """``deletion random 4 s7 facts: IMG#owner, ...`` where the run deletes facts (the spec and result say)."""
        meta = getattr(self.source, "meta", None)
        if not isinstance(meta, dict):
            return None
        line = deletion_line(meta.get("spec"), meta.get("summary"), shown=2)
        return f"deletion {line}" if line else None

    def device_label(self) -> str | None:
        """``device cuda:0 (H200) util 45.0% 12.3/80.0 GB`` from the last device event; else ``device cpu``
        (+ the latest memory in MB) from an event's ``device`` field, the result, the caller or the spec,
        the first that is not ``auto``."""
        if self.model.devices:
            words = ", ".join(device_words(d) for d in self.model.devices)
            memory = all(d.get("mem_used_mb") is None for d in self.model.devices) and self.model.memory_mb
            return f"device {words}" + (f" {self.model.memory_mb:,.0f} MB" if memory else "")
        meta = getattr(self.source, "meta", None)
        spec = meta.get("spec") if isinstance(meta, dict) else None
        summary = meta.get("summary") if isinstance(meta, dict) else None
        candidates = [self.model.device, summary.get("device") if isinstance(summary, dict) else None,
                      self.device, spec.get("device") if isinstance(spec, dict) else None]
        known = [str(c) for c in candidates if c]
        device = next((c for c in known if c != "auto"), known[0] if known else None)
        if device is None and self.model.memory_mb is None:
            return None
        label = f"device {device or '?'}"
        if self.model.memory_mb is not None:
            label += f" {self.model.memory_mb:,.0f} MB"
        return label

    def engine_disconnected(self) -> bool:
        """A live source lost the engine: its stream failed with a disconnect, or its connection
        has not heard anything (heartbeats included) for STALE_AFTER seconds."""
        if self.source_error_code == "disconnected":
            return True
        if self.replay or self.source_done:
            return False
        client = getattr(self.source, "client", None)
        last_seen = getattr(client, "last_seen", 0.0)
        if not last_seen:             # not connected yet
            return False
        return not getattr(client, "connected", True) or time.monotonic() - last_seen > STALE_AFTER

    def update_status(self) -> None:
        """One line, never wrapped: the parts that do not fit the screen's width are left out, the least
        telling first (status_line)."""
        m = self.model
        src = self.source
        state = m.state or getattr(src, "state", None) or "waiting"
        # (priority, markup): at a narrow width the lowest priority goes first
        # a replay says so at any width: its state is the replayed one ("running" half-way through a finished run)
        parts = [(9, f"[b]{escape(str(getattr(src, 'session_id', '?')))}[/b]"),
                 (9, "replay") if self.replay else (2, "live"), (9, state)]
        if m.phase:
            parts.append((7, f"phase {m.phase}"))
        if m.request is not None:
            parts.append((8, f"request {m.request}"))
        parts.append((9, f"step {m.x}"))
        if m.training_steps:  # the original's training, collapsed to its count
            parts.append((7, f"original trained {m.training_steps} steps"))
        if m.lr is not None:
            parts.append((5, f"lr {lr_text(m.lr)}"))
        device = self.device_label()
        if device:
            parts.append((6, device))
        deletion = self.deletion_label()
        if deletion:
            parts.append((5, escape(deletion)))
        if self.replay:
            total = self.received if self.source_done else f"{self.received}+"
            parts.append((3, f"event {m.applied}/{total}"))
            parts.append((4, f"speed x{self.speed:g}"))
        if self.paused:  # the replay's speed with it: `+`/`-` while paused changed a part the width had dropped
            waiting = f"{len(self.backlog)} to play at x{self.speed:g}" if self.replay else f"{len(self.backlog)} new"
            parts.append((9, f"[reverse] PAUSED [/reverse] {waiting}"))
        if m.message:
            parts.append((6, escape(str(m.message))))  # a failure's text may hold [brackets]
        disconnected = self.engine_disconnected()
        if disconnected:
            parts.append((9, "[reverse] engine disconnected [/reverse]"))
        if self.source_error and self.source_error_code != "disconnected":
            parts.append((9, f"[b]source: {escape(self.source_error)}[/b]"))
        elif self.source_done and not self.backlog and not self.replay and not disconnected:
            parts.append((1, "stream ended"))
        status = self.query_one("#mon-status", Static)
        status.set_class(disconnected, "-disconnected")
        width = (self.size.width or self.app.size.width) - 2  # the line's padding
        status.update(status_line(parts, width))

    # actions -------------------------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self._budget = 0.0
        self.refresh_bindings()  # the footer says Pause or Resume
        self.update_status()

    def action_resume(self) -> None:
        self.action_toggle_pause()

    def action_step(self) -> None:
        """Apply events up to and including the next step event (pauses replay)."""
        self.paused = True
        self.refresh_bindings()
        count = 0
        for event in self.backlog:
            count += 1
            if event.get("kind") == "step":
                break
        self.apply(count)
        self.redraw()

    def action_faster(self) -> None:
        self.change_speed(+1)

    def action_slower(self) -> None:
        self.change_speed(-1)

    def change_speed(self, by: int) -> None:
        self.speed_set = True
        index = SPEEDS.index(self.speed) if self.speed in SPEEDS else 2
        self.speed = SPEEDS[min(max(index + by, 0), len(SPEEDS) - 1)]
        self.update_status()
        self.notify(f"replay speed x{self.speed:g}", timeout=2)  # the status line may have no room for its part

    def action_to_end(self) -> None:
        """Show everything received so far, and follow the log's tail again."""
        self.to_end = True
        self.paused = False
        self.refresh_bindings()
        self.apply(min(len(self.backlog), MAX_APPLY_PER_TICK))
        log = self.query_one("#mon-log", TailLog)
        log.follow = log.auto_scroll = True
        log.scroll_end(animate=False, immediate=True)
        self.log_unseen = 0
        self.redraw()

    def following(self) -> bool:
        """The screen follows a run in the engine (not a replay), whether or not the run has ended since."""
        return not self.replay and getattr(self.source, "live", False)

    def live(self) -> bool:
        """A run that is still going: followed, and no end has come (ctrl+k stayed in the footer after the run
        finished, and its yes did nothing)."""
        return self.following() and self.model.state not in TERMINAL_STATES

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """ctrl+k cancels a live run, and a replay does not offer it; the replay's speed keys are not a live run's
        (the footer showed + Faster, - Slower over a live run, and kept ctrl+k to f1)."""
        if action == "cancel_run":
            return self.live()
        if action in ("toggle_pause", "resume", "step", "faster", "slower") and self.has_class("-stepless"):
            return False   # a session without a step (a quantize attack) has nothing to pause, step or speed up
        if action in ("toggle_pause", "resume"):  # one key, two words: Pause while playing, Resume while paused
            return (action == "resume") == self.paused
        return action not in ("faster", "slower") or not self.following()

    async def action_cancel_run(self) -> None:
        if not self.live() or self.services is None:
            self.notify("only a live run can be cancelled", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel_run()

        session = self.source.session_id   # asked first, as a delete is
        meta = getattr(self.source, "meta", None)
        spec = meta.get("spec") if isinstance(meta, dict) and isinstance(meta.get("spec"), dict) else {}
        self.app.push_screen(ConfirmScreen(f"Cancel run {session}? It stops after its current step; its session is "
                                           f"kept, marked cancelled. {after_cancel(spec)}", yes="Yes, cancel it"),
                             answered)

    @work(group="cancel", exit_on_error=False)
    async def cancel_run(self) -> None:
        try:
            await self.services.cancel(self.source.session_id)
        except ServiceError as error:   # it ended meanwhile, or the engine is gone: said, not swallowed
            self.notify(f"could not cancel {self.source.session_id}: {error}", severity="error")
            return
        self.notify(f"cancel requested for {self.source.session_id}")

    def action_back(self) -> None:
        if self.standalone:
            self.app.exit(0)
            return
        self.app.pop_screen()


def device_words(device: dict) -> str:
    """``cuda:0 (NVIDIA H200) util 45.0% 12.3/140.0 GB``; the name alone where nothing was measured (CPU)."""
    words = str(device.get("name"))
    util, used, total = device.get("util"), device.get("mem_used_mb"), device.get("mem_total_mb")
    if isinstance(util, (int, float)):
        words += f" util {util:.1f}%"
    if isinstance(used, (int, float)):
        words += f" {used / 1024:.1f}/{total / 1024:.1f} GB" if isinstance(total, (int, float)) else f" {used:,.0f} MB"
    return words


def lr_text(lr: float) -> str:
    """The learning rate in one format whatever its size: ``1.0e-03``, ``5.0e-05`` (not 0.001 beside 5e-05)."""
    return f"{lr:.1e}"


def status_line(parts: list[tuple[int, str]], width: int) -> str:
    """The parts' markup in their order, joined by two spaces: taken by priority (the highest first, equal ones
    in order) while the line still fits ``width`` cells, so a long part left out leaves room for shorter ones;
    the first part is always kept (the widget's ellipsis cuts it if it alone is too long)."""
    from rich.text import Text

    def cells(markup: str) -> int:
        return Text.from_markup(markup).cell_len

    chosen: set[int] = set()
    used = -2
    for index in sorted(range(len(parts)), key=lambda i: (-parts[i][0], i)):
        wanted = used + 2 + cells(parts[index][1])
        if wanted <= width or not chosen:
            chosen.add(index)
            used = wanted
    return "  ".join(markup for index, (_, markup) in enumerate(parts) if index in chosen)
