"""The panels of sessions.panels as one widget: a plot per question (forget, keep, privacy, general ability,
loss terms) in a grid, the panels with nothing to draw hidden. The monitor and Compare both draw through it.
At 80x24 (the app's -compact class, workbench.tcss) privacy and general ability fold away, so that forget, keep
and the loss terms keep a readable height."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid

from screens.widgets.plot import SeriesPlot
from sessions.panels import GROUPS, TITLES, Panel

MINOR = ("privacy", "general")  # folded away at 80x24


class PanelGrid(Grid):
    """One SeriesPlot per question, ``#<prefix>-<group>``; ``show(panels)`` draws those given and hides the rest."""

    SCOPED_CSS = False  # the -compact rules start at the App, above the grid
    DEFAULT_CSS = """
    PanelGrid {
        grid-size: 3;
        grid-rows: 1fr;
        height: 2fr;
    }
    PanelGrid.-two {
        grid-size: 2;
    }
    PanelGrid SeriesPlot.-empty {
        display: none;
    }
    PanelGrid SeriesPlot {
        height: 1fr;
        min-height: 5;
        border-title-align: left;
        border-subtitle-align: left;
        border-title-color: $text;
        border-title-style: bold;
        border-subtitle-color: $text;
    }
    .-compact PanelGrid, .-compact PanelGrid.-two {
        grid-size: 3;
    }
    .-compact PanelGrid SeriesPlot.-minor {
        display: none;
    }
    """

    def __init__(self, prefix: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.prefix = prefix

    def compose(self) -> ComposeResult:
        for group in GROUPS:
            plot = SeriesPlot(TITLES[group], id=f"{self.prefix}-{group}")
            plot.border_title = TITLES[group]
            plot.add_class("-empty")
            plot.set_class(group in MINOR, "-minor")
            yield plot

    def plot(self, group: str) -> SeriesPlot:
        return self.query_one(f"#{self.prefix}-{group}", SeriesPlot)

    def show(self, panels: list[Panel], *, log_y: bool = False, unfold: str | None = None) -> None:
        """Draw ``panels``; ``unfold``: a minor question's group kept open at 80x24 (Compare's `m` chose a metric
        drawn there, so that the key's effect is seen)."""
        given = {panel.key: panel for panel in panels}
        for group in GROUPS:
            plot = self.plot(group)
            panel = given.get(group)
            plot.set_class(panel is None, "-empty")
            plot.set_class(group in MINOR and group != unfold, "-minor")
            if panel is not None:
                plot.log_y = log_y
                plot.set_panel(panel)
        self.set_class(len(given) <= 4, "-two")  # 2 x 2 for up to four panels, 3 columns for five

    def shown(self) -> list[SeriesPlot]:
        return [plot for plot in self.query(SeriesPlot) if not plot.has_class("-empty")]
