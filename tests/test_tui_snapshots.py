"""SVG snapshots (pytest-textual-snapshot) at 120x36 and at 80x24 (the -compact layout): the sessions home, the
New-run form, the monitor of a single run, of a `--requests 3` run and of a PULSE run, Compare, the studies
list and a study's grid (issue 25's must-hold).

Deterministic: sessions are written into a tmp $MMUL_HOME with a fixed store clock and names (the
table shows names, dates in UTC), the monitor reads a fixed in-memory event list, Input cursors do
not blink, and no engine is started (a fake starter answers at once).

    .venv/bin/python -m pytest tests/test_tui_snapshots.py --snapshot-update   # after a deliberate UI change

The SVGs live in tests/__snapshots__/test_tui_snapshots/; on a mismatch the plugin writes
snapshot_report.html (side by side) in the current directory.
"""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pytest_textual_snapshot", reason="pip install -e '.[test]' (pytest-textual-snapshot)")

from conftest import count_ticks, wait_until  # noqa: E402
from sessions.source import ListSource  # noqa: E402
from sessions.store import SessionStore  # noqa: E402
from workbench.tui import create_app  # noqa: E402

SIZES = [pytest.param((120, 36), id="120x36"), pytest.param((80, 24), id="80x24")]
T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


class FixedClock:
    """Stands in for the ``time`` module inside sessions.store: ``time()`` is ``now``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str):
        return getattr(time, name)


@pytest.fixture
def snapshot_home(tmp_path, monkeypatch):
    """A tmp $MMUL_HOME, the UTC time zone, and a fixed clock for the store."""
    import sessions.store

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    clock = FixedClock(T0)
    monkeypatch.setattr(sessions.store, "time", clock)
    yield clock
    monkeypatch.undo()
    time.tzset()


def write_sessions(clock: FixedClock) -> None:
    store = SessionStore()
    runs = [
        ("ft-baseline", "ft", "finished", 0.71, 47.5, 95),
        ("md-seed0", "multidelete", "finished", 0.52, 46.25, 312),
        ("md-lr-high", "multidelete", "failed", None, None, 41),
        ("npo-try", "npo", "cancelled", None, None, 7),
        ("md-requests3", "multidelete", "finished", 0.55, 45.0, 150),  # a `--requests 3` run: "k=3" in its row
        ("pulse-ga", "ga", "finished", None, None, 60),                 # a PULSE run: "pulse k=3"
    ]
    extra = {"md-requests3": {"requests": 3},
             "pulse-ga": {"kind": "pulse", "requests": 3, "model": "llava-tiny", "data": "people-tiny"}}
    for index, (name, method, state, auc, r_mean, seconds) in enumerate(runs):
        clock.now = T0 + 3600 * index
        writer = store.create({"method": method, "model": "blip-tiny", "data": "shapes-tiny",
                               "deletion": {"strategy": "random", "n": 8, "seed": index}, "device": "cpu",
                               **extra.get(name, {})}, name=name)
        writer.emit("step", step=0, phase="unlearn", lr=1e-3, losses={"total": 1.0})
        clock.now += seconds
        summary = {"metrics": {"df_dr_auc": auc, "test": {"r_mean": r_mean}}} if auc is not None else None
        if name == "pulse-ga":
            summary = {"metrics": {"forget": {"image": 0.2, "text": 0.1}, "mmbench_retention": 97.0}}
        writer.finish(state, summary=summary, message=None if summary else f"{state} at step 1")


PULSE_BEFORE = {"forget": {"image": 0.9, "text": 0.8}, "retain": {"image": 0.85, "text": 0.8}, "mmbench": 0.6,
                "mmbench_retention": 100.0, "mia": {"loss_auc": 0.7, "mink_auc": 0.72}}


def pulse_after(request: int) -> dict:
    """A PULSE request's evaluation: forgetting deepens, retention slips a little each request."""
    return {"forget": {"image": 0.6 - request / 10, "text": 0.5 - request / 10},
            "retain": {"image": 0.84 - request / 100, "text": 0.79 - request / 100}, "mmbench": 0.6 - request / 100,
            "mmbench_retention": 100.0 - request, "mia": {"loss_auc": 0.6 - request / 50, "mink_auc": 0.6}}


def monitor_events(kind: str = "run") -> list[dict]:
    """A fixed run, ``kind``: "run" (120 steps, an evaluation every 30), "requests" (3 sequential requests of 40
    steps, each evaluated after it) or "pulse" (3 PULSE requests of 20 steps, its metrics); 3 loss terms, logs."""
    events: list[dict] = []

    def add(kind: str, **fields) -> None:
        events.append({"v": 1, "seq": len(events), "ts": T0 + len(events), "kind": kind, **fields})

    requests, per = {"run": ([None], 120), "requests": ([0, 1, 2], 40), "pulse": ([1, 2, 3], 20)}[kind]
    add("status", state="running")
    add("log", level="info", message="deletion set: 8 of 160 units")
    add("phase", name="unlearn")
    before = PULSE_BEFORE if kind == "pulse" else {"df_dr_auc": 0.91, "test": {"r_mean": 50.0}, "dr": {"r_mean": 60.0}}
    add("eval", step=0, phase="original", split="before", metrics=before)
    x = 0
    for r in requests:
        if r is not None:
            add("phase", name="unlearn", request=r)
        for _ in range(per):
            add("step", step=x, phase="unlearn", lr=1e-3 if kind != "pulse" else 2e-5, request=r,
                memory_mb=800.0 + (x % 5) * 3, losses={"total": 1.0 / (1 + x / 10), "md": 0.6 / (1 + x / 20),
                                                       "kl": 0.05 * (x % 9)})
            x += 1
            if kind == "run" and x % 30 == 0 and x < per:
                add("eval", step=x, phase="unlearn", split="step",
                    metrics={"df_dr_auc": 0.91 - x / 400, "test": {"r_mean": 50.0 - x / 100}})
        if r is not None:
            after = pulse_after(r) if kind == "pulse" else {"df_dr_auc": 0.6 - r / 20, "test": {"r_mean": 49.0 - r},
                                                            "dr": {"r_mean": 59.0 - r}}
            add("eval", step=x, phase="eval", split="after", request=r, metrics=after)
            add("log", level="info", message=f"request {r} done")
    if kind == "run":
        add("phase", name="eval")
        add("eval", step=x, phase="eval", split="after", metrics={"df_dr_auc": 0.52, "test": {"r_mean": 48.0},
                                                                  "dr": {"r_mean": 58.5}})
    add("artifact", name="checkpoint", path="runs/snapshot/checkpoint")
    add("status", state="finished")
    return events


def fake_engine() -> dict:
    return {"pid": 4242}


@pytest.mark.parametrize("size", SIZES)
def test_home_snapshot(snap_compare, snapshot_home, size):
    write_sessions(snapshot_home)
    app = create_app(engine_starter=fake_engine)

    async def ready(pilot) -> None:
        table = app.screen.query_one("#sessions")
        await wait_until(pilot, lambda: app.engine_state == "ready" and table.row_count == 6)

    assert snap_compare(app, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_new_run_snapshot(snap_compare, snapshot_home, size):
    app = create_app(engine_starter=fake_engine)

    async def ready(pilot) -> None:
        from textual.widgets import Input

        from screens.new_run import NewRunScreen

        await wait_until(pilot, lambda: app.engine_state == "ready")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen) and bool(app.screen.query("#p-lr")))
        preview = app.screen.query_one("#del-preview")
        await wait_until(pilot, lambda: "training units selected" in str(preview.render()), timeout=20)
        for box in app.screen.query(Input):
            box.cursor_blink = False

    assert snap_compare(app, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("kind", ["run", "requests", "pulse"])
@pytest.mark.parametrize("size", SIZES)
def test_monitor_snapshot(snap_compare, snapshot_home, size, kind):
    app = create_app(start_engine=False)

    async def ready(pilot) -> None:
        from screens.monitor import MonitorScreen
        from screens.widgets.plot import SeriesPlot
        from screens.widgets.tail_log import TailLog

        name = {"run": "md-seed0", "requests": "md-requests3", "pulse": "pulse-ga"}[kind]
        screen = MonitorScreen(ListSource(monitor_events(kind), session_id=name, live=True), device="cpu")
        ticks = count_ticks(screen)
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.source_done and not screen.backlog)
        await wait_until(pilot, lambda: all(p.renders for p in screen.query(SeriesPlot)
                                            if p.display and not p.has_class("-empty") and p.size.width))
        summary = screen.query_one("#mon-summary")
        await wait_until(pilot, lambda: summary.row_count == len(screen.model.summary_rows()) and tables_settled(screen))
        log = screen.query_one("#mon-log", TailLog)
        # the log follows its tail; wait for the scroll to land so the frame does not depend on timing
        for _ in range(2):  # twice, a tick apart: a scroll still under way shows up as a moved max
            await wait_until(pilot, lambda: log.scroll_y == log.max_scroll_y)
            seen = len(ticks)
            await wait_until(pilot, lambda: len(ticks) > seen)

    assert snap_compare(app, terminal_size=size, run_before=ready)


def tables_settled(screen) -> bool:
    """Every table on the screen has sized its columns to the rows it was given (DataTable does it when idle:
    a frame taken before shows a column cut to its header's width)."""
    from textual.widgets import DataTable

    tables = [table for table in screen.query(DataTable) if table.display]
    return bool(tables) and all(table.row_count and not table._require_update_dimensions for table in tables)


class CountingIds:
    """Stands in for ``secrets`` inside sessions.store: session id suffixes 0001, 0002, ..."""

    def __init__(self) -> None:
        self.count = 0

    def token_hex(self, _nbytes: int) -> str:
        self.count += 1
        return f"{self.count:04x}"


@pytest.mark.parametrize("size", SIZES)
def test_studies_list_snapshot(snap_compare, snapshot_home, size):
    import os

    from test_tui_studies import write_study

    record = write_study(SessionStore())
    os.utime(record.path, (T0, T0))  # the list's "updated" is the record file's time
    app = create_app(engine_starter=fake_engine)

    async def ready(pilot) -> None:
        from screens.studies import StudiesScreen

        await wait_until(pilot, lambda: app.engine_state == "ready")
        await app.push_screen(StudiesScreen(app.services))
        table = app.screen.query_one("#studies")
        await wait_until(pilot, lambda: table.row_count == 1)

    assert snap_compare(app, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_study_grid_snapshot(snap_compare, snapshot_home, size):
    from test_tui_studies import STUDY_ID, write_study

    write_study(SessionStore())
    app = create_app(engine_starter=fake_engine)

    async def ready(pilot) -> None:
        from screens.study_grid import StudyGridScreen

        await wait_until(pilot, lambda: app.engine_state == "ready")
        await app.push_screen(StudyGridScreen(STUDY_ID, app.services))
        await wait_until(pilot, lambda: bool(app.screen.rows), timeout=30)  # the first KS test loads scipy
        await pilot.press("right", "right", "right", "s")  # past method, n and rank: sorted by Df/Dr AUC

    assert snap_compare(app, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_compare_toggles_snapshot(snap_compare, snapshot_home, size, monkeypatch):
    import sessions.store
    from test_tui_compare import write_run

    monkeypatch.setattr(sessions.store, "secrets", CountingIds())
    store = SessionStore()
    ids = [write_run(store, "multidelete", 32), write_run(store, "retrain", 540, requests=2)]
    app = create_app(start_engine=False)

    async def ready(pilot) -> None:
        from textual.widgets import Input

        from screens.compare import CompareScreen

        screen = CompareScreen(ids, app.services)
        await app.push_screen(screen)
        await wait_until(pilot, lambda: bool(screen.runs))
        await pilot.press("x", "s", "l")  # by fraction of the run, smoothed, log scale
        screen.query_one(Input).cursor_blink = False
        from screens.widgets.plot import SeriesPlot

        # every plot has rendered the toggled series (its last render is of its current version)
        plots = [p for p in screen.query(SeriesPlot) if p.display and p.size.width]
        await wait_until(pilot, lambda: all(p._built_for and p._built_for[0] == p._version for p in plots))
        await wait_until(pilot, lambda: tables_settled(screen))

    assert snap_compare(app, terminal_size=size, run_before=ready)
