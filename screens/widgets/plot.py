"""Growing (x, y) series and the plotext plot that draws them, downsampled to its width. A plot can draw one
panel of sessions.panels: its title on the border, its legend (and reference lines) under the plotting area
in the border's subtitle, one x range and integer ticks."""
from __future__ import annotations

from array import array
from typing import Mapping

from textual_plotext import PlotextPlot

from screens.curves import log_points
from sessions.panels import REFERENCE_COLOUR, Panel, integer_ticks
from sessions.series import downsample

POINTS_PER_COLUMN = 2


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
        self.colours: Mapping[str, str] = {}   # series name -> plotext colour (else plotext's own order)
        self.log_y = False
        self.panel: Panel | None = None
        self.points_drawn = 0       # how many points the last render plotted (all series)
        self.renders = 0
        self._built_for: tuple | None = None
        self._version = 0

    def set_series(self, series: Mapping[str, Series]) -> None:
        self.series = series  # kept by reference: the owner adds series as they appear
        self.mark_dirty()

    def set_panel(self, panel: Panel) -> None:
        """Draw ``panel``: its lines in their colours, its references, x range and ticks; title on the border
        and the legend (outside the plotting area) in the border's subtitle."""
        self.panel = panel
        self.series = {line.label: line for line in panel.lines}
        self.colours = {line.label: line.colour for line in panel.lines}
        self.border_title = panel.title if panel.xlabel == "step" else f"{panel.title} by {panel.xlabel.split()[0]}"
        self.border_subtitle = legend_markup(panel, self.legend_room())
        self.mark_dirty()

    def legend_room(self) -> int | None:
        """The border's room for the legend (its corners and padding off), once the widget has a size."""
        return self.size.width - 4 if self.size.width else None

    def mark_dirty(self) -> None:
        self._version += 1
        self.refresh()

    def _rebuild(self, width: int) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        panel = self.panel
        if panel is None:
            plt.title(self.title)
        if panel is None:  # a panel's axis is named in its title when it is not steps (a row saved)
            plt.xlabel(self.xlabel)
        points = max(8, POINTS_PER_COLUMN * max(1, width - 8))
        drawn = 0
        levels: set[float] = set()
        for name, series in list(self.series.items()):
            if not len(series):
                continue
            xs, ys = downsample(series.xs, series.ys, points)
            if self.log_y:
                xs, ys = log_points(xs, ys)
            if not xs:
                continue
            drawn += len(xs)
            levels.update(ys)
            if panel is not None:  # the legend is on the border, outside the plotting area
                style = {"color": self.colours[name]}
            else:
                style = {"label": name, "color": self.colours[name]} if name in self.colours else {"label": name}
            if len(xs) == 1:
                plt.scatter(xs, ys, **style)
            else:
                plt.plot(xs, ys, **style)
        plt.yscale("log" if self.log_y and drawn else "linear")  # plotext fails on an empty log axis
        if panel is not None and drawn:
            for reference in panel.references:
                levels.add(reference.y)
                if not self.log_y or reference.y > 0:
                    plt.hline(reference.y, REFERENCE_COLOUR)
            lo, hi = panel.x_range
            plt.xlim(lo, hi)
            if panel.integer_x:
                plt.xticks(integer_ticks(lo, hi, max(2, width // 8)))
        if len(levels) == 1 and not self.log_y:
            # a flat line: plotext spans value +- 50% and labels rows that miss it (a flat 100% sat on the row
            # labelled 116.7); one tick at the value itself, on a narrow band around it
            level = next(iter(levels))
            band = abs(level) * 0.05 or 1.0
            plt.ylim(level - band, level + band)
            plt.yticks([level], [f"{level:g}"])
        self.points_drawn = drawn

    def render(self):
        key = (self._version, self.size.width, self.size.height)
        # a log axis is built again for every render: plotext's build takes the log of the figure's data in place, so
        # a second render of the same figure took the log of logs ("math domain error" on any repaint)
        if key != self._built_for or self.log_y:
            self._rebuild(self.size.width)
            self._built_for = key
            if self.panel is not None:   # fitted to the size drawn at (set before there was one, it kept whole labels)
                legend = legend_markup(self.panel, self.legend_room())
                if legend != self.border_subtitle:
                    self.border_subtitle = legend
                    # a border changed while rendering is drawn at the next repaint, which in a terminal waited for a
                    # key: Compare opened at 80x24 showed each legend whole and cut (tmux, a review)
                    self.call_after_refresh(self.refresh)
        self.renders += 1
        return super().render()



def legend_markup(panel: Panel, width: int | None = None) -> str:
    """``━ df_dr_auc ━ df.r_mean ┄ original 90.0``: each series in its colour, then the reference lines. Where
    that is wider than ``width`` (the border's room), each series is named by its label's last word instead: a
    session's 4-character id in Compare (``━ 747c ━ 6f19``), so every colour stays named at 80 columns."""
    from rich.markup import escape
    from rich.text import Text

    def markup(label, references: bool = True) -> str:
        parts = [f"[rgb({r},{g},{b})]━[/] {escape(label(line.label))}" for line in panel.lines
                 for r, g, b in [line.colour]]
        return " ".join(parts + [f"┄ {escape(ref.label)} {ref.y:.1f}" for ref in panel.references if references])

    def last_word(label: str) -> str:
        return label.split()[-1] if label.split() else label

    # the whole legend; each series by its last word; those alone (the reference lines are drawn, and Compare's
    # table has their numbers): the first that fits, so no colour is left unnamed (three runs at 80 columns)
    options = [markup(str), markup(last_word)]
    if options[1] != options[0]:   # series named by more than a word (Compare's runs): they may lose the references
        options.append(markup(last_word, references=False))
    fitting = (text for text in options if width is None or Text.from_markup(text).cell_len <= width)
    return next(fitting, options[-1])
