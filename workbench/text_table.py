"""Plain text tables for a terminal of a given width, and tab-separated rows for a pipe.

On a terminal every row is one line no longer than the width: a column marked ``shrink`` is cut (with
``…``) down to its minimum first, then columns are dropped in their ``drop`` order (1 first), and as a
last resort each line is cut at the width. Piped, every cell comes whole, one row a line, tab-separated,
under a header line (tabs and line breaks inside a cell become spaces).
"""
from __future__ import annotations

from dataclasses import dataclass

GAP = "  "
ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False       # right-aligned (numbers)
    shrink: int | None = None  # may be cut down to this many characters; None: never cut
    drop: int = 0             # dropped in this order (1 first) when rows would not fit; 0: never


def cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS if width > 0 else ""


def tsv_lines(columns: list[Column], rows: list[list[str]]) -> list[str]:
    def clean(cell: str) -> str:
        return " ".join(str(cell).replace("\t", " ").splitlines())

    return ["\t".join(c.header for c in columns)] + ["\t".join(clean(cell) for cell in row) for row in rows]


def fit_lines(columns: list[Column], rows: list[list[str]], width: int) -> list[str]:
    """Header and rows as aligned text, every line at most ``width`` characters."""
    keep = list(range(len(columns)))
    while True:
        natural = {i: max([len(columns[i].header), *(len(row[i]) for row in rows)]) for i in keep}
        widths = dict(natural)
        total = sum(widths.values()) + len(GAP) * (len(keep) - 1)
        for i in keep:  # cut the shrinkable columns, left to right
            floor = columns[i].shrink
            if total <= width or floor is None:
                continue
            room = max(0, widths[i] - floor)
            take = min(room, total - width)
            widths[i] -= take
            total -= take
        droppable = [i for i in keep if columns[i].drop]
        if total <= width or not droppable:
            break
        keep.remove(min(droppable, key=lambda i: columns[i].drop))

    def line(cells: list[str]) -> str:
        parts = []
        for i in keep:
            text = cut(cells[i], widths[i])
            parts.append(text.rjust(widths[i]) if columns[i].right else text.ljust(widths[i]))
        return cut(GAP.join(parts).rstrip(), width)

    return [line([c.header for c in columns])] + [line(row) for row in rows]
