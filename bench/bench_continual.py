"""Continual unlearning at 100 requests: the four main methods over seeds, each forgetting one unit a request.

Runs `mmul-workbench run --method M --model MODEL --data W --delete N --requests N --eval-every-requests E
--seed S --json` once per method and seed (a subprocess each; a kept document is reused when the grid is re-run)
and prints the continual table (`python -m workbench.results` renders the same table into the docs from
`--json-out`'s record): after the last request, the union's Df performance, test, and the history's summary
(preservation, rebound, stability, area under the retain curve: sessions/history.py), mean ± sample std over
the seeds, with each seed's largest rebound and where it happened.

    python bench/bench_continual.py [--methods neggrad,ga_klr,npo,multidelete] [--model clip-tiny] \
        [--data shapes-tiny] [--requests 100] [--eval-every 10] [--seeds 42,87,21] [--home DIR] [--json-out FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.kept_runs import add_grid_options, grid_env, run_kept  # noqa: E402
from sessions.continual_table import table_lines  # noqa: E402  (pure Python)

MATRIX = ("matrix", "before", "utility")  # the table reads the summary; the matrix stays in each run's session



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="neggrad,ga_klr,npo,multidelete")
    parser.add_argument("--model", default="clip-tiny")
    parser.add_argument("--data", default="shapes-tiny")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=10)
    add_grid_options(parser)
    args = parser.parse_args()
    env = grid_env(args.home, "mmul-continual-bench-")
    cells = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for method in args.methods.split(","):
            document = run_kept(["run", "--method", method, "--model", args.model, "--data", args.data,
                                 "--delete", str(args.requests), "--requests", str(args.requests),
                                 "--eval-every-requests", str(args.eval_every), "--seed", str(seed), "--device", "cpu",
                                 "--json"], env, "bench-continual")
            print(f"done {method} seed {seed} in {document['wall_seconds']:.0f} s", file=sys.stderr)
            cells.append({"method": method, "seed": seed, "variant": document.get("variant"),
                          "metrics": document["metrics"], "original_metrics": document["original_metrics"],
                          "history": {key: value for key, value in document["history"].items() if key not in MATRIX},
                          "seconds": document.get("seconds"),
                          "wall_seconds": document["wall_seconds"]})
    grid = {"continual": cells, "model": args.model, "data": args.data, "requests": args.requests,
            "eval_every": args.eval_every}
    print("\n".join(table_lines(grid)))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(grid, indent=1))


if __name__ == "__main__":
    main()
