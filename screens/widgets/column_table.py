"""A DataTable whose sideways scroll stops only where a column starts.

Textual scrolls a table by the character: a value column half under the fixed columns (the method, the metric)
lost its first digits there, and `80.5 ± 2.7` read `0.5 ± 2.7`, another number. Here every scroll offset is
snapped to a column's start, up when the scroll moves right and down when it moves left, and the table may scroll
until its last column starts the scrolled part, so that no offset has to cut one. A column the right edge cuts is
left blank (`52.0` read `5` there).
"""
from __future__ import annotations

from textual.strip import Strip
from textual.widgets import DataTable


class ColumnTable(DataTable):
    def column_starts(self) -> list[int]:
        """The scroll offsets at which a column starts the scrolled part (after the fixed columns)."""
        starts, offset = [], 0
        for column in self.ordered_columns[self.fixed_columns:]:
            starts.append(offset)
            offset += column.get_render_width(self)
        return starts or [0]

    @property
    def max_scroll_x(self) -> int:
        return max(super().max_scroll_x, self.column_starts()[-1])

    def snapped(self, value: float) -> float:
        starts = self.column_starts()
        if value >= self.scroll_x:   # moving right (or staying): the next start, which hides a cut column
            return next((start for start in starts if start >= value), starts[-1])
        return next((start for start in reversed(starts) if start <= value), 0)   # left: the start it shows whole

    def validate_scroll_x(self, value: float) -> float:
        return self.snapped(super().validate_scroll_x(value))

    def validate_scroll_target_x(self, value: float) -> float:
        return self.snapped(super().validate_scroll_target_x(value))

    def render_line(self, y: int) -> Strip:
        """The line with a column the right edge would cut left blank: cut there, `52.0` read `5`."""
        line = super().render_line(y)
        shown = self.whole_width()
        if shown is None:
            return line
        return line.crop(0, shown).extend_cell_length(line.cell_length, self.rich_style)

    def whole_width(self) -> int | None:
        """How many cells from the left the fixed columns and the scrolled columns that fit whole take up, where
        the right edge cuts a column; None where none is cut."""
        columns = self.ordered_columns
        used = sum(column.get_render_width(self) for column in columns[:self.fixed_columns])
        room, offset = self.scrollable_content_region.width, 0
        for column in columns[self.fixed_columns:]:
            width = column.get_render_width(self)
            if offset >= self.scroll_x:   # the columns scrolled past do not count
                if used + width > room:
                    return used
                used += width
            offset += width
        return None

    def columns_out_of_view(self) -> tuple[list[str], list[str]]:
        """The labels of the scrolled columns out of view: (left of the scroll, past the right edge)."""
        columns = self.ordered_columns
        used = sum(column.get_render_width(self) for column in columns[:self.fixed_columns])
        room, offset = self.scrollable_content_region.width, 0
        left, right = [], []
        for column in columns[self.fixed_columns:]:
            width = column.get_render_width(self)
            if offset < self.scroll_x:
                left.append(column.label.plain)
            elif right or used + width > room:
                right.append(column.label.plain)
            else:
                used += width
            offset += width
        return left, right
