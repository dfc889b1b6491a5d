"""Filling a DataTable with every column as wide as its widest cell, set when it is filled: DataTable otherwise
measures new rows when it is next idle, and a frame drawn before that (or a measure that never came) showed
columns cut to their headers' width ("df_dr_" for df_dr_auc)."""
from __future__ import annotations

from rich.cells import cell_len
from textual.widgets import DataTable


def fill_table(table: DataTable, headers: list[str], rows: list[tuple[str, ...]]) -> None:
    table.clear(columns=True)
    for index, header in enumerate(headers):
        table.add_column(header, width=max([cell_len(header), *(cell_len(str(row[index])) for row in rows)]))
    for row in rows:
        table.add_row(*row)


def clear_for(table: DataTable, columns: list[str], drawn: list[str]) -> list[str]:
    """Clear `table` for rows in `columns`: its columns too when they differ from those `drawn` now (a table that
    leaves out what does not fit: the home, the studies list); returns the columns drawn after."""
    if columns != drawn:
        table.clear(columns=True)
        table.add_columns(*columns)
    else:
        table.clear()
    return columns
