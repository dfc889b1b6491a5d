"""Plain text that a max height cuts ends its last row in `…`: a verdict cut there read as whole.

The box (the home's detail, the monitor's verdict) takes as many rows as the text needs, up to its max height; the
text is wrapped here at its width, word by word, and where the rows run past the box's height the last one shown
ends in an ellipsis. Pure text: no markup.
"""
from __future__ import annotations

import textwrap

from textual.widgets import Static

ELLIPSIS = "…"


def clamped_rows(text: str, width: int, height: int | None) -> list[str]:
    """`text` wrapped at `width` (each of its lines on its own rows), at most `height` rows, the last ending in `…`
    where rows were left out."""
    rows = [row for line in text.splitlines() for row in (textwrap.wrap(line, max(width, 1)) or [""])]
    if height is None or len(rows) <= height:
        return rows
    if height <= 0:
        return []
    kept = rows[:height]
    last = kept[-1]
    kept[-1] = (last if len(last) < width else last[: max(width - 1, 0)].rstrip()) + ELLIPSIS
    return kept


class ClampedText(Static):
    """A Static of plain text whose rows, cut by the box's height, end in `…`."""

    def __init__(self, text: str = "", **options) -> None:
        super().__init__("", markup=False, **options)
        self.text = text

    def update(self, text: str = "") -> None:  # the whole text; what shows is fitted when rendered
        self.text = str(text)
        super().update(self.text)   # (a layout too: the box's height follows the text's)

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(clamped_rows(self.text, width, None))

    def render(self):
        region = self.content_region
        return "\n".join(clamped_rows(self.text, region.width, region.height if region.height else None))
