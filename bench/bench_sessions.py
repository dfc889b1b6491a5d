"""Session store costs, measured in one run and printed as figures.

1. Flush cost as a share of run time for a 10,000-step run (each step simulated as --step-ms of busy
   CPU work, one `step` event per step, an `eval` every 500 steps, the store's real 1 s flush cadence).
2. Flush cost does not grow with the run: median flush time with the same open-segment size early in
   a 200,000-event log and late in it.
3. Time to open and replay a 100,000-event session: read every event (10 sealed segments + the open
   one), build the curves and the final table, and draw the headless replay (plotext + rich).

    .venv/bin/python bench/bench_sessions.py [--step-ms 1.0] [--steps 10000] [--json-out F]
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figures import Figures, add_json_out  # noqa: E402  (beside this script)
from sessions.series import final_table, loss_series  # noqa: E402
from sessions.store import SessionStore  # noqa: E402

SPEC = {"method": "multidelete", "model": "clip-tiny", "data": "shapes-tiny",
        "deletion": {"strategy": "random", "n": 4, "seed": 42}}
LOSSES = ("modality_decoupling", "multimodal_knowledge_retention", "unimodal_knowledge_retention")


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _step(writer, i: int) -> None:
    x = 1.0 / (i + 1)
    writer.emit("step", step=i, phase="unlearn", lr=1e-4,
                losses={"total": 3 * x, LOSSES[0]: x, LOSSES[1]: x * 0.9, LOSSES[2]: x * 1.1})


def bench_run(root: Path, steps: int, step_ms: float, figures: Figures) -> None:
    store = SessionStore(root)
    started = time.perf_counter()
    writer = store.create(SPEC)
    writer.emit("phase", name="unlearn")
    in_emit = 0.0
    for i in range(steps):
        _spin(step_ms / 1000)
        t = time.perf_counter()
        _step(writer, i)
        if i % 500 == 499:
            writer.emit("eval", step=i, phase="unlearn", split="step", metrics={"df_dr_auc": 0.5 + x_of(i)})
        in_emit += time.perf_counter() - t
    writer.finish("finished", summary={"metrics": {"df_dr_auc": 0.5}})
    wall = time.perf_counter() - started
    st = writer.stats
    figures.add(f"flush time as a share of a {steps:,}-step run", 100 * st["flush_seconds"] / wall, "%",
                detail=f"{step_ms:g} ms simulated compute a step; {st['flushes']} flushes, the longest "
                       f"{1000 * st['flush_max']:.2f} ms")
    print(f"[1] {steps:,}-step run, {step_ms:g} ms simulated compute per step: wall {wall:.2f} s")
    print(f"    flushes {st['flushes']} (incl. {st['seals']} segment seals), total flush time "
          f"{st['flush_seconds'] * 1000:.1f} ms = {100 * st['flush_seconds'] / wall:.3f}% of run time; "
          f"mean {1000 * st['flush_seconds'] / max(1, st['flushes']):.2f} ms, max {1000 * st['flush_max']:.2f} ms")
    print(f"    time inside emit() (buffering + the flushes it triggers) {in_emit * 1000:.0f} ms = "
          f"{100 * in_emit / wall:.2f}% of run time ({in_emit / steps * 1e6:.1f} us per step); the "
          f"background flusher's share is included in the flush figure above")


def x_of(i: int) -> float:
    return 0.4 / (1 + i / 1000)


def bench_constant_flush(root: Path, figures: Figures, events: int = 200_000, probe: int = 5_000) -> None:
    """Flush with the open segment at `probe` events, in the first segment and in the last one."""
    store = SessionStore(root, flush_interval=3600)  # flush only when we say so
    writer = store.create(SPEC)
    size = store.segment_size
    samples: dict[int, list[float]] = {}
    for i in range(events):
        _step(writer, i)
        seq = writer.last_seq
        if seq % size >= probe and seq % size < probe + 40:
            t = time.perf_counter()
            writer._pending += 1  # force a real write even when nothing new arrived
            writer.flush()
            samples.setdefault(seq // size, []).append(time.perf_counter() - t)
    writer.finish("finished")
    first, last = min(samples), max(samples)
    a, b = statistics.median(samples[first]), statistics.median(samples[last])
    figures.add("one flush late in the log against early", b / a, "x",
                detail=f"{probe:,} events in the open segment at event ~{first * size + probe:,} ({a * 1000:.2f} ms) "
                       f"and ~{last * size + probe:,} ({b * 1000:.2f} ms) of {events:,}")
    print(f"[2] flush with {probe:,} events in the open segment: at event ~{first * size + probe:,} "
          f"{a * 1000:.2f} ms, at event ~{last * size + probe:,} {b * 1000:.2f} ms (ratio {b / a:.2f})")


def bench_replay(root: Path, figures: Figures, events: int = 100_000) -> None:
    store = SessionStore(root, flush_interval=3600)
    writer = store.create(SPEC)
    writer.emit("eval", step=0, phase="unlearn", split="before", metrics={"df_dr_auc": 0.9, "test.r_mean": 52.0})
    i = 0
    while writer.last_seq < events - 3:
        _step(writer, i)
        if i % 1000 == 999:
            writer.emit("eval", step=i, phase="unlearn", split="step", metrics={"df_dr_auc": 0.5 + x_of(i)})
        i += 1
    writer.emit("eval", step=i, phase="eval", split="after", metrics={"df_dr_auc": 0.5, "test.r_mean": 50.0})
    writer.finish("finished")
    sid = writer.session_id
    n = writer.last_seq + 1

    t0 = time.perf_counter()
    meta = store.get(sid)
    evs = store.events(sid)
    t1 = time.perf_counter()
    curves = loss_series(evs)
    final_table(evs)
    t2 = time.perf_counter()
    os.environ["MMUL_HOME"] = str(root)
    from workbench.cli_sessions import replay_headless

    buf = io.StringIO()
    t3 = time.perf_counter()
    replay_headless(sid, width=100, out=buf)
    t4 = time.perf_counter()
    assert len(evs) == n and meta["state"] == "finished" and len(curves["total"][0]) == i
    figures.add(f"open + read a {n:,}-event session", t1 - t0, "s", detail=f"{meta['sealed']} sealed segments")
    figures.add("its curves + final table", t2 - t1, "s")
    figures.add("its whole headless replay (read + plotext + rich)", t4 - t3, "s")
    print(f"[3] {n:,}-event session ({meta['sealed']} sealed segments): open + read every event "
          f"{(t1 - t0) * 1000:.0f} ms, curves + final table {(t2 - t1) * 1000:.0f} ms, whole headless replay "
          f"(read + plotext + rich) {(t4 - t3) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--step-ms", type=float, default=1.0)
    add_json_out(parser)
    args = parser.parse_args()
    figures = Figures("sessions", f"the session store on a temporary folder, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="mmul-bench-") as tmp:
        root = Path(tmp)
        bench_run(root / "a", args.steps, args.step_ms, figures)
        bench_constant_flush(root / "b", figures)
        bench_replay(root / "c", figures)
    figures.write(args.json_out)


if __name__ == "__main__":
    main()
