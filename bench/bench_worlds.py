"""Can each built-in world show forgetting? The original against Retrain on every world, over seeds.

Runs `mmul-workbench run --method retrain --model M --data W --delete N --seed S --json` once per world and
seed (a subprocess each; a kept document is reused when the grid is re-run) and prints the table of issue 24
item 6 (`python -m workbench.results` renders the same table into the docs from `--json-out`'s record): the
original's and Retrain's Df performance and their gap, their Df/Dr AUC, test performance and the holdout
sets, mean ± sample std over the seeds, and whether the world meets the three criteria: the original's Df
performance at least 15 points above Retrain's, the original's Df/Dr AUC within 45-55 and Retrain's at least
10 points away from it.

    python bench/bench_worlds.py [--worlds shapes-tiny:clip-tiny,...] [--seeds 42,87,21] [--delete 16] \
        [--home DIR] [--json-out FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.kept_runs import add_grid_options, grid_env, run_kept  # noqa: E402
from sessions.worlds_table import table_lines  # noqa: E402  (pure Python)

WORLDS = "shapes-tiny:clip-tiny,shapes-ve-tiny:blip-tiny,shapes-nlvr2-tiny:blip-tiny,graph-tiny:gcn-bert-tiny"


def run_cell(world: str, model: str, seed: int, delete: int, env: dict) -> dict:
    return run_kept(["run", "--method", "retrain", "--model", model, "--data", world, "--delete", str(delete),
                     "--seed", str(seed), "--device", "cpu", "--json"], env, "bench-worlds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", default=WORLDS, help="comma-separated WORLD:MODEL pairs")
    parser.add_argument("--delete", type=int, default=16)
    add_grid_options(parser)
    args = parser.parse_args()
    pairs = [pair.split(":") for pair in args.worlds.split(",")]
    if any(len(pair) != 2 or not all(pair) for pair in pairs):
        parser.error(f"--worlds {args.worlds}: give WORLD:MODEL pairs, comma-separated (e.g. shapes-tiny:clip-tiny)")
    env = grid_env(args.home, "mmul-worlds-bench-")
    cells = []
    for world, model in pairs:
        for seed in (int(s) for s in args.seeds.split(",")):
            document = run_cell(world, model, seed, args.delete, env)
            print(f"done {world} seed {seed}", file=sys.stderr)
            cells.append({"world": world, "model": model, "seed": seed,
                          "original_metrics": document["original_metrics"], "metrics": document["metrics"],
                          "task": document.get("task")})
    grid = {"worlds": cells, "delete": args.delete}
    print("\n".join(table_lines(grid)))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(grid, indent=1))


if __name__ == "__main__":
    main()
