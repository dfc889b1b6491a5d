"""Shared widgets: a plot that downsamples to its width, a confirmation modal, formatting helpers.

Every widget carries its DEFAULT_CSS (theme variables only; colours live in workbench.tcss).
"""
from __future__ import annotations

import math
from array import array
from typing import Iterable, Mapping

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, RichLog
from textual_plotext import PlotextPlot

POINTS_PER_COLUMN = 2


# --------------------------------------------------------------------------------------------------
# log


class TailLog(RichLog):
    """A log that follows its tail until the user scrolls up, and again once they scroll back down.

    ``follow`` changes only on the user's scrolling, never on where a pending programmatic scroll
    happens to be at a tick, so what the log shows does not depend on timing."""

    follow = True

    def keep_at_end(self) -> None:
        """Called on every redraw tick: lines written before the log had its size (or while a
        resize was in flight) leave it short of the end; a following log goes back there."""
        if self.follow and not self.is_vertical_scroll_end:
            self.scroll_end(animate=False)

    def _stop_following(self) -> None:
        self.follow = False

    def _resume_if_at_end(self) -> None:
        if self.is_vertical_scroll_end:
            self.follow = True

    def action_scroll_up(self) -> None:
        self._stop_following()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._stop_following()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self._stop_following()
        super().action_scroll_home()

    def _on_mouse_scroll_up(self, event) -> None:
        self._stop_following()
        super()._on_mouse_scroll_up(event)

    def action_scroll_down(self) -> None:
        super().action_scroll_down()
        self.call_after_refresh(self._resume_if_at_end)

    def action_page_down(self) -> None:
        super().action_page_down()
        self.call_after_refresh(self._resume_if_at_end)

    def action_scroll_end(self) -> None:
        super().action_scroll_end()
        self.follow = True

    def _on_mouse_scroll_down(self, event) -> None:
        super()._on_mouse_scroll_down(event)
        self.call_after_refresh(self._resume_if_at_end)


# --------------------------------------------------------------------------------------------------
# data


class Series:
    """One growing (x, y) series in compact arrays; the stored data stays whole."""

    __slots__ = ("xs", "ys")

    def __init__(self) -> None:
        self.xs = array("d")
        self.ys = array("d")

    def append(self, x: float, y: float) -> None:
        self.xs.append(x)
        self.ys.append(y)

    def __len__(self) -> int:
        return len(self.xs)


def downsample(xs, ys, points: int) -> tuple[list[float], list[float]]:
    """At most ``points`` points: the min and the max of each bucket, in x order, so spikes survive.

    Vectorised with numpy (arrays are viewed, not copied); the drawn data only is reduced."""
    n = len(xs)
    if points <= 0 or n <= points:
        return list(xs), list(ys)
    import numpy as np

    x = np.frombuffer(xs, dtype=np.float64) if isinstance(xs, array) else np.asarray(xs, dtype=np.float64)
    y = np.frombuffer(ys, dtype=np.float64) if isinstance(ys, array) else np.asarray(ys, dtype=np.float64)
    buckets = max(1, points // 2)
    size = math.ceil(n / buckets)
    full = n // size
    out_x: list[np.ndarray] = []
    out_y: list[np.ndarray] = []
    if full:
        block = y[: full * size].reshape(full, size)
        base = np.arange(full) * size
        lo = base + block.argmin(axis=1)
        hi = base + block.argmax(axis=1)
        first = np.minimum(lo, hi)
        second = np.maximum(lo, hi)
        index = np.empty(2 * full, dtype=np.int64)
        index[0::2] = first
        index[1::2] = second
        out_x.append(x[index])
        out_y.append(y[index])
    if full * size < n:
        tail = y[full * size:]
        lo = full * size + int(tail.argmin())
        hi = full * size + int(tail.argmax())
        index = np.array(sorted({lo, hi}), dtype=np.int64)
        out_x.append(x[index])
        out_y.append(y[index])
    return np.concatenate(out_x).tolist(), np.concatenate(out_y).tolist()


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def fmt_delta(before, after) -> str:
    if before is None or after is None:
        return "-"
    return f"{after - before:+.4g}"


# --------------------------------------------------------------------------------------------------
# plot


class SeriesPlot(PlotextPlot):
    """A plotext plot of named series; redraws only when told its data changed (``mark_dirty``)
    and then plots at most ~2 points per column of each series."""

    DEFAULT_CSS = """
    SeriesPlot {
        height: 1fr;
        min-height: 6;
        border: round $panel;
    }
    SeriesPlot:focus {
        border: round $accent;
    }
    """

    def __init__(self, title: str, xlabel: str = "step", *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.xlabel = xlabel
        self.series: Mapping[str, Series] = {}
        self.points_drawn = 0       # how many points the last render plotted (all series)
        self.renders = 0
        self._built_for: tuple | None = None
        self._version = 0

    def set_series(self, series: Mapping[str, Series]) -> None:
        self.series = series  # kept by reference: the owner adds series as they appear
        self.mark_dirty()

    def mark_dirty(self) -> None:
        self._version += 1
        self.refresh()

    def _rebuild(self, width: int) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        plt.xlabel(self.xlabel)
        points = max(8, POINTS_PER_COLUMN * max(1, width - 8))
        drawn = 0
        for name, series in list(self.series.items()):
            if not len(series):
                continue
            xs, ys = downsample(series.xs, series.ys, points)
            drawn += len(xs)
            if len(xs) == 1:
                plt.scatter(xs, ys, label=name)
            else:
                plt.plot(xs, ys, label=name)
        self.points_drawn = drawn

    def render(self):
        key = (self._version, self.size.width, self.size.height)
        if key != self._built_for:
            self._rebuild(self.size.width)
            self._built_for = key
        self.renders += 1
        return super().render()


# --------------------------------------------------------------------------------------------------
# modal


class ConfirmScreen(ModalScreen[bool]):
    """Yes / no. Dismisses with True only on an explicit yes."""

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
    }
    ConfirmScreen > Vertical {
        width: 60;
        max-width: 90%;
        height: auto;
        border: thick $error;
        background: $surface;
        padding: 1 2;
    }
    ConfirmScreen Horizontal {
        height: auto;
        align-horizontal: right;
        margin-top: 1;
    }
    ConfirmScreen Button {
        margin-left: 1;
    }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, id="question")
            with Horizontal():
                yield Button("No", id="no")
                yield Button("Yes, delete", variant="error", id="yes")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


def binding_rows(bindings: Iterable) -> list[tuple[str, str, str]]:
    """(key, description, id) for each Binding (tuples are skipped)."""
    rows = []
    for binding in bindings:
        if isinstance(binding, Binding):
            rows.append((binding.key, binding.description, binding.id or ""))
    return rows
