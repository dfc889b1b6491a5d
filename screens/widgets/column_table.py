"""A DataTable whose sideways scroll stops only where a column starts.

Textual scrolls a table by the character: a value column half under the fixed columns (the method, the metric)
lost its first digits there, and `80.5 ± 2.7` read `0.5 ± 2.7`, another number. Here every scroll offset is
snapped to a column's start, up when the scroll moves right and down when it moves left, and the table may scroll
until its last column starts the scrolled part, so that no offset has to cut one.
"""
from __future__ import annotations

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
