"""Long request sequences: is the cost of a request the same at request 100 as at request 1?

Runs `mmul-workbench run --requests K --json` once (a subprocess, on a tiny world by default: ga on clip-tiny /
shapes-tiny, one unit a request, a full evaluation every 10 requests and the fixed sample between) and prints:
- seconds per request, each request's from its session's events: from the history row of the request before
  (request 0: the original's) to its own, so a request's time holds its training, its evaluation and its history
  row, and the first request carries none of the original's loading or evaluation;
- the mean of the last 10 requests over the mean of the first 10 (goal <= 1.10: the cost stays flat);
- the peak resident memory (the run's `cost.peak_memory_mb`, RSS on the CPU) at request 1 and at request K;
- the history's summary (sessions/history.py).

    python bench/bench_requests.py [--requests 100] [--method ga] [--model clip-tiny] [--data shapes-tiny] \
        [--eval-every 10] [--seed 7] [--home DIR] [-- extra run args]
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
sys.path.insert(0, str(ROOT))
from sessions.store import SessionStore  # noqa: E402  (pure Python)

WINDOW = 10


def request_seconds(events: list[dict]) -> list[float]:
    """Seconds of each request, between consecutive history rows (request 0: the original's row)."""
    stamps = {e["request"]: e["ts"] for e in events if e.get("kind") == "eval" and e.get("split") == "history"}
    return [stamps[i] - stamps[i - 1] for i in range(1, max(stamps) + 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--method", default="ga")
    parser.add_argument("--model", default="clip-tiny")
    parser.add_argument("--data", default="shapes-tiny")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--home", default=None, help="$MMUL_HOME (default: a temporary one; its cache is trained)")
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="bench-requests-"))
    env = dict(os.environ, MMUL_HOME=str(home), PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "workbench.cli", "run", "--method", args.method, "--model", args.model,
               "--data", args.data, "--delete", str(args.requests), "--requests", str(args.requests),
               "--eval-every-requests", str(args.eval_every), "--seed", str(args.seed), "--device", "cpu",
               "--epochs", "1", "--json", *args.extra]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    document = json.loads(result.stdout)
    seconds = request_seconds(SessionStore(home).events(document["session"]))
    first, last = seconds[:WINDOW], seconds[-WINDOW:]
    ratio = (sum(last) / len(last)) / (sum(first) / len(first))
    memory = [entry["cost"]["peak_memory_mb"] for entry in document["requests"]]
    print(f"{' '.join(command[3:-1])}")
    print(f"{len(seconds)} requests in {wall:.1f} s wall ({document['cost'].get('torch_threads')} torch threads); "
          f"seconds per request: mean {sum(seconds) / len(seconds):.2f}, first {WINDOW} {sum(first) / len(first):.2f}, "
          f"last {WINDOW} {sum(last) / len(last):.2f}")
    print(f"last {WINDOW} / first {WINDOW}: {ratio:.3f} (goal <= 1.10: {'met' if ratio <= 1.10 else 'MISSED'}; a "
          f"request of 0.1-0.2 s on a loaded machine moves this 10%: run it on a quiet one)")
    print(f"peak RSS: request 1 {memory[0]:.0f} MB, request {len(memory)} {memory[-1]:.0f} MB "
          f"(growth {memory[-1] - memory[0]:+.0f} MB)")
    kinds = [entry["evaluation"] for entry in document["requests"]]
    print(f"evaluations: {kinds.count('full')} full, {kinds.count('sample')} sample "
          f"({document['history']['sample']} units)")
    print("history: " + json.dumps(document["history"]["summary"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
