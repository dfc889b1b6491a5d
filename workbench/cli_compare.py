"""``mmul-workbench sessions compare ID ID [...]``: the Compare screen's table without the TUI, for scripts and
SSH: each session's final metrics side by side (headline metrics first), then its state, method, model and data.
``--metrics GLOBS`` keeps the metrics the screen's filter would keep; ``--json`` prints the numbers raw."""
from __future__ import annotations

from typing import List

import typer

from sessions.catalog import session_label
from sessions.metric_names import glob_match
from sessions.metric_order import headline_first
from sessions.numbers import fmt
from sessions.series import final_metrics
from sessions.store import SessionStore
from sessions.study import without_study_id
from workbench.completion import complete_session
from workbench.output import fail, print_json

DESCRIBED = ("state", "method", "model", "data")


def compared(read: list[tuple[dict, list[dict]]], pattern: str) -> tuple[list[dict], list[str]]:
    """(one entry per session: id, label, its described fields and final metrics; the metric names shown)."""
    entries = []
    for meta, events in read:
        spec = meta.get("spec") or {}
        entries.append({"id": meta["id"], "name": meta.get("name"),
                        "label": session_label(meta["id"], without_study_id(meta.get("name")), spec.get("method", "?")),
                        "state": meta.get("state"), "method": spec.get("method"), "model": spec.get("model"),
                        "data": spec.get("data"), "final": final_metrics(events, meta.get("summary"))})
    names = glob_match(headline_first(name for entry in entries for name in entry["final"]), pattern)
    return entries, names


def compare_cmd(
    sessions: List[str] = typer.Argument(..., metavar="SESSION", help="two or more session ids or names (or unique "
                                         "prefixes of either)", autocompletion=complete_session),
    metrics: str = typer.Option("", "--metrics", "-m", help="comma-separated globs of the metrics to show (`auc,test.*`; "
                                "a word without * matches anywhere in the name), as the Compare screen's filter"),
    as_json: bool = typer.Option(False, "--json", help="print the sessions and their final metrics as JSON"),
) -> None:
    """Compare sessions side by side: their final metrics (headline metrics first), state, method, model and
    data; the Compare screen's table (`c` on the home) without the TUI."""
    from workbench.cli_report import read_sessions

    read = read_sessions(SessionStore(), sessions)
    if len(read) < 2:
        fail("compare needs two or more sessions (one was given, or the same one twice); e.g. `mmul-workbench "
             "sessions compare ab12 cd34`")
    entries, names = compared(read, metrics)
    if metrics and not names:
        fail(f"--metrics {metrics!r} matches none of these sessions' metrics (e.g. df_dr_auc, test.r_mean); "
             "give globs such as `auc,test.*`")
    if as_json:
        print_json({"sessions": [{**{k: v for k, v in entry.items() if k != "final"},
                                  "final": {name: entry["final"].get(name) for name in names}} for entry in entries],
                    "metrics": names})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="final metrics (rates and AUCs in percent)", header_style="bold")
    table.add_column("metric", no_wrap=True)
    for entry in entries:
        table.add_column(entry["label"], justify="right")
    for name in names:
        table.add_row(name, *(fmt(entry["final"].get(name), name) for entry in entries))
    for key in DESCRIBED:
        table.add_row(key, *(str(entry[key]) for entry in entries))
    Console().print(table)


def register(sessions_app: typer.Typer) -> None:
    sessions_app.command("compare")(compare_cmd)
