"""Writes docs/pages/img/monitor.svg, the README's screenshot of the TUI, with Textual's own screenshot.

The app is built and driven as tests/test_tui_snapshots.py does (`create_app`, `run_test()`, no engine): the
monitor opened on a fixed event list (a MultiDelete run: three loss terms, step evaluations, three sequential
requests), so the picture is the same on every machine. Torch-free.

    .venv/bin/python docs/screenshot.py
"""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "pages" / "img" / "monitor.svg"
SIZE = (120, 36)


def events() -> list[dict]:
    """A MultiDelete run on shapes-tiny: its loss terms over 240 steps, evaluations, 3 requests."""
    out: list[dict] = []

    def add(kind: str, **fields) -> None:
        out.append({"v": 1, "seq": len(out), "ts": 1_767_225_600.0 + len(out), "kind": kind, **fields})

    add("status", state="running")
    add("device", device="cpu")
    add("log", level="info", message="deletion set: 30 of 160 units, 3 requests of 10")
    add("log", level="info", message="original: cached (clip-tiny on shapes-tiny, seed 42)")
    add("eval", step=0, phase="original", split="before",
        metrics={"df_dr_auc": 0.50, "test": {"r_mean": 54.6}, "df": {"r_mean": 66.9}, "mia": {"auc": 0.62}})
    add("phase", name="unlearn")
    for request in range(3):
        add("log", level="info", message=f"request {request + 1} of 3: 10 units")
        for i in range(80):
            step = request * 80 + i
            add("step", step=step, phase="unlearn", request=request, lr=5e-4 * (1 + (79 - i) / 80) / 2,
                losses={"total": 0.9 / (1 + i / 12) + 0.05 * request, "md": 0.6 / (1 + i / 20),
                        "mkr": 0.02 + 0.01 * ((i * 7) % 5), "ukr": 0.03 + 0.01 * ((i * 3) % 4)})
            if i and i % 20 == 0:
                add("eval", step=step, phase="unlearn", split="step", request=request,
                    metrics={"df_dr_auc": 0.5 + 0.06 * request + i / 800, "test": {"r_mean": 54.0 - request}})
        add("eval", step=request * 80 + 79, phase="eval", split="after", request=request,
            metrics={"df_dr_auc": 0.58 + 0.06 * request, "test": {"r_mean": 53.8 - 0.6 * request},
                     "df": {"r_mean": 60.0 - 5 * request}})
    add("phase", name="eval")
    add("eval", step=239, phase="eval", split="after",
        metrics={"df_dr_auc": 0.70, "test": {"r_mean": 52.1}, "df": {"r_mean": 45.0}, "mia": {"auc": 0.37}})
    add("log", level="info", message="finished: Df/Dr AUC 70.0, test r_mean 52.1")
    add("status", state="finished")
    return out


async def shoot(out: Path = OUT) -> None:
    from screens.monitor import MonitorScreen
    from sessions.source import ListSource
    from workbench.tui import create_app

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = MonitorScreen(ListSource(events(), session_id="20261201-101500-ab12", live=True), device="cpu")
        await app.push_screen(screen)
        while not (screen.source_done and not screen.backlog):  # until the monitor has taken every event
            await pilot.pause()
        await app.workers.wait_for_complete()   # the verdict and plots drawn in workers
        await pilot.pause()
        out.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=out.name, path=str(out.parent))


def picture() -> str:
    """The screenshot as it comes out now (in a home and folder of its own)."""
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as home:
        os.environ["MMUL_HOME"] = home
        out = Path(home) / "monitor.svg"
        asyncio.run(shoot(out))
        return out.read_text()


def main() -> None:
    """Write the screenshot; with --check, only say whether the one in the docs is the app's as it is now."""
    now = picture()
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != now:
            sys.exit(f"{OUT.relative_to(ROOT)} is stale: run docs/screenshot.py")
        return
    OUT.write_text(now)
    print(OUT.relative_to(ROOT))


if __name__ == "__main__":
    main()
