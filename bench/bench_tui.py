"""TUI speed: plot redraw time with a 100,000-point loss series, and cold start to first frame.

    .venv/bin/python bench/bench_tui.py [--points 100000] [--size 120x40] [--json-out F]

Prints:
- the monitor's plot redraw (downsample to ~2 points per column + plotext build) with 3 loss terms
  of N points each, median of repeated redraws, and the redraws per second that allows (target >= 4);
- the same plot drawn with every point (no downsampling) at 10,000 points, for the ratio;
- a full monitor tick (apply + redraw + the compositor's frame) measured through a headless pilot;
- cold start: a fresh process from exec to the first painted frame of the sessions home (no engine);
- a Tab on the New-run form (the CPU of one focus move, median), with the workbench's footer
  (screens/widgets/footer.py) and with Textual's own, in the same run, and their ratio.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import Figures, add_json_out  # noqa: E402  (beside this script)


def events(n: int) -> list[dict]:
    out = [{"v": 1, "seq": 0, "ts": 0.0, "kind": "status", "state": "running"}]
    for i in range(n):
        out.append({"v": 1, "seq": i + 1, "ts": float(i), "kind": "step", "step": i, "phase": "unlearn", "lr": 1e-4,
                    "losses": {"total": 1.0 / (1 + i / 1000) + (i % 97) / 500, "md": 0.5 + (i % 13) / 100,
                               "kl": (i % 31) / 50}})
    return out


async def plot_bench(points: int, size: tuple[int, int]) -> dict:
    from screens.monitor import MonitorScreen
    from sessions.source import ListSource
    from workbench.tui import create_app
    from screens.widgets.plot import SeriesPlot

    os.environ["MMUL_HOME"] = tempfile.mkdtemp(prefix="mmul-bench-")
    app = create_app(start_engine=False)
    result: dict = {}
    async with app.run_test(size=size) as pilot:
        screen = MonitorScreen(ListSource(events(points), live=True))
        await app.push_screen(screen)
        deadline = time.monotonic() + 60
        while (not screen.source_done or screen.backlog) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        plot = screen.query_one("#panel-loss", SeriesPlot)
        times = []
        for _ in range(15):
            plot.mark_dirty()
            started = time.perf_counter()
            plot.render()
            times.append(time.perf_counter() - started)
        result["plot_redraw_s"] = statistics.median(times)
        result["points_stored"] = sum(len(s) for s in screen.model.losses.values())
        result["points_drawn"] = plot.points_drawn
        result["plot_width"] = plot.size.width

        # every point, no downsampling (10k: the full 100k takes seconds per frame)
        import screens.widgets.plot as widgets

        keep = widgets.POINTS_PER_COLUMN
        raw_n = 10_000

        saved = plot.series
        plot.series = {k: _head(v, raw_n) for k, v in saved.items()}
        widgets.POINTS_PER_COLUMN = 10**9
        plot.mark_dirty()
        started = time.perf_counter()
        plot.render()
        result["raw_10k_redraw_s"] = time.perf_counter() - started
        widgets.POINTS_PER_COLUMN = keep
        plot.mark_dirty()
        started = time.perf_counter()
        plot.render()
        result["down_10k_redraw_s"] = time.perf_counter() - started
        plot.series = saved

        # a full tick through the app: new events arrive, timer applies + redraws, compositor paints
        ticks = []
        for i in range(8):
            screen.backlog.extend(events(50)[1:])
            before = plot.renders
            started = time.perf_counter()
            screen.tick()
            while plot.renders == before and time.perf_counter() - started < 5:
                await pilot.pause(0)
            ticks.append(time.perf_counter() - started)
        result["tick_to_frame_s"] = statistics.median(ticks)
    return result


def _head(series, n):
    from screens.widgets.plot import Series

    out = Series()
    out.xs.extend(series.xs[:n])
    out.ys.extend(series.ys[:n])
    return out


COLD = r"""
import sys, time
sys.path.insert(0, {root!r})
from textual import events
from workbench.tui import create_app
app = create_app(start_engine=False)
def first_frame():
    print(f"FIRST={{time.time():.6f}}", flush=True)
    app.exit()
app.call_after_refresh(lambda: app.call_after_refresh(first_frame))
app.run(headless=True, size=(100, 30))
"""


def cold_start(repeats: int = 3) -> float:
    env = dict(os.environ, MMUL_HOME=tempfile.mkdtemp(prefix="mmul-bench-"))
    samples = []
    for _ in range(repeats):
        started = time.time()
        proc = subprocess.run([sys.executable, "-c", COLD.format(root=str(ROOT))], capture_output=True, text=True,
                              env=env, timeout=60)
        line = next((l for l in proc.stdout.splitlines() if l.startswith("FIRST=")), None)
        if line is None:
            raise SystemExit(f"cold start run failed: {proc.stderr[-500:]}")
        samples.append(float(line[6:]) - started)
    return statistics.median(samples)


async def tab_cpu(footer_class, size: tuple[int, int], tabs: int = 20) -> float:
    """Median CPU seconds of one Tab between the New-run form's fields, its footer ``footer_class``."""
    from textual.widgets import Input

    import screens.new_run as new_run
    from workbench.tui import create_app

    saved, new_run.Footer = new_run.Footer, footer_class
    try:
        app = create_app(start_engine=False)
        async with app.run_test(size=size) as pilot:
            await pilot.press("ctrl+n")
            deadline = time.monotonic() + 30
            while not isinstance(app.focused, Input):
                if time.monotonic() > deadline:
                    raise SystemExit("the New-run form never focused a field in 30 s")
                await pilot.pause(0.05)
            samples = []
            for _ in range(tabs):
                started = time.process_time()
                await pilot.press("tab")
                await pilot.pause()
                samples.append(time.process_time() - started)
        return statistics.median(samples)
    finally:
        new_run.Footer = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--size", default="120x40")
    add_json_out(parser)
    args = parser.parse_args()
    width, _, height = args.size.partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) >= 40 and int(height) >= 12):
        parser.error(f"--size must be WIDTHxHEIGHT, at least 40x12, e.g. 120x40 (got {args.size!r})")
    if args.points < 1:
        parser.error(f"--points must be at least 1 (got {args.points})")
    w, h = int(width), int(height)
    r = asyncio.run(plot_bench(args.points, (w, h)))
    figures = Figures("tui", f"terminal {w}x{h}, loss plot {r['plot_width']} columns, 3 terms x {args.points:,} points "
                             f"({r['points_stored']:,} stored, {r['points_drawn']} drawn)")
    print(figures.document["setting"])
    figures.add(f"plot redraw at {args.points:,} points", r["plot_redraw_s"], "s")
    figures.add("redraws a second", 1 / r["plot_redraw_s"], "/s", goal=">= 4")
    print(f"plot redraw at {args.points:,} points: {r['plot_redraw_s'] * 1000:.1f} ms "
          f"-> {1 / r['plot_redraw_s']:.0f} redraws/s possible (target >= 4)")
    figures.add("10,000 points drawn each against downsampled", r["raw_10k_redraw_s"] / r["down_10k_redraw_s"], "x",
                detail=f"{r['raw_10k_redraw_s'] * 1000:.0f} ms against {r['down_10k_redraw_s'] * 1000:.1f} ms")
    print(f"10,000 points: every point {r['raw_10k_redraw_s'] * 1000:.0f} ms, downsampled "
          f"{r['down_10k_redraw_s'] * 1000:.1f} ms (ratio {r['raw_10k_redraw_s'] / r['down_10k_redraw_s']:.0f}x)")
    figures.add(f"monitor tick to painted frame at {args.points:,} points", r["tick_to_frame_s"], "s")
    print(f"monitor tick to painted frame at {args.points:,} points: {r['tick_to_frame_s'] * 1000:.1f} ms")
    started = figures.add("cold start to the first frame", cold_start(), "s",
                          detail="a new process on a sessions home, median of 3")
    print(f"cold start to first frame (new process, sessions home): {started:.2f} s")
    from textual.widgets import Footer as TextualFooter

    from screens.widgets.footer import Footer

    ours, textuals = (asyncio.run(tab_cpu(footer, (w, h))) for footer in (Footer, TextualFooter))
    figures.add("Tab on the New-run form, CPU", ours, "s", detail=f"{textuals * 1000:.0f} ms with Textual's own footer")
    print(f"Tab on the New-run form, CPU: {ours * 1000:.0f} ms with the workbench's footer, {textuals * 1000:.0f} ms "
          f"with Textual's (ratio {textuals / ours:.2f}x)")
    figures.write(args.json_out)

if __name__ == "__main__":
    main()
