"""The sessions home's table: the cells of a catalog row, the colour of each state, and which columns fit.

A narrow terminal drops whole columns, lowest priority first (``PRIORITY``), so every value shown is shown
in full: a cut ``md-seed`` or ``12-0`` would read as another session or another date. The columns left keep
their display order (``COLUMNS``). Pure: no Textual widgets here, so the choice is tested without an app.
"""
from __future__ import annotations

import time

from rich.cells import cell_len

from sessions.numbers import fmt, format_duration
from sessions.summary import format_deletion, summary_metrics, test_headline, test_headline_name, took
from sessions.study import study_of, without_study_id

# display order; "test": the test split's headline, r_mean (retrieval) or accuracy (classification)
COLUMNS = ("session", "status", "kind", "method", "Df/Dr AUC", "test", "model", "data", "deletion",
           "started", "duration")
# most important first: which session, how it went, what ran, its result, then its kind, how long, on what, when
# (the result before the kind: at 80x24 with a "pulse k=2" row, the kind's column hid the test's)
PRIORITY = ("session", "status", "method", "Df/Dr AUC", "test", "kind", "duration", "data", "model",
            "started", "deletion")
assert sorted(PRIORITY) == sorted(COLUMNS)
CELL_PADDING = 1  # DataTable's default padding on each side of a cell

# state -> the theme variable its word is drawn in (bold where it is still going)
STATE_COLOURS = {
    "queued": "foreground-muted",
    "running": "primary",
    "finished": "success",
    "failed": "error",
    "damaged": "error",
    "cancelled": "warning",
    "interrupted": "warning",
}


def requests_of(row: dict) -> int:
    """How many deletion requests the row's run has: its spec's ``requests``, else (a row written before the
    catalog kept it) the per-request entries of its summary, else 1."""
    requests = row.get("requests")
    if isinstance(requests, int) and not isinstance(requests, bool) and requests > 0:
        return requests
    summary = row.get("summary") if isinstance(row.get("summary"), dict) else {}
    entries = summary.get("requests")
    return len(entries) if isinstance(entries, list) and len(entries) > 1 else 1


def kind_label(row: dict) -> str:
    """``run`` (one request), ``k=5`` (five sequential requests), ``pulse`` / ``pulse k=3`` (people data),
    ``attack`` (an attack on a finished run: it read ``run``)."""
    if row.get("kind") == "attack":
        return "attack"
    k = requests_of(row)
    if row.get("kind") == "pulse":
        return "pulse" if k == 1 else f"pulse k={k}"
    return "run" if k == 1 else f"k={k}"


def deletion_cell(row: dict) -> str:
    """A run's deletion set (``random 8 s42``); a PULSE run's forget people or facts (``2 people``, ``4 facts``),
    which its spec holds as ``forget`` and ``granularity`` instead."""
    if row.get("kind") != "pulse":
        return format_deletion(row.get("deletion"))
    forget = row.get("forget")
    if not isinstance(forget, int) or isinstance(forget, bool):
        return "known people"  # a checkpoint's pretrained people: drawn when the run scores them
    if "granularity" not in row:  # a row from before the catalog kept it: people or facts, it cannot say
        return f"forget {forget}"
    return f"{forget} {'facts' if row.get('granularity') == 'fact' else 'people'}"


SESSION_WIDTH = 24  # a session's id is 20; a longer name is cut to this, keeping its id's end


def session_cell(row: dict) -> str:
    """The session's name (else its id; a study's cell as ``ft s42 · 5075b6``, the study's id begun); a name longer
    than SESSION_WIDTH is cut and ends in the id's last four
    characters (``a very long name o… 053e``): marked as cut, and still this session and no other, while the
    columns after it (the result, the duration) keep their room at 80 columns."""
    name = row.get("name") or row["id"]
    study = study_of(name)
    if study is not None:   # a study's cell: its method and seed first (cut, it read `study-5075b61b38… 5522`)
        name = f"{without_study_id(name)} · {study.removeprefix('study-')[:4]}"
    if len(name) <= SESSION_WIDTH:
        return name
    return f"{name[:SESSION_WIDTH - 6]}… {row['id'][-4:]}"


def row_cells(row: dict, marked: bool) -> dict[str, str]:
    """The text of each column for one catalog row. Its duration is ``took``, as `sessions list` and `sessions
    show` say it: the run's own seconds when it has them, else the time from its start to its end (or now)."""
    metrics = summary_metrics(row.get("summary"))
    return {
        "session": ("* " if marked else "  ") + session_cell(row),
        "status": str(row.get("state", "?")),
        "kind": kind_label(row),
        "method": fmt(str(row["method"]).removeprefix("attack:") if row.get("method") else None),  # kind says attack
        "Df/Dr AUC": fmt(metrics.get("df_dr_auc"), "df_dr_auc"),
        "test": fmt(test_headline(metrics), test_headline_name(metrics)),
        "model": fmt(row.get("model")),
        "data": fmt(row.get("data")),
        "deletion": deletion_cell(row),
        "started": time.strftime("%m-%d %H:%M", time.localtime(row.get("created") or 0)),
        "duration": format_duration(took(row)),
    }


def column_widths(cells: list[dict[str, str]]) -> dict[str, int]:
    """Each column's width on screen: its widest value or its header, plus the cell padding."""
    return {name: max([cell_len(name), *(cell_len(c[name]) for c in cells)]) + 2 * CELL_PADDING
            for name in COLUMNS}


def fit_columns(widths: dict[str, int], available: int, priority: tuple[str, ...] = PRIORITY,
                order: tuple[str, ...] = COLUMNS) -> list[str]:
    """The columns to show in ``available`` cells: all of them if they fit, else each in priority order while it
    fits (the first two, here the session with its mark and its status, always stay). One that does not fit is
    hidden and the lower ones are still tried: one long data path hid the model, started and deletion columns behind
    it, leaving a third of a 120-column table blank. In the display `order`; the home's by default, another
    table's (the studies list) given."""
    kept, used = [], 0
    for rank, name in enumerate(priority):
        if rank < 2 or used + widths[name] <= available:
            kept.append(name)
            used += widths[name]
    return [name for name in order if name in kept]


def cell_widths(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> dict[str, int]:
    """Each column's width on screen for rows of plain cells in `columns`' order, as ``column_widths``."""
    return {name: max([cell_len(name), *(cell_len(row[i]) for row in rows)]) + 2 * CELL_PADDING
            for i, name in enumerate(columns)}
