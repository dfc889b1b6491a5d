"""PULSE grid on an LMM: methods x knowledge source x number of sequential requests x seeds, through the CLI.

Runs `mmul-workbench pulse ... --json` once per cell (a subprocess each; `--jobs N` at a time) and prints one
table: rows = method x knowledge (pretrained / finetuned people) x K (requests the same forget set is split
into); columns = forget / retain accuracy (image+question and text-only) and MMBench retention in percent of
the original's, all after the last request, as the mean over the seeds ± their sample standard deviation. The
original model's accuracies (request 0) are printed per knowledge source and seed. Each seed's original is
trained once and cached under $MMUL_HOME (set --home to reuse it).

    python bench/bench_pulse.py [--methods ga,npo,...] [--knowledge pretrained,finetuned] [--requests 5,1] \
        [--seeds 42,87] [--data people] [--model llava-tiny] [--jobs 1] [--home DIR] [--json-out FILE] \
        [-- extra pulse args]

Methods default to every method `pulse` takes (engine.spec.PULSE_METHODS). Everything after `--` is passed
to every `pulse` call (for instance `-- --lr 1e-3 --epochs 5`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from engine.spec import DEFAULT_SEED, PULSE_METHODS  # noqa: E402  (torch-free catalogue)
from sessions.pulse_grid import grid_lines  # noqa: E402

METHODS = PULSE_METHODS
KNOWLEDGE = ("pretrained", "finetuned")


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def run_cell(args, method: str, knowledge: str, requests: int, seed: int, extra: list[str], env: dict) -> dict:
    """One `pulse --json` run; its document is kept under $MMUL_HOME/bench-pulse/ so that a re-run of the same
    grid (after a failure or an interruption) runs only the cells it has no document for."""
    command = [sys.executable, "-m", "workbench.cli", "pulse", "--method", method, "--data", args.data,
               "--model", args.model, "--requests", str(requests), "--knowledge", knowledge, "--seed", str(seed),
               "--device", args.device, "--json", *extra]
    kept = Path(env["MMUL_HOME"]) / "bench-pulse" / (hashlib.sha1(" ".join(command[3:]).encode()).hexdigest()[:16] + ".json")
    if kept.exists():
        return json.loads(kept.read_text())
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    try:
        document = json.loads(result.stdout) if result.returncode == 0 else None
    except json.JSONDecodeError:
        document = None
    if document is None:
        raise SystemExit(f"{' '.join(command)} failed (exit {result.returncode}; stdout {result.stdout[-300:]!r}):\n"
                         f"{result.stderr[-2000:]}")
    document["wall_seconds"] = round(wall, 1)
    kept.parent.mkdir(parents=True, exist_ok=True)
    staging = kept.with_suffix(".tmp")
    staging.write_text(json.dumps(document))
    os.replace(staging, kept)
    return document


def print_table(cells: list[dict]) -> None:
    print("\n".join(grid_lines(cells)))


def main() -> None:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    parser.add_argument("--knowledge", default=",".join(KNOWLEDGE), help="pretrained, finetuned or both")
    parser.add_argument("--requests", default="5,1", help="comma-separated K values (default 5,1)")
    parser.add_argument("--seeds", default=str(DEFAULT_SEED), help=f"comma-separated seeds (default {DEFAULT_SEED})")
    parser.add_argument("--data", default="people")
    parser.add_argument("--model", default="llava-tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="cells run at once (one CPU thread each)")
    parser.add_argument("--home", default=None, help="MMUL_HOME for the runs (default: $MMUL_HOME or a temp dir)")
    parser.add_argument("--json-out", default=None, help="also write every cell's JSON document here")
    args = parser.parse_args(argv)
    methods, knowledges = _list(args.methods), _list(args.knowledge)
    for method in methods:
        if method not in METHODS:
            parser.error(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    for knowledge in knowledges:
        if knowledge not in KNOWLEDGE:
            parser.error(f"unknown knowledge {knowledge!r}; choose from {', '.join(KNOWLEDGE)}")
    ks = [int(k) for k in _list(args.requests)]
    seeds = [int(seed) for seed in _list(args.seeds)]

    env = dict(os.environ)
    env["MMUL_HOME"] = args.home or env.get("MMUL_HOME") or tempfile.mkdtemp(prefix="mmul-pulse-bench-")
    env.setdefault("OMP_NUM_THREADS", "1")
    print(f"MMUL_HOME={env['MMUL_HOME']}", file=sys.stderr)
    started = time.perf_counter()
    plan = [(method, knowledge, k, seed)
            for method in methods for knowledge in knowledges for k in ks for seed in seeds]

    def run(cell):
        method, knowledge, k, seed = cell
        document = run_cell(args, method, knowledge, k, seed, extra, env)
        print(f"done {method} {knowledge} K={k} seed {seed} in {document['wall_seconds']:.0f}s", file=sys.stderr)
        return {"method": method, "knowledge": knowledge, "requests": k, "seed": seed, "document": document}

    # one cell per seed first: it trains (and caches) that seed's original, which the others then reuse
    first = {cell[3]: cell for cell in reversed(plan)}
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = dict(zip(first.values(), pool.map(run, first.values())))
        done.update(zip([c for c in plan if c not in done], pool.map(run, [c for c in plan if c not in done])))
    cells = [done[cell] for cell in plan]
    print_table(cells)
    print(f"\ntotal wall time {time.perf_counter() - started:.0f}s for {len(cells)} runs")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(cells, indent=1))


if __name__ == "__main__":
    main()
