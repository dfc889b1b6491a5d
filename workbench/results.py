"""Results tables generated from the JSON they came from, never copied by hand.

A result record (`docs/results/NAME.json`) holds the command that made it, the date, the machine and the torch
thread count, and the command's `--json` document (per-example arrays left out). `python -m workbench.results
RECORD.json [FILE.md ...]` rewrites the block between `<!-- results:NAME -->` and `<!-- /results:NAME -->` in
each file (default: docs/pages/results.md) from the record; tests/test_results.py fails when a block and its record disagree.

`python -m workbench.results --record NAME --command "..." < demo.json` makes a record from a `--json` document.
Torch-free: the table's columns come from the catalogue (engine.spec), its numbers from sessions.numbers.
"""
from __future__ import annotations

import json
import os
import platform
import re
import sys
from datetime import date
from pathlib import Path

from engine import spec as specs
from sessions.metric_names import flatten
from sessions.numbers import fmt

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
TARGET = ROOT / "docs" / "pages" / "results.md"  # the docs page the results tables live in
HEAVY = ("df_unit_scores", "df_scores", "judged", "person_accuracies")  # per-example arrays: not a table's business


def trimmed(document):
    """The document without its per-example arrays (the record keeps what tables read)."""
    if isinstance(document, dict):
        return {key: trimmed(value) for key, value in document.items() if key not in HEAVY}
    if isinstance(document, list):
        return [trimmed(value) for value in document]
    return document


def make_record(name: str, command: str, document: dict) -> dict:
    from engine.api import cpu_model  # torch-free; the CPU model, as results can differ from one CPU to another

    cpu = cpu_model()
    return {"name": name, "command": command, "date": date.today().isoformat(),
            "machine": f"{platform.machine()}{f' ({cpu})' if cpu else ''}, {os.cpu_count()} cores, {platform.system()}",
            "threads": threads_of(document) or os.environ.get("OMP_NUM_THREADS", "torch default"),
            "document": trimmed(document)}


def threads_of(document) -> str | None:
    """The torch thread counts the runs of a document trained at, as their costs recorded them (`cost.torch_threads`;
    a study's as mean ± std): "1", or "mixed ..." for a study resumed at another count; None when none says.
    The environment of the shell that made the record says nothing of runs an engine or an earlier shell ran."""
    counts: set[float] = set()

    def walk(value) -> None:
        if isinstance(value, dict):   # a run's cost, or a study's flat `cost.torch_threads`
            threads = value.get("torch_threads", value.get("cost.torch_threads"))
            if isinstance(threads, (int, float)) and not isinstance(threads, bool):
                counts.add(float(threads))
            elif isinstance(threads, dict) and isinstance(threads.get("mean"), (int, float)):
                counts.add(float(threads["mean"]))
                if threads.get("std"):
                    counts.add(float("nan"))   # runs of one method at more than one count
            for sub in value.values():
                walk(sub)
        elif isinstance(value, list):
            for sub in value:
                walk(sub)

    walk(document)
    if not counts:
        return None
    if len(counts) == 1 and all(c == int(c) for c in counts):
        return str(int(next(iter(counts))))
    return "mixed (the runs trained at different counts)"


def demo_table(record: dict) -> str:
    """The demo's comparison table (Markdown): the task's headline columns, the test gap to Retrain, the
    training time, each row's variant below it."""
    document = record["document"]
    runs = document["runs"]
    task = runs[0].get("task") or specs.data_kind(runs[0]["data"])
    columns = specs.shown_columns(task, (flatten(r["metrics"]) for r in runs))
    headline = specs.TASKS[task].test_metric
    retrain = next((flatten(r["metrics"]) for r in runs if r["method"] == "retrain"), None)
    headers = ["method", *(c.header for c in columns), *(["test gap"] if retrain else []), "time"]
    lines = [f"`{record['command']}` ({record['date']}; {record['machine']}; threads: {record['threads']}; "
             f"{document['deletion']['units']} units deleted, seed {runs[0]['seed']}; percent, AUC x 100)", "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]

    def row(label: str, metrics: dict, seconds) -> None:
        flat = flatten(metrics)
        cells = [fmt(flat.get(c.metric), c.metric) for c in columns]
        if retrain:
            value = flat.get(headline)
            cells.append(fmt(None if value is None else abs(value - retrain[headline]), headline))
        lines.append("| " + " | ".join([label, *cells, fmt(seconds, "seconds")]) + " |")

    row("original", document["original_metrics"], None)
    for run in runs:
        row(specs.METHODS[run["method"]].title, run["metrics"], run.get("seconds"))
    lines.append("")
    if retrain:  # named as `study` names it: "Retrain gap" read as the AUC's gap too
        test_column = next((c.header for c in columns if c.metric == headline), headline)
        lines += [f"test gap: |{test_column} - Retrain's| in points.", ""]
    lines.extend(f"- {specs.METHODS[run['method']].title}: {run.get('variant', 'variant not recorded')}"
                 for run in runs)
    return "\n".join(lines)


def study_table(record: dict) -> str:
    """A study's grid (Markdown): one row per method in the study's order (Retrain, then the ranking), the
    task's headline columns (and each attack's recovery, `study --attacks`) as mean ± std over the seeds with n,
    the Retrain-relative scores and the rank, then
    the cost per method; the ranking rule below (sessions.study, what `study` prints)."""
    from sessions.study import cost_grid, grid, grid_caption
    from workbench.cli_study import headline_columns, method_titles
    from workbench.study_attacks import attack_columns

    document = record["document"]
    spec = document["spec"]
    columns = (headline_columns(spec.get("task") or specs.data_kind(spec["data"]), document["methods"])
               + attack_columns(document.get("attacks") or []))
    titles = method_titles()
    lines = [f"`{record['command']}` ({record['date']}; {record['machine']}; threads: {record['threads']}; "
             f"{spec['model']} on {spec['data']}; seeds {', '.join(map(str, spec['seeds']))}; mean ± std, percent, "
             "AUC x 100)", ""]
    for headers, rows in (grid(document, columns, titles, cost=False), cost_grid(document, titles)):
        if rows:
            lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
                      *("| " + " | ".join(row) + " |" for row in rows), ""]
    lines.append(grid_caption(document))
    return "\n".join(lines)


def pulse_table(record: dict) -> str:
    """The PULSE grid of `bench/bench_pulse.py --json-out` (its cells), as the script prints it
    (sessions.pulse_grid)."""
    from sessions.pulse_grid import grid_lines

    cells = record["document"]
    first = cells[0]["document"]
    return "\n".join([f"`{record['command']}` ({record['date']}; {record['machine']}; threads: {record['threads']}; "
                      f"{first.get('model', 'model not recorded')} on {first.get('data', 'data not recorded')}; {len(cells)} runs)", "", *grid_lines(cells)])


def worlds_table(record: dict) -> str:
    """Whether each built-in world shows forgetting (`bench/bench_worlds.py --json-out`; sessions.worlds_table)."""
    from sessions.worlds_table import table_lines

    return "\n".join([f"`{record['command']}` ({record['date']}; {record['machine']}; threads: {record['threads']})",
                      "", *table_lines(record["document"])])


def continual_table(record: dict) -> str:
    """The 100-request table (`bench/bench_continual.py --json-out`; sessions.continual_table)."""
    from sessions.continual_table import table_lines

    return "\n".join([f"`{record['command']}` ({record['date']}; {record['machine']}; threads: {record['threads']})",
                      "", *table_lines(record["document"])])


def figure_value(value: float, unit: str) -> str:
    """A measured figure at the precision its size calls for: 3 significant digits, thousands grouped."""
    if unit == "s" and 0 < abs(value) < 1:
        value, unit = value * 1000, "ms"
    if value == 0:
        text = "0"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    else:
        text = f"{value:.3g}"
    return f"{text}{unit}" if unit in ("x", "%", "/s") else f"{text} {unit}".strip()


def bench_table(record: dict) -> str:
    """A bench script's figures (`bench/*.py --json-out`; bench/figures.py): each with its goal and whether it was
    met, as the script printed them."""
    document = record["document"]
    lines = [f"`{record['command']}` ({record['date']}; {record['machine']}; threads: {record['threads']}; "
             f"{document['setting']})", "", "| figure | measured | goal | |", "|---|---|---|---|"]
    for figure in document["figures"]:
        measured = figure_value(figure["value"], figure.get("unit", ""))
        if figure.get("detail"):
            measured += f" ({figure['detail']})"
        met = "" if "met" not in figure else ("met" if figure["met"] else "**missed**")
        lines.append(f"| {figure['name']} | {measured} | {figure.get('goal', '')} | {met} |")
    return "\n".join(lines)


RENDERERS = {"demo": demo_table, "study": study_table, "pulse": pulse_table, "worlds": worlds_table,
             "continual": continual_table, "bench": bench_table}


def kind_of(document) -> str | None:
    if isinstance(document, list):
        return "pulse"
    if "runs" in document:
        return "demo"
    if "worlds" in document:
        return "worlds"
    if "continual" in document:
        return "continual"
    if "bench" in document:
        return "bench"
    return "study" if "study" in document and "methods" in document else None


def render(record: dict) -> str:
    document = record["document"]
    kind = kind_of(document)
    if kind not in RENDERERS:
        raise SystemExit(f"{record['name']}: no table renders this document (known: {', '.join(RENDERERS)})")
    return RENDERERS[kind](record)


def block(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- results:{re.escape(name)} -->\n)(.*?)(\n<!-- /results:{re.escape(name)} -->)", re.S)


def refreshed(text: str, record: dict) -> str:
    """`text` with the record's block regenerated; SystemExit when the text has no such block."""
    pattern = block(record["name"])
    if not pattern.search(text):
        raise SystemExit(f"no <!-- results:{record['name']} --> block to fill")
    return pattern.sub(lambda match: match.group(1) + render(record) + match.group(3), text)


USAGE = ("usage: python -m workbench.results RECORD.json [PAGE.md ...]  (fill the record's block)\n"
         "       python -m workbench.results --record NAME --command \"...\" < OUTPUT.json  (make a record)")


def usage_error(problem: str) -> None:
    print(problem + USAGE, file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "--record" and (len(argv) < 2 or "--command" not in argv[:-1])):
        usage_error("")
    if argv[:1] == ["--record"]:
        name, command = argv[1], argv[argv.index("--command") + 1]
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{name}.json"
        path.write_text(json.dumps(make_record(name, command, json.load(sys.stdin)), indent=1) + "\n")
        print(path)
        return
    if not Path(argv[0]).is_file():
        usage_error(f"{argv[0]}: no such record (a docs/results/NAME.json file)\n")
    record = json.loads(Path(argv[0]).read_text())
    for target in argv[1:] or [str(TARGET)]:
        Path(target).write_text(refreshed(Path(target).read_text(), record))


if __name__ == "__main__":
    main(sys.argv[1:])
