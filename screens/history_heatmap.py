"""The history heatmap: request j's Df headline (columns) after request i (rows), coloured by value.

Rows and columns are the requests (a `before` row first: the original); a cell is two characters, blue and
light (`░░`) where the request's data is forgotten (low Df performance), red and solid (`██`) where it is known
(high; the shade reads without colour, as under NO_COLOR, where the cells were grey on grey), on the range of
the whole matrix; a long history is drawn in blocks of consecutive requests (sessions/history.py `binned`)
so it fits the widget's width. The monitor feeds it the rows of `eval` events of split "history"; it stays
hidden until a run has two requests.
"""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from sessions.history import Matrix, binned, heat_colour, value_range
from sessions.numbers import fmt

LABEL_WIDTH = 8
CELL = "██"
# a cell's shade says its level where colour is not drawn (NO_COLOR, a monochrome terminal): light where forgotten
SHADES = ("░░", "▒▒", "▓▓", CELL)


def shade(value: float, low: float, high: float) -> str:
    t = 0.5 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
    return SHADES[min(len(SHADES) - 1, int(t * len(SHADES)))]


def heatmap_text(before: list, matrix: Matrix, width: int, height: int = 1000, metric: str = "") -> Text:
    """The heatmap as rich Text in `width` x `height` cells: a header, the before row, one row per request
    (or block of requests)."""
    cells = max(1, min((width - LABEL_WIDTH) // len(CELL), height - 2))
    labels, before_row, rows = binned(before, matrix, cells)
    low, high = value_range(before, matrix)
    text = Text(f"{metric or 'Df'} of request j (column) after request i (row); "
                f"blue {SHADES[0]} {fmt(low, metric)} .. red {SHADES[-1]} {fmt(high, metric)}\n", style="dim")

    def row(label: str, values: list) -> None:
        text.append(f"{label:>{LABEL_WIDTH - 1}} ")
        for value in values:
            text.append(shade(value, low, high) if value is not None else "  ", style=heat_colour(value, low, high))
        text.append("\n")

    if before_row:
        row("before", before_row)
    for label, values in zip(labels, rows):
        row(label, values)
    return text


class HistoryHeatmap(Static):
    DEFAULT_CSS = """
    HistoryHeatmap { width: 1fr; height: 100%; overflow: hidden; border: round $panel; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.border_title = "history"
        self.before: list = []
        self.matrix: Matrix = []
        self.metric = ""

    def show(self, before: list, matrix: Matrix, metric: str = "") -> None:
        self.before, self.matrix, self.metric = before, matrix, metric
        self.display = len(matrix) > 1
        self.refresh_text()

    def refresh_text(self) -> None:
        if self.matrix:
            self.update(heatmap_text(self.before, self.matrix, max(LABEL_WIDTH + 2, self.size.width),
                                     max(3, self.size.height), self.metric))

    def on_resize(self) -> None:
        self.refresh_text()
