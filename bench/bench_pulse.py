"""PULSE grid on an LMM: methods x knowledge source x number of sequential requests, through the CLI.

Runs `mmul-workbench pulse ... --json` once per cell (a subprocess each, one at a time) and prints one table:
rows = method x knowledge (pretrained / finetuned people) x K (requests the same forget set is split into);
columns = forget / retain accuracy (image+question and text-only) and MMBench retention in percent of the
original's, all after the last request. The original model's accuracies (request 0) are printed once per
knowledge source. The original is trained once and cached under $MMUL_HOME (set --home to reuse it).

    python bench/bench_pulse.py [--methods ga,ga_klr,npo,multidelete] [--knowledge pretrained,finetuned] \
        [--requests 5,1] [--data people] [--model llava-tiny] [--home DIR] [--json-out FILE] [-- extra pulse args]

Everything after `--` is passed to every `pulse` call (for instance `-- --lr 1e-3 --epochs 5`).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("ga", "ga_klr", "npo", "multidelete")
KNOWLEDGE = ("pretrained", "finetuned")


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def run_cell(args, method: str, knowledge: str, requests: int, extra: list[str], env: dict) -> dict:
    command = [sys.executable, "-m", "workbench.cli", "pulse", "--method", method, "--data", args.data,
               "--model", args.model, "--requests", str(requests), "--knowledge", knowledge,
               "--device", args.device, "--json", *extra]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    document = json.loads(result.stdout)
    document["wall_seconds"] = round(wall, 1)
    return document


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:5.1f}"


def pair(entry: dict, group: str, mode: str):
    return (entry.get(group) or {}).get(mode)


def print_table(cells: list[dict]) -> None:
    originals = {}
    for cell in cells:
        originals.setdefault(cell["knowledge"], cell["document"]["original_metrics"])
    print("Original model (request 0), accuracy %:")
    print(f"  {'knowledge':<11} {'forget img':>10} {'forget txt':>10} {'retain img':>10} {'retain txt':>10} "
          f"{'other img':>10} {'other txt':>10} {'MMBench':>8}")
    for knowledge, original in originals.items():
        print(f"  {knowledge:<11} {pct(pair(original, 'forget', 'image')):>10} {pct(pair(original, 'forget', 'text')):>10} "
              f"{pct(pair(original, 'retain', 'image')):>10} {pct(pair(original, 'retain', 'text')):>10} "
              f"{pct(pair(original, 'other', 'image')):>10} {pct(pair(original, 'other', 'text')):>10} "
              f"{pct(original.get('mmbench')):>8}")
    print()
    print("After the last request, accuracy % (MMBench: retention in % of the original):")
    header = (f"| {'method':<11} | {'knowledge':<10} | {'K':>2} | {'forget img':>10} | {'forget txt':>10} | "
              f"{'retain img':>10} | {'retain txt':>10} | {'MMBench ret %':>13} | {'wall s':>6} |")
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for cell in cells:
        last = cell["document"]["requests"][-1]
        retention = last.get("mmbench_retention")
        print(f"| {cell['method']:<11} | {cell['knowledge']:<10} | {cell['requests']:>2} | "
              f"{pct(pair(last, 'forget', 'image')):>10} | {pct(pair(last, 'forget', 'text')):>10} | "
              f"{pct(pair(last, 'retain', 'image')):>10} | {pct(pair(last, 'retain', 'text')):>10} | "
              f"{'-' if retention is None else f'{retention:.1f}':>13} | {cell['document']['wall_seconds']:>6.0f} |")


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
    parser.add_argument("--data", default="people")
    parser.add_argument("--model", default="llava-tiny")
    parser.add_argument("--device", default="cpu")
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

    env = dict(os.environ)
    env["MMUL_HOME"] = args.home or env.get("MMUL_HOME") or tempfile.mkdtemp(prefix="mmul-pulse-bench-")
    env.setdefault("OMP_NUM_THREADS", "1")
    print(f"MMUL_HOME={env['MMUL_HOME']}", file=sys.stderr)
    started = time.perf_counter()
    cells = []
    for method in methods:
        for knowledge in knowledges:
            for k in ks:
                document = run_cell(args, method, knowledge, k, extra, env)
                cells.append({"method": method, "knowledge": knowledge, "requests": k, "document": document})
                print(f"done {method} {knowledge} K={k} in {document['wall_seconds']:.0f}s", file=sys.stderr)
    print_table(cells)
    print(f"\ntotal wall time {time.perf_counter() - started:.0f}s for {len(cells)} runs")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(cells, indent=1))


if __name__ == "__main__":
    main()
