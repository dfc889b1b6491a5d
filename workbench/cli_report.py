"""``mmul-workbench sessions report ID [ID...] --out report.html`` and ``sessions report --study STUDY --out
report.html``: one self-contained HTML file (inline CSS, inline SVG plots, no JavaScript, nothing fetched)
built by sessions/report.py from the session store and the study records.

Reads only; matplotlib loads inside the command (never at start-up). Bad input (an unknown or damaged
session or study, an --out that is a directory or cannot be written) is one line on stderr and exit 2,
before anything is written; the file itself is written atomically, so a failure leaves nothing behind.
`register(sessions_app)` adds the command beside the other `sessions` commands.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import List, Optional

import typer

from sessions.schema import SchemaMismatch
from sessions.store import SessionDamaged, SessionStore, UnknownSession
from sessions.study import StudyError
from sessions.panels import retrain_metrics
from sessions.attacks import attacks_of
from sessions.verdict import session_verdict
from sessions.study import DEFAULT_TOLERANCE
from workbench.completion import complete_session, complete_study
from workbench.output import fail, missing_parent, output_file, print_json


def check_out(out: Path, force: bool) -> Path:
    """``--out`` as a writable file path, or one line and exit 2 (an existing file only when it is a report, or
    with --force)."""
    from sessions.report import MADE_BY

    if str(out) == "-":   # it made a file named `-`, where `sessions export --out -` prints
        fail("--out - : a report is a file with its plots in it; give --out FILE.html")
    if out.is_dir():
        fail(f"--out {out} is a directory; give a file such as {out / 'report.html'}")
    checked = output_file(out, ours=lambda head: MADE_BY.encode() in head, force=force)
    missing_parent(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not os.access(parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        fail(f"--out {out} cannot be written (permission denied); choose a writable path")
    return checked


def read_sessions(store: SessionStore, refs: list[str]) -> list[tuple[dict, list[dict]]]:
    """(meta, events) of each session, in the order given (each once), or one line and exit 2."""
    out, seen = [], set()
    for ref in refs:
        try:
            sid = store.resolve(ref)
            if sid in seen:
                continue
            seen.add(sid)
            meta = store.get(sid)
            out.append(({**meta, "verdict": session_verdict(store, meta), "retrain": retrain_metrics(store, meta),
                         "attacks": attacks_of(store, sid)}, store.events(sid)))
        except (UnknownSession, SchemaMismatch, SessionDamaged) as exc:
            fail(str(exc).splitlines()[0])
    return out


def study_html(study: str, tolerance: float) -> str:
    """The study's report: its grid (as `study` prints it), its cells and one plot per headline metric."""
    from sessions.report import headline_names, study_report
    from sessions.study import StudyRecord, grid, grid_caption
    from engine.spec import ATTACK_KINDS
    from sessions.attacks import recorded_attacks
    from workbench.cli_study import method_titles, report, study_columns, study_title

    try:
        record = StudyRecord.stored(study)
    except StudyError as exc:
        fail(str(exc))
    cells = [(cell["method"], cell["seed"], None) for cell in record.cells]
    store = SessionStore()
    catalog = {row["id"]: row for row in store.list()}
    attacked = {cell["session"]: recorded_attacks(catalog, cell) for cell in record.cells if cell.get("attacks")}
    kinds = [kind for kind in ATTACK_KINDS if any(kind in found for found in attacked.values())]   # as recorded
    document = report(record, cells, tolerance, attacked, kinds)
    columns, titles = study_columns(document), method_titles()
    headers, rows = grid(document, columns, titles)
    metrics = [metric for _, metric in columns] or headline_names(document["methods"])
    finished = []
    for cell in document["cells"]:
        if cell["state"] != "finished" or not cell.get("session"):
            continue
        try:
            meta = store.get(cell["session"])
            finished.append((cell["method"], cell["seed"], store.events(cell["session"]), meta.get("summary")))
        except (UnknownSession, SchemaMismatch, SessionDamaged) as exc:
            fail(f"study {study}: session {cell['session']} of {cell['method']} seed {cell['seed']}: "
                 f"{str(exc).splitlines()[0]}")
    return study_report(document, study_title(document), headers, rows, grid_caption(document), metrics,
                        finished, titles)


def report_cmd(
    sessions: Optional[List[str]] = typer.Argument(None, metavar="SESSION",
                                                   help="session ids or names (or unique prefixes of either)",
                                                   autocompletion=complete_session),
    out: Path = typer.Option(..., "--out", "-o", help="the HTML file to write (replaced atomically)"),
    study: Optional[str] = typer.Option(None, "--study", autocompletion=complete_study,
                                        help="report a study (its id, study-<12 hex>) instead "
                                        "of sessions"),
    tolerance: float = typer.Option(DEFAULT_TOLERANCE, "--tolerance", help="with --study: the test gap to Retrain, in points, "
                                    "within which methods are ranked (as `study --tolerance`)"),
    force: bool = typer.Option(False, "--force", help="replace an --out file that is not a report"),
    as_json: bool = typer.Option(False, "--json", help="print what was written as JSON"),
) -> None:
    """Write one self-contained HTML report (specs, final metric tables, curves as SVG plots) of sessions,
    or of a study (its grid of methods x headline metrics and one overlaid plot per metric)."""
    if bool(sessions) == bool(study):
        fail("give session ids or --study STUDY_ID (one of the two), e.g. `mmul-workbench sessions report "
             "ab12 cd34 --out report.html`")
    if not math.isfinite(tolerance) or tolerance < 0:
        fail(f"--tolerance {tolerance:g} must be a number of points >= 0 (default {DEFAULT_TOLERANCE:g})")
    if not study and tolerance != DEFAULT_TOLERANCE:
        fail("--tolerance ranks a study's methods; it applies with --study STUDY_ID, not to sessions")
    out = check_out(out, force)
    if study:
        text = study_html(study, tolerance)
    else:
        from sessions.report import sessions_report

        read = read_sessions(SessionStore(), sessions)
        sessions = [meta["id"] for meta, _ in read]
        text = sessions_report(read)
    from sessions.report import write_report

    try:
        write_report(out, text)
    except OSError as exc:
        fail(f"cannot write {exc.filename or out}: {exc.strerror or type(exc).__name__}; choose a writable --out path")
    if as_json:
        print_json({"report": str(out), "study": study, "sessions": None if study else sessions,
                    "bytes": len(text.encode("utf-8"))})
    else:
        typer.echo(str(out))


def register(sessions_app: typer.Typer) -> None:
    sessions_app.command("report")(report_cmd)
