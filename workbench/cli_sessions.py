"""``mmul-workbench sessions list|show|export|delete|check`` and ``replay SESSION --headless``.

Everything here reads the session store only (no engine needed); rich and plotext are imported
inside the commands that draw. A damaged session is one line and exit 2 for show, export and replay;
it is listed as ``damaged`` and can be deleted; ``check --repair`` moves it aside.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from sessions.attacks import attack_line, attacks_of
from sessions.check import check
from sessions.errors import AmbiguousSession
from sessions.export import export_text, is_export_head, session_document, write_export
from sessions.schema import ACTIVE_STATES, STATES, SchemaMismatch
from sessions.numbers import fmt, fmt_delta, format_duration
from sessions.metric_order import headline_first
from sessions.series import DELTA, delta_columns, downsample, final_table, training_steps, unlearning_steps, with_delta
from sessions.store import SessionBusy, SessionDamaged, SessionStore, UnknownSession
from sessions.resuming import RESUMABLE_STATES, resume_hint, resumed_by_words, resumed_words
from sessions.summary import deletion_line, format_deletion, summary_metrics, test_headline, test_headline_name, took, took_words
from sessions.verdict import left_out_words, session_verdict, thinned
from workbench.completion import complete_session
from workbench.output import Exit, fail, json_text, missing_parent, output_file
from workbench.text_table import Column, fit_lines, tsv_lines

SESSION_HELP = "session id, name, or a unique prefix of either (or an id's end such as ab12)"

sessions_app = typer.Typer(
    name="sessions",
    help="Stored runs: list, show, export, delete (every run is a session under $MMUL_HOME/sessions).",
    no_args_is_help=True,
    add_completion=False,
)


def _store() -> SessionStore:
    return SessionStore()


def _notices(store: SessionStore) -> None:
    """Repairs the store made on the way (a rebuilt catalog), one line each on stderr."""
    for notice in store.notices:
        typer.echo(f"note: {notice}", err=True)
    store.notices.clear()


def _open(store: SessionStore, ref: str) -> str:
    try:
        return store.resolve(ref)
    except UnknownSession as exc:
        fail(str(exc))
    raise AssertionError  # unreachable


def _document(store: SessionStore, ref: str) -> tuple[str, dict]:
    """The session's id and its whole document (spec, status, summary, events, and the attacks made on it,
    sessions/attacks.py), or one line, exit 2."""
    sid = _open(store, ref)
    try:
        return sid, {**session_document(store, sid), "attacks": attacks_of(store, sid)}
    except (UnknownSession, SchemaMismatch, SessionDamaged) as exc:
        fail(str(exc))
    raise AssertionError  # unreachable


def _json_out(obj: Any) -> None:
    typer.echo(json_text(obj))


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


LISTED_STATES = (*STATES, "damaged")  # a catalog row's state: the schema's, or damaged when its files are
LIST_COLUMNS = [Column("id"), Column("name", shrink=8), Column("state"), Column("method / model / data", shrink=12),
                Column("created", drop=2), Column("took", right=True, drop=1), Column("steps", right=True, drop=4),
                Column("Df/Dr AUC", right=True), Column("test", right=True), Column("MIA Df member", right=True, drop=3)]
TSV_COLUMNS = [Column("id"), Column("name"), Column("state"), Column("method"), Column("model"), Column("data"), Column("created"),
               Column("took"), Column("steps"), Column("Df/Dr AUC"), Column("test"), Column("MIA Df member")]


def list_rows(rows: list[dict]) -> list[dict]:
    """A catalog row's cells in words (one number format: rates and AUCs in percent, time humanised)."""
    out = []
    for row in rows:
        metrics = summary_metrics(row.get("summary"))
        state = row.get("state", "?")
        out.append({
            "id": row["id"], "name": row.get("name") or "-", "state": state + ("?" if row.get("live") is False else ""),
            **{key: str(row.get(key) or "?") for key in ("method", "model", "data")},
            "note": f": {row.get('message')}" if state == "damaged" else "",
            "created": _when(row.get("created")), "took": format_duration(took(row)), "steps": steps(row),
            "auc": fmt(metrics.get("df_dr_auc"), "df_dr_auc"),
            "test": fmt(test_headline(metrics), test_headline_name(metrics)),
            "mia": fmt(metrics.get("mia.df_member_rate"), "mia.df_member_rate"),
        })
    return out


def steps(row: dict) -> str:
    """The run's unlearning steps (its summary's ``steps``: an original trained in the same session is not
    counted, issue 25), or "-"."""
    summary = row.get("summary") if isinstance(row.get("summary"), dict) else {}
    count = summary.get("steps")
    return str(count) if isinstance(count, int) and not isinstance(count, bool) else "-"


def list_lines(rows: list[dict], width: int | None) -> list[str]:
    """`sessions list` as text: aligned and at most ``width`` characters a line, or tab-separated (None)."""
    cells = list_rows(rows)
    if width is None:
        return tsv_lines(TSV_COLUMNS, [[c["id"], c["name"], c["state"], c["method"], c["model"], c["data"] + c["note"],
                                        c["created"], c["took"], c["steps"], c["auc"], c["test"], c["mia"]] for c in cells])
    return fit_lines(LIST_COLUMNS, [[c["id"], c["name"], c["state"], f"{c['method']} / {c['model']} / {c['data']}{c['note']}",
                                     c["created"][5:] or "-", c["took"], c["steps"], c["auc"], c["test"], c["mia"]]
                                    for c in cells],
                     width)


@sessions_app.command("list")
def list_cmd(
    state: Optional[str] = typer.Option(None, "--state", help="only sessions in this state"),
    limit: int = typer.Option(0, "--limit", "-n", min=0, help="at most this many (newest first); 0 = all"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """List sessions, newest first, with their key final metrics (reads only the catalog). On a terminal
    the table fits its width (or $COLUMNS); piped, tab-separated rows under a header line."""
    state = state.strip().lower() if state is not None else None  # `--state Done` means done
    if state is not None and state not in LISTED_STATES:
        fail(f"--state {state}: a session is {', '.join(LISTED_STATES)}; give one of them")
    store = _store()
    try:
        rows = store.list(state)
    except (SchemaMismatch, OSError) as exc:
        fail(str(exc))
    _notices(store)
    if limit > 0:
        rows = rows[:limit]
    if as_json:
        _json_out({"sessions": rows})
        return
    if not rows:
        typer.echo(f"no {state} sessions" if state else
                   "no sessions yet; `mmul-workbench run ...` or `mmul-workbench demo` makes one", err=True)
        return
    width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else None
    for line in list_lines(rows, width):
        typer.echo(line)
    damaged = sum(row.get("state") == "damaged" for row in rows)
    if damaged:
        typer.echo(f"{damaged} damaged session(s): `mmul-workbench sessions check --repair` moves them aside",
                   err=True)


@sessions_app.command("show")
def show_cmd(
    session: str = typer.Argument(..., help=SESSION_HELP,
                                 autocompletion=complete_session),
    events: int = typer.Option(10, "--events", "-e", min=0, help="how many of the last events to print (text mode)"),
    as_json: bool = typer.Option(False, "--json", help="the spec, status, summary and every event as JSON"),
) -> None:
    """Show a session: spec, status, summary and its events."""
    store = _store()
    sid, doc = _document(store, session)
    if as_json:
        _json_out(doc)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    evs = doc["events"]
    abandoned = doc.get("live") is False and doc["state"] in ACTIVE_STATES   # `sessions list` shows running?
    console.print(f"[bold]{doc['id']}[/]  {doc.get('name') or ''}  state [bold]{doc['state']}{'?' * abandoned}[/]"
                  + (f" ({doc['message']})" if doc.get("message") else "")
                  + (" (no process writes it: `mmul-workbench sessions check --repair` marks it interrupted)"
                     if abandoned else ""))
    console.print(f"created {_when(doc['created'])}  updated {_when(doc['updated'])}  took {took_words(doc)}  "
                  f"{len(evs)} events")
    stopped = doc["state"] in RESUMABLE_STATES
    for said in (resumed_words(doc["spec"]), resumed_by_words(store, doc["id"]) if stopped else None,
                 resume_hint(store, doc["spec"], doc["id"]) if stopped else None):
        if said:  # a resumed run's past is the session it resumed; a stopped one says how it goes on
            console.print(said, highlight=False, markup=False, soft_wrap=True)
    console.print("spec: " + json.dumps(doc["spec"], sort_keys=True))
    facts = deletion_line(doc["spec"], doc.get("summary"), shown=50)
    if facts:
        console.print(f"deletion: {facts}", highlight=False, markup=False, soft_wrap=True)
    lines, left_out = thinned(session_verdict(store, doc))   # as `replay` and `report` say it (a finished one's)
    for line in lines:
        console.print(f"verdict: {line}", highlight=False, markup=False, soft_wrap=True)
    if left_out:
        console.print(f"({left_out_words(left_out)}; `sessions show --json` has each one's numbers)", highlight=False)
    columns, rows = final_table(evs)
    if rows:
        console.print(_metric_table(_fitting_columns(console, columns, rows), rows))
    elif doc.get("summary"):
        console.print("summary: " + json.dumps(doc["summary"], sort_keys=True, default=str))
    counts: dict[str, int] = {}
    for e in evs:
        counts[e["kind"]] = counts.get(e["kind"], 0) + 1
    console.print("events: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for entry in doc["attacks"]:  # attack sessions made on this one (`mmul-workbench attack ...`)
        console.print(f"attack: {attack_line(entry)}", highlight=False, markup=False, soft_wrap=True)
    if events > 0:
        table = Table(box=None, header_style="bold")
        for col in ("seq", "time", "kind", "fields"):
            table.add_column(col)
        for e in evs[-events:]:
            fields = {k: v for k, v in e.items() if k not in ("v", "seq", "ts", "kind")}
            table.add_row(str(e["seq"]), time.strftime("%H:%M:%S", time.localtime(e["ts"])), e["kind"],
                          json.dumps(fields, default=str)[:100])
        console.print(table)


def _fitting_columns(console, columns: list[str], rows: dict[str, dict[str, float]]) -> list[str]:
    """The columns of the final-metrics table that fit the console beside whole metric names: all of them, or, for
    a long request sequence, "before" and the last requests, saying on the console how many were left out (the
    table squeezed 101 columns into 80 and printed no digit, and cut the names to `holdo…`)."""
    cell = 10   # a value column: "100.0" or "after r100", padding and a border
    room = console.width - max(map(len, rows), default=6) - 4 - (cell if "before" in columns else 0)   # - delta
    fits = max(2, room // cell)
    if len(columns) <= fits:
        return columns
    console.print(f"({len(columns) - fits} of {len(columns)} columns left out of the table below; "
                  "`sessions show --json` has them all)", highlight=False)
    if "after" in columns:  # an attack's: its own before and after first, then Retrain's as room allows (at 80
        first = [c for c in columns if c in ("before", "after")]  # columns it showed Retrain's and not its own after)
        return first + [c for c in columns if c not in first][:max(fits - len(first), 0)]
    return columns[:1] + columns[len(columns) - fits + 1:]


def _metric_table(columns: list[str], rows: dict[str, dict[str, float]]):
    """The final metrics (headline metrics first), in the one number format, with before -> after deltas."""
    from rich.table import Table

    table = Table(title="final metrics (rates and AUCs in percent)", header_style="bold")
    table.add_column("metric", no_wrap=True)
    displayed, delta = with_delta(columns), delta_columns(columns)
    for col in displayed:
        table.add_column(col, justify="right")
    for name in headline_first(rows):
        values = rows[name]
        table.add_row(name, *(fmt_delta(values.get(delta[0]), values.get(delta[1]), name) if col == DELTA
                              else fmt(values.get(col), name) for col in displayed))
    return table


@sessions_app.command("export")
def export_cmd(
    session: str = typer.Argument(..., help=SESSION_HELP, autocompletion=complete_session),
    out: Path = typer.Option(..., "--out", "-o", help="FILE.json, FILE.csv, a directory (both files), or - "
                             "(standard output, JSON unless --format csv)"),
    fmt: Optional[str] = typer.Option(None, "--format", help="json or csv (default: from --out's suffix)"),
    force: bool = typer.Option(False, "--force", help="replace an --out file that is not a session export"),
    as_json: bool = typer.Option(False, "--json", help="print what was written as JSON"),
) -> None:
    """Export a session: JSON (spec, status, summary, events) and/or CSV of the metric series
    (tidy: seq, ts, kind, phase, request, split, step, name, value)."""
    if fmt is not None and fmt not in ("json", "csv"):
        fail(f"--format {fmt!r} is not known; use json or csv")
    to_stdout = str(out) == "-"
    if to_stdout and as_json:
        fail("--out - prints the export itself; drop --json (it prints the files written)")
    suffix = "" if to_stdout else out.suffix.lower().lstrip(".")
    if suffix and not out.is_dir():
        if fmt is None and suffix not in ("json", "csv"):
            fail(f"--out {out}: a .{suffix} file is neither format; give FILE.json, FILE.csv, a directory (both "
                  "files), or --format json|csv")
        if fmt is not None and suffix in ("json", "csv") and suffix != fmt:
            fail(f"--out {out} says {suffix} but --format says {fmt}; make them agree")
    store = _store()
    sid, doc = _document(store, session)
    if to_stdout:
        sys.stdout.write(export_text(doc, fmt or "json"))
        return
    if fmt is None and suffix in ("json", "csv") and not out.is_dir():
        targets = {suffix: out}
    elif fmt is not None and not out.is_dir():
        targets = {fmt: out}
    else:
        targets = {"json": out / f"{sid}.json", "csv": out / f"{sid}.csv"}
        if fmt is not None:
            targets = {fmt: targets[fmt]}
    into_folder = next(iter(targets.values())).parent == out
    missing_parent(out if into_folder else next(iter(targets.values())))
    checked = {kind: output_file(path, ours=is_export_head(kind), force=force) for kind, path in targets.items()}
    written = []
    try:
        if into_folder:   # the folder itself is made; a file's folder must be there (a link's target's too)
            out.mkdir(exist_ok=True)
        for kind, path in checked.items():
            write_export(doc, path, kind)
            written.append(str(targets[kind]))   # as given: a second export printed the link's resolved path
    except OSError as exc:
        fail(f"cannot write {exc.filename or out}: {exc.strerror}; choose a writable --out path")
    if as_json:
        _json_out({"session": sid, "files": written})
    else:
        for path in written:
            typer.echo(path)


@sessions_app.command("import")
def import_cmd(
    document: Path = typer.Argument(..., metavar="FILE.json", help="a session document `sessions export` wrote"),
    as_json: bool = typer.Option(False, "--json", help="print the imported session's id as JSON"),
) -> None:
    """Bring an exported session into this home (from another machine, a backup): its own id, events and times,
    so replay, show, report and compare read it as where it ran. Its weights stay where its run wrote them."""
    from sessions.files import describe_error, read_json
    from sessions.importing import NotImportable, import_session

    try:
        doc = read_json(document)
    except (OSError, ValueError, RecursionError) as exc:
        fail(f"cannot import {document}: {describe_error(exc, document)}")
    try:
        session_id = import_session(_store(), doc)
    except NotImportable as exc:
        fail(f"cannot import {document}: {exc}")
    if as_json:
        _json_out({"session": session_id, "from": str(document)})
    else:
        typer.echo(session_id)


@sessions_app.command("delete")
def delete_cmd(
    session: str = typer.Argument(..., help="the session's whole id or its exact name (no prefix: a delete is "
                                  "for good)", autocompletion=complete_session),
    force: bool = typer.Option(False, "--force", help="delete a study's cell too (the study runs it again when "
                               "re-run; until then its report and grid lack it)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Delete a session for good (refused while it is queued or running, and for a study's cell unless --force)."""
    from sessions.study import cells_of_session

    if not session.strip():
        fail("sessions delete needs a session's whole id or its exact name (`mmul-workbench sessions list` shows them)")
    store = _store()
    try:
        sid = store.resolve(session)
    except AmbiguousSession as exc:  # "give more of the id or name" is no way on: a delete takes a whole id
        fail(f"{exc.candidates}; `sessions delete` takes one whole id: give the id of the one to delete")
    except UnknownSession as exc:
        fail(str(exc))
    names = [row.get("name") for row in store.named_rows() if row.get("id") == sid]
    if session != sid and not any(isinstance(name, str) and name.casefold() == session.casefold() for name in names):
        fail(f"sessions delete takes a session's whole id or its exact name, and {session!r} is only part of "
             f"{sid}; run `mmul-workbench sessions delete {sid}` to delete it")
    if (cells := cells_of_session(sid)) and not force:
        fail(f"session {sid} is the cell {'; '.join(cells)}: its report and grid lack it until the study runs it "
             "again; add --force to delete it anyway")
    try:
        store.delete(sid)
    except (SessionBusy, UnknownSession, SchemaMismatch) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot delete session {sid}: {exc.strerror or type(exc).__name__}")
    _notices(store)
    if as_json:
        _json_out({"deleted": sid})
    else:
        typer.echo(f"deleted {sid}")


@sessions_app.command("check")
def check_cmd(
    repair: bool = typer.Option(False, "--repair", help="move damaged sessions aside, remove stale files, "
                                "rebuild the catalog"),
    as_json: bool = typer.Option(False, "--json", help="the report as one JSON object"),
) -> None:
    """Verify every session file (schema, event sequence) and the catalog; --repair fixes what it can.
    Exit 0 when all is well (or repaired), 1 when problems were found and not repaired."""
    store = _store()
    try:
        report = check(store, repair=repair)
    except OSError as exc:
        fail(f"cannot check {store.root}: {exc.strerror or type(exc).__name__}", Exit.RUN_FAILED)
    if as_json:
        _json_out(report.document())
    else:
        for entry in report.damaged:
            moved = f"; moved to {entry['moved_to']}" if entry.get("moved_to") else ""
            typer.echo(f"{entry['id']}: damaged: {entry['reason']}{moved}")
        for sid in report.other_schema:
            typer.echo(f"{sid}: written by another schema version (left as it is)")
        if report.catalog:
            kept = f"; damaged copy kept at {report.catalog_kept}" if report.catalog_kept else ""
            typer.echo(f"catalog: {report.catalog}" + ("; rebuilt from the session files" if report.repaired
                                                       else "") + kept)
        if report.stale:
            typer.echo(f"{len(report.stale)} stale file(s) left by a crash" + (": removed" if report.repaired else ""))
        for entry in report.off:
            typer.echo(f"{entry['id']}: readable, but {'; '.join(entry['what'])} (edited by hand?); left as it is")
        unmarked = {entry["id"]: entry["reason"] for entry in report.unmarked}
        for sid in report.abandoned:
            done = (f": could not be marked interrupted ({unmarked[sid]}); free some space and repair again"
                    if sid in unmarked else ": marked interrupted" if report.repaired else "")
            typer.echo(f"{sid}: still marked running, and no process writes it{done}")
        live = f", {len(report.live)} being written (not checked)" if report.live else ""
        verdict = ("repaired" if report.repaired else "run `mmul-workbench sessions check --repair`") \
            if report.problems else "all good"
        off = f", {len(report.off)} readable with fields off" if report.off else ""
        typer.echo(f"checked {report.sessions} session(s): {len(report.healthy)} healthy{off}, "
                   f"{len(report.damaged)} damaged{live}; {verdict}")
    raise typer.Exit(1 if report.problems and not report.repaired else 0)


# --------------------------------------------------------------------------------------------------
# replay --headless


TEXT_MARKERS = ("•", "x", "+", "o")  # one a series (a panel holds at most 4: sessions.panels.MAX_SERIES)


def _panel_text(panel, width: int, height: int, color: bool) -> str:
    """One panel (sessions.panels) as plotext text: its lines in the palette, its reference lines, one x range,
    integer ticks; the legend is a line under the plot, outside its area."""
    import plotext as plt

    from sessions.panels import REFERENCE_COLOUR, integer_ticks

    plt.clear_figure()
    plt.plotsize(width, height)
    if not color:
        plt.theme("clear")
    plt.title(panel.title)
    marks = [None if color else mark for mark in TEXT_MARKERS]  # without colour a marker tells the lines apart
    for line, mark in zip(panel.lines, marks):
        dx, dy = downsample(line.xs, line.ys, 2 * width)
        style = {"color": line.colour, **({"marker": mark} if mark else {})}
        if len(dx) == 1:
            plt.scatter(dx, dy, **style)
        elif dx:
            plt.plot(dx, dy, **style)
    for reference in panel.references:
        plt.hline(reference.y, REFERENCE_COLOUR)
    lo, hi = panel.x_range
    plt.xlim(lo, hi)
    if panel.integer_x:
        plt.xticks(integer_ticks(lo, hi, max(2, width // 10)))
    plt.xlabel(panel.xlabel)
    text = plt.build()
    marks = [f"\x1b[38;2;{r};{g};{b}m━\x1b[0m" for r, g, b in (l.colour for l in panel.lines)] if color else TEXT_MARKERS
    legend = "   ".join([f"{mark} {line.label}" for mark, line in zip(marks, panel.lines)]
                         + [f"┄ {ref.label} {ref.y:.1f}" for ref in panel.references])
    return (text if color else plt.uncolorize(text)) + "\n  " + legend


def _print_history(console, events: list[dict], summary, width: int) -> None:
    """The history matrix (sessions/history.py) as text rows, each value coloured as the monitor's heatmap,
    in blocks of requests where it is wider than the console; then its summary metrics."""
    from rich.text import Text

    from sessions.history import binned, heat_colour, history_from_events, summary_words, value_range

    before, matrix = history_from_events(events)
    if len(matrix) < 2:
        return
    document = (summary or {}).get("history") if isinstance(summary, dict) else None
    metric = (document or {}).get("metric", "")
    labels, before_row, rows = binned(before, matrix, max(1, (width - 8) // 8))
    low, high = value_range(before, matrix)
    # its galleries are its own (every request's units ranked at once, one seeded plan), so its numbers differ
    # from the verdict's and the final table's Df of the same units (86.7 against 90.4 before; a review)
    own = ", in its own galleries" if metric.endswith("r_mean") else ""
    console.print(f"history: {metric or 'Df'} of request j (column) after request i (row){own}", highlight=False)
    console.print(Text(" " * 8 + "".join(f"{label:>8}" for label in labels)))
    for label, values in (("before", before_row), *zip(labels, rows)):
        line = Text(f"{label:>8}")
        for value in values:
            line.append(f"{'' if value is None else fmt(value, metric):>8}", style=heat_colour(value, low, high)
                        if value is not None else "")
        console.print(line)
    if document and document.get("summary"):
        console.print("history summary: " + summary_words(document, fmt), highlight=False)


def replay_headless(session_id: str, width: int | None = None, out=None) -> int:
    """Draw a stored session's curves (plotext) and its final metric table (rich) to stdout.

    Reads the stored events only. Returns an exit code (0, or 2 with one line on stderr)."""
    out = out or sys.stdout
    store = SessionStore()
    try:
        sid = store.resolve(session_id)
        meta = store.get(sid)
        events = store.events(sid)
    except (UnknownSession, SchemaMismatch, SessionDamaged) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from rich.console import Console

    color = out.isatty() if hasattr(out, "isatty") else False
    term = shutil.get_terminal_size((100, 24))
    width = max(40, min(width or term.columns, 200))
    console = Console(file=out, width=width, force_terminal=color, no_color=not color)
    spec = meta.get("spec") or {}
    console.print(f"session {sid}  {spec.get('method', '?')} / {spec.get('model', '?')} / "
                  f"{spec.get('data', '?')}  state {meta['state']}"
                  + (f" ({meta['message']})" if meta.get("message") else ""))
    for said in (resumed_words(spec), resumed_by_words(store, sid)):
        if said is not None:
            console.print(said, highlight=False, markup=False, soft_wrap=True)
    deletion = deletion_line(spec, meta.get("summary")) or (format_deletion(spec["deletion"])  # as `sessions show`
                                                             if isinstance(spec.get("deletion"), dict) else None)
    if deletion:
        console.print(f"deletion: {deletion}", highlight=False, markup=False, soft_wrap=True)
    trained = training_steps(events)
    console.print(f"{len(events)} events, {unlearning_steps(events)} unlearning steps; "
                  + (f"the original's training ran here first ({trained} steps, not drawn); " if trained else "")
                  + f"created {_when(meta.get('created'))}", soft_wrap=True)
    lines, left_out = thinned(session_verdict(store, meta))
    for line in lines:  # one line a verdict, whatever the width: scripts grep it
        console.print(f"verdict: {line}", highlight=False, markup=False, soft_wrap=True)
    if left_out:
        console.print(f"({left_out_words(left_out)}; `sessions show --json` has each one's numbers)", highlight=False)
    from sessions.panels import event_panels, retrain_metrics

    panels = event_panels(events, retrain_metrics(store, meta))
    for panel in panels:  # the same panels as the monitor and the report: forget, keep, privacy, general, loss
        out.write(_panel_text(panel, width, 14, color) + "\n")
    _print_history(console, events, meta.get("summary"), width)
    columns, rows = final_table(events)
    if rows:
        console.print(_metric_table(_fitting_columns(console, columns, rows), rows))
    elif meta.get("summary"):
        metrics = summary_metrics(meta["summary"])
        if metrics:
            console.print(_metric_table(["final"], {k: {"final": v} for k, v in metrics.items()}))
    if not panels and not rows:
        console.print("no step or eval events in this session")
    out.flush()
    return 0


@sessions_app.command("replay", hidden=True)
def replay_cmd(session: str = typer.Argument(..., help=SESSION_HELP, autocompletion=complete_session)) -> None:
    """Same as `mmul-workbench replay SESSION --headless`."""
    raise typer.Exit(replay_headless(session))
