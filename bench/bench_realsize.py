"""Every real-size smoke step (bench/realsize.py: CLIP ViT-B/32, BLIP-base ITM at 384 px, Qwen2-VL-2B and
LLaVA-1.5-7B shapes with 2 decoder layers; one MultiDelete and one GA step each), each in its own process so its
peak resident memory is its own: seconds to build, seconds for the step, peak resident growth, the plan's total
(`mmul-workbench plan`) and their ratio. `python bench/bench_realsize.py [NAME ...] [--threads N] [--json-out F]`."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from figures import Figures, add_json_out  # noqa: E402
from realsize import METHODS, SIZES  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*",  # no `choices`: Python 3.11 checks the empty list against them
                        metavar="NAME", help=f"configs to step: {', '.join(SIZES)} (default: all)")
    parser.add_argument("--threads", type=int, default=None)
    add_json_out(parser)
    args = parser.parse_args()
    for name in set(args.names) - set(SIZES):
        parser.error(f"argument NAME: invalid choice: {name!r} (choose from {', '.join(SIZES)})")
    figures = Figures("realsize", "real-size configs with random weights, one step each in its own process, fp32 on the "
                                  f"CPU ({os.cpu_count()} cores); peak resident growth against the memory plan's total")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    failed = 0
    print(f"{'config':<10} {'method':<12} {'build s':>8} {'step s':>7} {'peak GiB':>8} {'plan GiB':>8} {'plan/peak':>9}")
    for name in args.names or list(SIZES):
        for method in METHODS:
            command = [sys.executable, str(ROOT / "bench" / "realsize.py"), name, method]
            out = subprocess.run(command + ([str(args.threads)] if args.threads else []), capture_output=True,
                                 text=True, env=env, cwd=ROOT)
            if out.returncode != 0:
                print(f"{name:<10} {method:<12} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
                failed += 1
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{name:<10} {method:<12} {r['build_seconds']:>8.1f} {r['step_seconds']:>7.1f} "
                  f"{r['peak_rss_growth_bytes'] / 2**30:>8.2f} {r['plan_total_bytes'] / 2**30:>8.2f} "
                  f"{r['plan_over_measured']:>9.2f}", flush=True)
            print("  " + json.dumps(r), file=sys.stderr, flush=True)
            figures.document["torch_threads"] = r["torch_threads"]
            figures.add(f"{name} {'GA' if method == 'neggrad' else 'MultiDelete'} ({r['update']})",
                        r["peak_rss_growth_bytes"] / 2**30, "GiB",
                        detail=f"planned {r['plan_total_bytes'] / 2**30:.2f} GiB, measured / planned "
                               f"{r['peak_rss_growth_bytes'] / r['plan_total_bytes']:.2f}; step {r['step_seconds']:.1f} s")
    figures.write(args.json_out)
    if failed:
        raise SystemExit(f"{failed} step(s) failed")


if __name__ == "__main__":
    main()
