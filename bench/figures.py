"""What a bench script measured, printed as it goes and kept as JSON for the docs' tables.

A script adds `--json-out FILE` with `add_json_out(parser)`, records each figure with `Figures.add` (name, value,
unit, the goal it is held to, a detail such as the counts behind it) and ends with `figures.write(args.json_out)`.
`python -m workbench.results --record NAME --command "..." < FILE` turns the file into a record, and the results
page's block for NAME is rendered from it (workbench/results.py, `bench_table`), never typed in by hand.
"""
from __future__ import annotations

import json
import operator
from pathlib import Path

GOALS = {"<=": operator.le, ">=": operator.ge}


def add_json_out(parser) -> None:
    parser.add_argument("--json-out", type=Path, default=None,
                        help="also write the figures as JSON (for `python -m workbench.results --record`)")


class Figures:
    def __init__(self, bench: str, setting: str, torch_threads: int | None = None):
        """`torch_threads`: the count the script computed at (the record's `threads`), where it used torch."""
        self.document = {"bench": bench, "setting": setting, "figures": []}
        if torch_threads is not None:
            self.document["torch_threads"] = torch_threads

    def add(self, name: str, value: float, unit: str = "", goal: str | None = None, detail: str = "") -> float:
        """Record one figure. `goal` reads "<= 0.12" or ">= 1": the figure says whether it was met."""
        figure = {"name": name, "value": value, "unit": unit, "detail": detail}
        if goal is not None:
            sign, bound = goal.split()
            figure.update(goal=goal, met=bool(GOALS[sign](value, float(bound))))
        self.document["figures"].append(figure)
        return value

    def write(self, path: Path | None) -> None:
        if path is not None:
            Path(path).write_text(json.dumps(self.document, indent=1) + "\n")
            print(f"figures written to {path}")
