"""``mmul-workbench sessions compare ID ID [...]``: the Compare screen's table without the TUI, for scripts and
SSH: each session's final metrics side by side (headline metrics first), then its state, method, model and data.
``--metrics GLOBS`` keeps the metrics the screen's filter would keep; ``--json`` prints the numbers raw."""
from __future__ import annotations

from typing import List

import typer

from sessions.catalog import session_label
from sessions.metric_names import glob_match
from sessions.metric_order import headline_first
from sessions.schema import SchemaMismatch
from sessions.series import COMPARED_FIELDS, compare_rows, final_metrics
from sessions.store import SessionDamaged, SessionStore, UnknownSession
from sessions.study import without_study_id
from workbench.completion import complete_session
from workbench.output import fail, print_json

def read(store: SessionStore, refs: list[str]) -> list[tuple[dict, dict]]:
    """(meta, final metrics) of each session, in the order given, each once; one line and exit 2 for one that
    cannot be read."""
    out, seen = [], set()
    for ref in refs:
        try:
            sid = store.resolve(ref)
            if sid not in seen:
                seen.add(sid)
                meta = store.get(sid)
                out.append((meta, final_metrics(store.events(sid), meta.get("summary"))))
        except (UnknownSession, SchemaMismatch, SessionDamaged) as exc:
            fail(str(exc).splitlines()[0])
    return out


def compare_cmd(
    sessions: List[str] = typer.Argument(..., metavar="SESSION", help="two or more session ids or names (or unique "
                                         "prefixes of either)", autocompletion=complete_session),
    metrics: str = typer.Option("", "--metrics", "-m", help="comma-separated globs of the metrics to show (`auc,test.*`; "
                                "a word without * matches anywhere in the name), as the Compare screen's filter"),
    as_json: bool = typer.Option(False, "--json", help="print the sessions and their final metrics as JSON"),
) -> None:
    """Compare sessions side by side: their final metrics (headline metrics first), state, method, model and
    data; the Compare screen's table (`c` on the home) without the TUI."""
    sessions_read = read(SessionStore(), sessions)
    if len(sessions_read) < 2:
        fail("compare needs two or more sessions (one was given, or the same one twice); e.g. `mmul-workbench "
             "sessions compare ab12 cd34`")
    names = glob_match(headline_first(name for _, final in sessions_read for name in final), metrics)
    if metrics and not names:
        fail(f"--metrics {metrics!r} matches none of these sessions' metrics (e.g. df_dr_auc, test.r_mean); "
             "give globs such as `auc,test.*`")
    labels = [session_label(meta["id"], without_study_id(meta.get("name")), (meta.get("spec") or {}).get("method", "?"))
              for meta, _ in sessions_read]
    if as_json:
        print_json({"sessions": [{"id": meta["id"], "name": meta.get("name"), "label": label,
                                  "state": meta.get("state"),
                                  **{key: (meta.get("spec") or {}).get(key) for key in COMPARED_FIELDS[1:]},
                                  "final": {name: final.get(name) for name in names}}
                                 for (meta, final), label in zip(sessions_read, labels)],
                    "metrics": names})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="final metrics (rates and AUCs in percent)", header_style="bold")
    table.add_column("metric", no_wrap=True)
    for label in labels:
        table.add_column(label, justify="right")
    for row in compare_rows(sessions_read, names):
        table.add_row(*row)
    Console().print(table)


def register(sessions_app: typer.Typer) -> None:
    sessions_app.command("compare")(compare_cmd)
