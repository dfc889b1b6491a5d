"""Pilot tests of the Textual TUI: home, new run, monitor (live and replay), compare, help, and
the torch-free check. No engine is started: tests inject fakes through ``create_app``."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import count_ticks, form_ready, param_shown, wait_until
from sessions.store import SessionStore
from sessions.source import ListSource
from workbench.tui import create_app
from screens.widgets.plot import Series, SeriesPlot
from sessions.series import downsample

ROOT = Path(__file__).resolve().parent.parent
SIZE = (100, 30)


# --------------------------------------------------------------------------------------------------
# helpers


def make_events(steps: int, *, requests: int = 0, logs: int = 1) -> list[dict]:
    events, seq = [], 0

    def add(kind, **fields):
        nonlocal seq
        events.append({"v": 1, "seq": seq, "ts": 1000.0 + seq, "kind": kind, **fields})
        seq += 1

    add("status", state="running")
    add("phase", name="unlearn")
    add("eval", step=0, phase="unlearn", split="before", metrics={"df_dr_auc": 0.9, "test": {"r_mean": 50.0}})
    for i in range(steps):
        add("step", step=i, phase="unlearn", lr=1e-3, losses={"total": 1.0 / (i + 1), "md": 0.5, "kl": 0.1 * (i % 7)})
        if i and i % 50 == 0:
            add("eval", step=i, phase="unlearn", split="step", metrics={"df_dr_auc": 0.9 - i / (steps * 3)})
    for r in range(requests):
        add("eval", step=steps, phase="eval", split="after", request=r, metrics={"forget": {"image": 0.5 - r / 10}})
    for i in range(logs):
        add("log", level="info", message=f"log line {i}")
    add("eval", step=steps, phase="eval", split="after", metrics={"df_dr_auc": 0.5, "test": {"r_mean": 48.0}})
    add("status", state="finished")
    return events


def write_session(store: SessionStore, method: str, steps: int = 20, auc: float = 0.5) -> str:
    writer = store.create({"method": method, "model": "blip-tiny", "data": "shapes-tiny",
                           "deletion": {"strategy": "random", "n": 8, "seed": 0}, "device": "cpu"})
    writer.emit("eval", step=0, phase="unlearn", split="before", metrics={"df_dr_auc": 0.9})
    for i in range(steps):
        writer.emit("step", step=i, phase="unlearn", lr=1e-3, losses={"total": 1.0 / (i + 1)})
    writer.emit("eval", step=steps, phase="eval", split="after", metrics={"df_dr_auc": auc, "test": {"r_mean": 40.0}})
    writer.finish("finished", summary={"metrics": {"df_dr_auc": auc, "test": {"r_mean": 40.0}}})
    return writer.session_id


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    return tmp_path


# --------------------------------------------------------------------------------------------------
# downsampling


def test_downsample_keeps_points_bounded_and_spikes():
    series = Series()
    for i in range(100_000):
        series.append(i, 1.0 if i != 73_123 else 50.0)
    xs, ys = downsample(series.xs, series.ys, 200)
    assert len(xs) <= 202 and len(xs) == len(ys)
    assert max(ys) == 50.0 and xs == sorted(xs)
    assert len(series) == 100_000  # the stored data stays whole
    small_x, small_y = downsample([0, 1, 2], [3, 4, 5], 200)
    assert small_x == [0, 1, 2] and small_y == [3, 4, 5]
    nan = Series()                  # a run that failed on a NaN loss still draws
    for i in range(1000):
        nan.append(i, float("nan") if i % 100 == 0 else float(i))
    xs, ys = downsample(nan.xs, nan.ys, 20)
    assert 0 < len(xs) <= 22 and xs == sorted(xs)


async def test_monitor_plot_points_bounded_at_100k(tmp_home):
    from screens.monitor import MonitorScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = MonitorScreen(ListSource(make_events(100_000, logs=0), live=True))
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.source_done and not screen.backlog, timeout=10)
        plot = screen.query_one("#panel-loss", SeriesPlot)
        await wait_until(pilot, lambda: plot.points_drawn > 0)  # the redraw timer has drawn the whole data
        assert len(screen.model.losses["total"]) == 100_000
        width = plot.size.width
        assert 0 < plot.points_drawn <= 3 * (2 * width + 2)  # three terms, ~2 points per column each


# --------------------------------------------------------------------------------------------------
# home


async def test_home_lists_filters_compares_and_deletes(tmp_home):
    store = SessionStore()
    ft = write_session(store, "ft", auc=0.7)
    md = write_session(store, "multidelete", auc=0.5)
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        from screens.home import HomeScreen

        home = app.screen
        assert isinstance(home, HomeScreen)
        table = home.query_one("#sessions")
        await wait_until(pilot, lambda: table.row_count == 2)
        # filter
        await pilot.press("slash", *"multi")
        await wait_until(pilot, lambda: table.row_count == 1)
        assert home.shown[0]["id"] == md
        await pilot.press("escape")
        await wait_until(pilot, lambda: table.row_count == 2)
        # sort cycles
        await pilot.press("s")
        assert home.sort_key == "status"
        # mark both, compare
        await pilot.press("space", "down", "space")
        assert home.marked == {ft, md}
        # a filter hides a marked session: the hint says so, and c still compares both
        await pilot.press("slash", *"multi")
        hint = home.query_one("#home-hint")
        await wait_until(pilot, lambda: "marked: 2, 1 filtered out (c compares all)" in str(hint.render()))
        await pilot.press("escape")
        await wait_until(pilot, lambda: "marked: 2 (c compares)" in str(hint.render()))
        await pilot.press("c")
        from screens.compare import CompareScreen

        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.runs)
        compare = app.screen
        cmp_table = compare.query_one("#cmp-table")
        assert cmp_table.row_count >= 2 and len(cmp_table.columns) == 3
        assert len(compare.query_one("#cmp-loss", SeriesPlot).series) == 2
        await pilot.press("escape")
        # open -> replay monitor
        await pilot.press("enter")
        from screens.monitor import MonitorScreen

        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen))
        await pilot.press("e")
        await wait_until(pilot, lambda: app.screen.model.x == 20)
        await pilot.press("escape")
        # delete the marked sessions with confirmation: "n" keeps them, "y" removes them
        from screens.widgets.confirm import ConfirmScreen

        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert str(app.screen.query_one("#question").render()).startswith("Delete the 2 marked sessions")
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert len(store.list()) == 2
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: len(store.list()) == 0)
        await wait_until(pilot, lambda: table.row_count == 0)


async def test_home_export_writes_json_and_csv(tmp_home, tmp_path, monkeypatch):
    store = SessionStore()
    sid = write_session(store, "ft")
    monkeypatch.chdir(tmp_path)
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.screen.query_one("#sessions").row_count == 1)
        await pilot.press("x")
        out = tmp_path / "mmul-exports"
        await wait_until(pilot, lambda: (out / f"{sid}.csv").exists())
        doc = json.loads((out / f"{sid}.json").read_text())
        assert doc["id"] == sid and len(doc["events"]) > 20


async def test_home_export_takes_the_marked_sessions_and_delete_refuses_a_live_one_before_asking(tmp_home, tmp_path,
                                                                                             monkeypatch):
    """`x` exported only the highlighted session while three were marked; `d` on a running session asked to delete
    it, and after a yes said it could not, pointing to a command that does not exist."""
    from screens.widgets.confirm import ConfirmScreen

    store = SessionStore()
    first, second = write_session(store, "ft"), write_session(store, "npo")
    running = store.create({"method": "ga", "model": "blip-tiny", "data": "shapes-tiny", "device": "cpu"})
    monkeypatch.chdir(tmp_path)
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one("#sessions")
        await wait_until(pilot, lambda: table.row_count == 3)
        await pilot.press("d")   # the newest, highlighted: the running one
        await wait_until(pilot, lambda: any(f"cancel it first (ctrl+k in its monitor, `mmul-workbench engine cancel "
                                            f"{running.session_id}`, or Ctrl-C" in str(n.message)
                                            for n in app._notifications))
        assert not isinstance(app.screen, ConfirmScreen) and len(store.list()) == 3
        await pilot.press("down", "space", "down", "space", "x")
        out = tmp_path / "mmul-exports"
        await wait_until(pilot, lambda: (out / f"{first}.csv").exists() and (out / f"{second}.csv").exists())
        assert not (out / f"{running.session_id}.json").exists()
    running.finish("cancelled")


async def test_engine_start_failure_is_one_clear_line(tmp_home):
    from workbench.client.errors import EngineStartError

    def broken():
        raise EngineStartError("the engine exited with code 1 while starting; see /x/engine/engine.log: boom")

    app = create_app(engine_starter=broken)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.engine_state == "failed")
        status = str(app.screen.query_one("#engine-status").render())
        assert "engine.log" in status and "Traceback" not in status
        assert app.is_running


async def test_an_engine_that_cannot_start_on_a_read_only_home_says_so_not_to_read_its_log(tmp_home):
    """It said 'see .../engine/engine.log', a log the read-only home could not hold."""
    import errno

    def read_only():
        raise OSError(errno.EROFS, "Read-only file system", f"{tmp_home}/engine")

    app = create_app(engine_starter=read_only)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.engine_state == "failed")
        assert app.engine_message.startswith(f"engine not available: cannot write {tmp_home}/engine (Read-only")
        assert "engine.log" not in app.engine_message

async def test_engine_ready_is_shown(tmp_home):
    app = create_app(engine_starter=lambda: {"pid": 4242})
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.engine_state == "ready")
        assert "4242" in str(app.screen.query_one("#engine-status").render())


async def test_an_engine_that_stops_answering_is_shown_and_ctrl_r_starts_one(tmp_home):
    """`mmul-workbench engine stop` (or a crash) while the TUI is open: within a watch period the home says the
    engine stopped (it said "ready" for ever), and ctrl+r starts one again."""
    app = create_app(start_engine=False)  # the real services: no engine runs in this home, so none answers
    app.watch_seconds = 0.1
    async with app.run_test(size=SIZE) as pilot:
        app.engine_state = "ready"  # as if one had answered and then stopped
        app.services.engine_ready = True
        await wait_until(pilot, lambda: app.engine_state == "failed")
        assert "engine stopped" in str(app.screen.query_one("#engine-status").render())
        assert app.services.engine_ready is False
        starts = []
        app.services._engine_starter = lambda: starts.append(1) or {"pid": 77}
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.engine_state == "ready" and starts == [1])


# --------------------------------------------------------------------------------------------------
# new run


async def test_new_run_invalid_lr_shows_inline_error_and_submits_nothing(tmp_home):
    calls: list[dict] = []

    async def fake_submit(spec):
        calls.append(spec)
        return {"session": "fake-0001", "state": "queued"}

    app = create_app(start_engine=False, submitter=fake_submit,
                     live_source_factory=lambda sid: ListSource(make_events(5), session_id=sid, live=True))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        from screens.new_run import NewRunScreen

        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen) and form_ready(app.screen))
        screen = app.screen
        await wait_until(pilot, lambda: bool(screen.query("#p-lr")))
        lr = screen.query_one("#p-lr")
        lr.value = "fast"
        await pilot.press("ctrl+s")
        error = screen.query_one("#err-p-lr")
        await wait_until(pilot, lambda: "--lr" in str(error.render()) and error.display)
        assert lr.has_class("-invalid")
        assert calls == [] and app.services.submitted == []
        lr.value = "fas"  # edited: its error goes at once (it stayed until the next submit)
        await wait_until(pilot, lambda: not error.display and not lr.has_class("-invalid"))
        # a bad deletion N is shown under N, still nothing submitted
        lr.value = "1e-4"
        screen.query_one("#del-n").value = "-3"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "N units must be a positive whole number" in str(screen.query_one("#err-del-n").render()))
        # said once, in the form's words: the preview repeated the sentence, and both named the flag `--delete N`
        await wait_until(pilot, lambda: "until the deletion set above is fixed" in str(screen.query_one("#del-preview").render()))
        assert "--delete" not in str(screen.query_one("#err-del-n").render())
        screen.query_one("#deletion")._start_preview()  # as the edit's own debounced preview does, after the submit
        await wait_until(pilot, lambda: "computing" not in str(screen.query_one("#del-preview").render()))
        assert "until the deletion set above is fixed" in str(screen.query_one("#del-preview").render())
        assert calls == []
        # fixed: submitted once, and the monitor follows the new session live
        screen.query_one("#del-n").value = "8"
        await pilot.press("ctrl+s")
        from screens.monitor import MonitorScreen

        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen))
        assert len(calls) == 1
        spec = calls[0]
        assert spec["method"] == "multidelete" and spec["params"]["lr"] == pytest.approx(1e-4)
        assert spec["deletion"] == {"strategy": "random", "n": 8, "seed": 42}
        assert app.screen.source.session_id == "fake-0001" and not app.screen.replay


async def test_new_run_fields_follow_the_method(tmp_home):
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: param_shown(app.screen, "alpha") and form_ready(app.screen))
        screen = app.screen
        assert not param_shown(screen, "npo_beta")
        screen.query_one("#p-lr").value = "3e-5"
        screen.query_one("#method").value = "npo"
        await wait_until(pilot, lambda: not param_shown(screen, "alpha") and param_shown(screen, "npo_beta"))
        assert param_shown(screen, "lr") and screen.query_one("#p-lr").value == "3e-5"  # typed values stay
        assert screen.raw_spec()["params"]["lr"] == "3e-5" and "alpha" not in screen.raw_spec()["params"]


async def test_deletion_preview_counts_units(tmp_home):
    from screens.deletion import preview_text

    preview = create_app(start_engine=False).services.preview_deletion
    text = preview_text(preview, "shapes-tiny", {"strategy": "random", "n": 8, "seed": 1}, requests=2)
    assert text.startswith("8 of 160") and "2 sequential requests" in text
    assert "no training unit" in preview_text(preview, "shapes-tiny", {"strategy": "query", "query": "zebra",
                                                                      "n": None, "seed": 1})
    assert "built-in worlds only" in preview_text(preview, "flickr30k:/x", {"strategy": "random", "n": 8, "seed": 1})


# --------------------------------------------------------------------------------------------------
# monitor


async def test_live_monitor_shows_points_summary_and_log(tmp_home):
    from screens.monitor import MonitorScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = MonitorScreen(ListSource(make_events(120, requests=3, logs=3), live=True))
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.source_done and not screen.backlog)
        await wait_until(pilot, lambda: screen.query_one("#panel-loss", SeriesPlot).points_drawn > 0)
        assert len(screen.model.evals["df_dr_auc"]) == 3  # two during the run, the curve ends at the final one
        forget = screen.query_one("#panel-forget", SeriesPlot)
        assert forget.display and list(forget.series) == ["df_dr_auc", "forget.image"]  # per request too
        summary = screen.query_one("#mon-summary")
        assert summary.row_count >= 2
        first = summary.get_row_at(0)
        assert tuple(first) == ("df_dr_auc", "90.0", "50.0", "-40.0")  # an AUC in percent, the delta signed
        assert len(screen.query_one("#mon-log").lines) >= 3
        assert "finished" in str(screen.query_one("#mon-status").render())


async def test_monitor_draws_panels_by_question_at_100x30(tmp_home):
    from screens.monitor import MonitorScreen
    from sessions.panels import MAX_SERIES, PALETTE

    events = make_events(60)
    events.insert(3, {"v": 1, "seq": 0, "ts": 0.0, "kind": "eval", "split": "step", "step": 1, "metrics": {
        "df": {"r_mean": 30.0, "txt_r1": 20.0}, "forget": {"image": 0.4, "text": 0.3}, "mia": {"auc": 0.6},
        "mmbench_retention": 98.0}})
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = MonitorScreen(ListSource(events, live=True))
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.source_done and not screen.backlog)
        plots = {p.id: p for p in screen.query(SeriesPlot) if p.display and not p.has_class("-empty")}
        await wait_until(pilot, lambda: all(p.renders for p in plots.values()))
        assert sorted(plots) == ["panel-forget", "panel-general", "panel-keep", "panel-loss", "panel-privacy"]
        text = app.export_screenshot().replace("&#160;", " ")
        for title in ("forget", "keep", "privacy", "general ability", "loss terms"):
            assert title in text
        assert all(0 < len(p.series) <= MAX_SERIES and p.size.width > 0 for p in plots.values())
        forget = plots["panel-forget"]
        assert list(forget.series) == ["df_dr_auc", "df.r_mean", "forget.image", "forget.text"]
        assert set(forget.colours.values()) <= set(PALETTE)
        assert "original df_dr_auc 90.0" in forget.border_subtitle   # the reference line, in the legend
        assert "100%" in plots["panel-general"].border_subtitle
        assert {p.panel.x_range for p in plots.values()} == {(0.0, 60.0)}


async def test_monitor_counts_unlearning_steps_apart_from_the_originals_training(tmp_home):
    from screens.monitor import MonitorScreen

    events = make_events(12)
    training = [{"v": 1, "seq": 0, "ts": 0.0, "kind": "step", "step": i, "phase": "original", "losses": {"total": 3.0}}
                for i in range(300)]
    events[1:1] = [{"v": 1, "seq": 0, "ts": 0.0, "kind": "phase", "name": "original"}, *training]
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = MonitorScreen(ListSource(events, live=True))
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.source_done and not screen.backlog)
        status = str(screen.query_one("#mon-status").render())
        assert "step 12 " in status + " " and "original trained 300 steps" in status
        assert list(screen.model.losses["total"].xs) == list(range(12))  # the original's steps are not drawn


async def test_replay_pause_step_speed_and_end(tmp_home):
    from screens.monitor import SPEEDS, MonitorScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = MonitorScreen(ListSource(make_events(400), live=False))
        ticks = count_ticks(screen)
        await app.push_screen(screen)
        assert screen.replay
        await pilot.press("space")
        assert screen.paused
        await wait_until(pilot, lambda: screen.source_done)
        start = screen.model.x   # what played before the pause
        # paused, the footer offers Resume and the status line what is left to play at which speed (it said
        # "Pause" and "N new", and + / - changed a speed the width had dropped from the line; a review)
        from textual.widgets._footer import FooterKey

        await wait_until(pilot, lambda: "Resume" in [key.description for key in screen.query(FooterKey)])
        assert "Pause" not in [key.description for key in screen.query(FooterKey)]
        status = screen.query_one("#mon-status")
        assert f"to play at x{screen.speed:g}" in str(status.render())
        await pilot.press("n")
        assert screen.model.x == start + 1
        await pilot.press("n", "n")
        assert screen.model.x == start + 3
        seen = len(ticks)
        await wait_until(pilot, lambda: len(ticks) >= seen + 3)
        assert screen.model.x == start + 3  # paused: three ticks of the replay timer moved nothing
        speed = screen.speed
        await pilot.press("plus")
        assert screen.speed == SPEEDS[SPEEDS.index(speed) + 1]
        await pilot.press("minus", "minus")
        assert screen.speed == SPEEDS[SPEEDS.index(speed) - 1]
        assert f"to play at x{screen.speed:g}" in str(status.render())
        await pilot.press("space")
        await wait_until(pilot, lambda: "Pause" in [key.description for key in screen.query(FooterKey)])
        await wait_until(pilot, lambda: screen.model.x > start + 3)
        await pilot.press("e")
        await wait_until(pilot, lambda: screen.model.x == 400)
        assert screen.model.state == "finished"


async def test_replay_cli_path_opens_stored_session(tmp_home):
    store = SessionStore()
    sid = write_session(store, "ft", steps=30)
    app = create_app(replay=sid)
    async with app.run_test(size=SIZE) as pilot:
        from screens.monitor import MonitorScreen

        screen = app.screen
        assert isinstance(screen, MonitorScreen) and screen.replay
        await pilot.press("e")
        await wait_until(pilot, lambda: screen.model.x == 30)
        verdict = screen.query_one("#mon-verdict")   # the summary panel opens with the finished run's verdict
        await wait_until(pilot, lambda: verdict.has_class("-shown"))
        assert str(verdict.render()) == "forget: Df/Dr AUC 50.0; keep: test r_mean 40.0" and verdict.display
        await pilot.press("escape")
        await pilot.pause()  # the app has handled the key (and exited)
    assert app.return_code == 0


def test_a_flat_line_sits_on_its_own_tick():
    """A run that keeps 100% drew its line on a 50-150 axis, on the row labelled 116.7."""
    import re

    plot = SeriesPlot("retain")
    flat = Series()
    for step in range(10):
        flat.append(step, 100.0)
    plot.set_series({"retain": flat})
    plot._rebuild(60)
    plot.plt.plotsize(60, 12)
    rows = re.sub(r"\x1b\[[0-9;]*m", "", plot.plt.build()).splitlines()
    labelled = [row for row in rows if re.match(r"^\s*[-0-9.]+┤", row)]
    assert len(labelled) == 1 and labelled[0].startswith("100┤") and "▀" in labelled[0]


async def test_at_80x24_a_request_runs_monitor_verdict_keeps_its_last_request(tmp_home):
    """The verdict box holds a few lines at 80x24: it showed request 1/3's verdict, cut, and never the last."""
    store = SessionStore()
    writer = store.create({"method": "ft", "model": "blip-tiny", "data": "shapes-tiny", "requests": 3,
                           "deletion": {"strategy": "random", "n": 9, "seed": 0}, "device": "cpu"})
    writer.emit("step", step=0, phase="unlearn", lr=1e-3, losses={"total": 1.0})
    original = {"df_dr_auc": 0.5, "test": {"r_mean": 40.0}}
    requests = [{"request": i, "metrics": {"df_dr_auc": 0.5 + i / 10, "test": {"r_mean": 40.0 - i}}} for i in (1, 2, 3)]
    writer.finish("finished", summary={"metrics": requests[-1]["metrics"], "original_metrics": original,
                                       "requests": requests})
    app = create_app(replay=writer.session_id)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("e")
        verdict = screen.query_one("#mon-verdict")
        await wait_until(pilot, lambda: verdict.has_class("-shown"))
        shown = str(verdict.render())
        assert shown.startswith("request 3/3: forget: Df/Dr AUC 50.0 -> 80.0") and "request 1/3" not in shown


def test_run_tui_unknown_replay_is_one_line(tmp_home, capsys):
    from workbench.tui import run_tui

    assert run_tui(replay="no-such-session") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no session") and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------------
# keyboard, palette, help, 80x24


def _screen_classes():
    from screens.compare import CompareScreen
    from screens.help import HelpScreen
    from screens.home import HomeScreen
    from screens.monitor import MonitorScreen
    from screens.new_run import NewRunScreen
    from workbench.app import WorkbenchApp
    from screens.widgets.confirm import ConfirmScreen
    from screens.studies import StudiesScreen
    from screens.study_form import StudyFormScreen
    from screens.study_grid import StudyGridScreen
    from screens.study_sessions import StudySessionsScreen

    return [WorkbenchApp, HomeScreen, NewRunScreen, MonitorScreen, CompareScreen, HelpScreen, ConfirmScreen,
            StudiesScreen, StudyFormScreen, StudyGridScreen, StudySessionsScreen]


def test_every_binding_has_an_id_and_a_description():
    from textual.binding import Binding

    ids = []
    for cls in _screen_classes():
        for binding in cls.BINDINGS:
            assert isinstance(binding, Binding), (cls, binding)
            assert binding.id and binding.description, (cls, binding)
            ids.append(binding.id)
    assert len(ids) == len(set(ids))


async def test_palette_lists_screen_actions_and_help_lists_bindings(tmp_home):
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Compare", "Delete", "Export", "New run", "Filter", "Help", "Studies", "New study"} <= titles
        await pilot.press("f1")
        from screens.help import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        rows = [app.screen.query_one("#help-table").get_row_at(i)
                for i in range(app.screen.query_one("#help-table").row_count)]
        assert any(r[2] == "home.compare" for r in rows)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_a_replay_does_not_wait_on_the_originals_training(tmp_home):
    """A PULSE session trains its original in the session: its replay showed blank panels for most of its time
    while those (undrawn) steps played at the replay's pace."""
    store = SessionStore()
    writer = store.create({"method": "ga", "model": "llava-tiny", "data": "people-tiny", "kind": "pulse"})
    for i in range(400):
        writer.emit("step", step=i, phase="original:pretrain", lr=1e-3, losses={"total": 1.0})
    for i in range(20):
        writer.emit("step", step=i, phase="unlearn", lr=1e-3, losses={"total": 1.0 / (i + 1)})
    writer.finish("finished", summary={"metrics": {"forget": {"image": 0.5, "text": 0.5}}})
    app = create_app(replay=writer.session_id)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.model.training_steps == 400, timeout=2)
        assert screen.model.x < 20  # the unlearning steps still play at the replay's pace
        await wait_until(pilot, lambda: screen.model.x == 20, timeout=10)


async def test_help_over_a_replay_lists_what_it_can_do_in_the_footers_words(tmp_home):
    """f1 over a replay listed ctrl+k 'Cancel run' (a live run's) and keys as `plus,equals_sign`."""
    from screens.help import HelpScreen

    sid = write_session(SessionStore(), "ft", steps=5)
    app = create_app(replay=sid)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        table = app.screen.query_one("#help-table")
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        assert not any(r[2] == "monitor.cancel" for r in rows)
        assert not any("equals_sign" in r[0] or r[0] == "slash" for r in rows)
        assert any(r[0] == "+ / =" for r in rows)


async def test_ctrl_k_asks_before_it_cancels_a_live_run_and_the_footer_offers_it(tmp_home):
    """ctrl+k cancelled a 40-epoch Retrain at once, with nothing asked, and only f1 listed it; the footer offered a
    live run the replay's + Faster and - Slower."""
    from screens.monitor import MonitorScreen
    from screens.widgets.confirm import ConfirmScreen

    cancelled = []

    class Engine:
        async def cancel(self, session):
            cancelled.append(session)

    app = create_app(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        source = ListSource(make_events(5)[:-1], session_id="20261207-120000-ab12", live=True)  # still running
        source.meta = {"spec": {"method": "ga", "requests": 8}}
        screen = MonitorScreen(source, services=Engine())
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.model.x == 5)
        assert screen.check_action("cancel_run", ()) and not screen.check_action("faster", ())
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        # a run of 8 requests goes on from its last resume point: the dialog said it starts again from request 1,
        # and its yes read "Yes, delete"
        question = str(app.screen.query_one("#question").render())
        assert "goes on later from its last resume point (written every 10 minutes)" in question
        assert str(app.screen.query_one("#yes").label) == "Yes, cancel it"
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is screen)
        assert cancelled == []
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: cancelled == ["20261207-120000-ab12"])
        app.pop_screen()
        ended = MonitorScreen(ListSource(make_events(5), session_id="20261207-120000-cd34", live=True),
                              services=Engine())
        await app.push_screen(ended)
        await wait_until(pilot, lambda: ended.model.state == "finished")
        assert not ended.check_action("cancel_run", ())  # an ended run's footer no longer offers ctrl+k
        assert not ended.check_action("faster", ())  # nor a replay's speed keys: it is still the followed run


async def test_compact_class_at_80x24(tmp_home):
    app = create_app(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.has_class("-compact")
        from screens.monitor import MonitorScreen

        screen = MonitorScreen(ListSource(make_events(50), live=True))
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.model.x == 50)
        await wait_until(pilot, lambda: screen.query_one("#mon-summary").row_count > 0)
        # at 80x24 the before/after table wins the space over the log
        assert not screen.query_one("#mon-log").display and screen.query_one("#mon-summary").size.height >= 3
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert not app.has_class("-compact")


# --------------------------------------------------------------------------------------------------
# torch-free


TORCH_FREE = r"""
import asyncio, sys, os
sys.path.insert(0, {root!r})
from workbench.tui import create_app
from sessions.source import ListSource

async def until(pilot, predicate):
    import time
    deadline = time.monotonic() + 60
    while not predicate():   # each pause lets the app handle what is pending
        if time.monotonic() > deadline:
            raise SystemExit("condition not met in time")
        await pilot.pause()


def preview_done(app):
    found = app.screen.query("#del-preview")
    return bool(found) and "selected" in str(found.first().render())


async def main():
    app = create_app(engine_starter=lambda: {{"pid": 1}})
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+n")
        await until(pilot, lambda: preview_done(app))   # the deletion preview has built the world
        await pilot.press("escape")
        from screens.monitor import MonitorScreen
        monitor = MonitorScreen(ListSource([], live=False))
        await app.push_screen(monitor)
        await until(pilot, lambda: monitor.source_done)
        await pilot.press("escape", "f2", "f3")   # the Studies list and the New-study form
        await until(pilot, lambda: type(app.screen).__name__ == "StudyFormScreen" and preview_done(app))
    heavy = [m for m in ("torch", "transformers", "torch_geometric", "peft") if m in sys.modules]
    print("HEAVY=" + ",".join(heavy))

asyncio.run(main())
"""


def test_tui_never_imports_torch(tmp_home):
    proc = subprocess.run([sys.executable, "-c", TORCH_FREE.format(root=str(ROOT))], capture_output=True,
                          text=True, timeout=60, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY=\n" in proc.stdout or proc.stdout.strip().endswith("HEAVY="), proc.stdout


def recording_app(calls: list[dict]):
    """The app with a submitter that records the specs it is handed (nothing runs)."""
    async def fake_submit(spec):
        calls.append(spec)
        return {"session": f"fake-{len(calls)}", "state": "queued"}

    return create_app(start_engine=False, submitter=fake_submit,
                      live_source_factory=lambda sid: ListSource([], session_id=sid, live=True))


async def test_new_run_sequential_requests_builds_a_pulse_spec(tmp_home):
    calls: list[dict] = []
    app = recording_app(calls)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        from screens.new_run import NewRunScreen

        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen) and form_ready(app.screen))
        screen = app.screen
        screen.query_one("#protocol").value = "sequential"
        await pilot.pause()  # the form has handled the change
        assert not param_shown(screen, "lora_r")  # image-text data: no LMM fields
        screen.query_one("#data").value = "people-tiny"
        await wait_until(pilot, lambda: param_shown(screen, "lora_r"))  # people data: the LMM fields appear
        # N counts people here: the units' default 16 (more than people-tiny has) gives way to blank (half), and
        # the preview is the spec's own check
        preview = screen.query_one("#del-preview")
        assert screen.query_one("#del-n").value == ""
        screen.query_one("#model").value = "llava-tiny"
        await wait_until(pilot, lambda: "forgets 2 pretrained people of people-tiny (it has 4)"
                         in str(preview.render()))
        screen.query_one("#del-n").value = "16"
        await wait_until(pilot, lambda: "cannot forget 16 people: people-tiny has 4 pretrained people"
                         in str(preview.render()))
        screen.query_one("#data").value = "shapes-tiny"  # and back: units again, their default with them
        screen.query_one("#del-n").value = ""
        await wait_until(pilot, lambda: not param_shown(screen, "lora_r"))
        assert screen.query_one("#del-n").value == "16"
        screen.query_one("#data").value = "people-tiny"
        await wait_until(pilot, lambda: param_shown(screen, "lora_r") and screen.query_one("#del-n").value == "")
        assert screen.query_one("#p-retain_batch_size").value == "8"
        assert screen.query_one("#p-retain_batch_size").placeholder == "default 8"
        screen.query_one("#data").value = "nlvr2:/data/nlvr2"  # NLVR2 files: the released Df batch, 8, as the CLI
        await wait_until(pilot, lambda: not param_shown(screen, "lora_r")
                         and screen.query_one("#p-batch_size").value == "8")
        assert screen.query_one("#p-retain_batch_size").value == "64"
        screen.query_one("#data").value = "people-tiny"
        await wait_until(pilot, lambda: param_shown(screen, "lora_r"))
        screen.query_one("#p-batch_size").value = "4"  # typed: it stays when the data changes, there and back
        screen.query_one("#data").value = "shapes-tiny"
        await wait_until(pilot, lambda: not param_shown(screen, "lora_r"))
        assert (screen.query_one("#p-batch_size").value, screen.query_one("#p-retain_batch_size").value) == ("4", "64")
        screen.query_one("#data").value = "people-tiny"
        await wait_until(pilot, lambda: param_shown(screen, "lora_r"))
        assert (screen.query_one("#p-batch_size").value, screen.query_one("#p-retain_batch_size").value) == ("4", "8")
        screen.query_one("#model").value = "llava-tiny"
        screen.query_one("#method").value = "ga"
        screen.query_one("#requests").value = "0"
        screen.query_one("#del-n").value = "2"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "--requests" in str(screen.query_one("#err-requests").render()))
        assert calls == []
        screen.query_one("#requests").value = "2"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: bool(calls))
        assert calls[0]["kind"] == "pulse" and calls[0]["requests"] == 2 and calls[0]["forget"] == 2
        # the batch sizes a PULSE run takes from the CLI (8), not CLIP's (64) left in the field; one typed stays
        assert calls[0]["params"]["batch_size"] == 4 and calls[0]["params"]["retain_batch_size"] == 8


async def test_new_run_sequential_requests_on_image_text_builds_a_run_spec(tmp_home):
    calls: list[dict] = []
    app = recording_app(calls)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        from screens.new_run import NewRunScreen

        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen) and form_ready(app.screen))
        screen = app.screen
        screen.query_one("#protocol").value = "sequential"
        screen.query_one("#model").value = "clip-tiny"
        screen.query_one("#data").value = "shapes-tiny"
        screen.query_one("#method").value = "npo"
        screen.query_one("#requests").value = "3"
        screen.query_one("#del-n").value = "9"
        # its resume points' cadence, as `--resume-every` (a K-request run from here had none before 10 minutes)
        await wait_until(pilot, lambda: screen.query_one("#resume_every").parent.display)
        assert screen.query_one("#resume_every").value == "10"
        screen.query_one("#resume_every").value = "soon"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "--resume-every 'soon'" in str(screen.query_one("#err-resume_every").render()))
        assert calls == []
        screen.query_one("#resume_every").value = "0"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: bool(calls))
        assert calls[0]["kind"] == "run" and calls[0]["requests"] == 3 and calls[0]["deletion"]["n"] == 9
        assert calls[0]["resume_every"] == 0.0


async def test_new_run_task_field_for_data_serving_several_tasks(tmp_home):
    calls: list[dict] = []
    app = recording_app(calls)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: bool(app.screen.query("#task")))
        screen = app.screen
        task_field = screen.query_one("#task").parent
        assert not task_field.display  # shapes-tiny serves retrieval only
        screen.query_one("#model").value = "gcn-bert-tiny"
        screen.query_one("#data").value = "graph-tiny"
        await wait_until(pilot, lambda: task_field.display)
        screen.query_one("#task").value = "retrieval"
        screen.query_one("#del-n").value = "4"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: bool(calls))
        assert calls[0]["task"] == "retrieval" and calls[0]["data"] == "graph-tiny"


def test_home_test_column_is_each_tasks_headline():
    from screens.home import sort_rows

    retrieval = {"id": "r", "summary": {"metrics": {"test": {"r_mean": 40.0}}}}
    classification = {"id": "c", "summary": {"metrics": {"test": {"accuracy": 70.0}}}}
    unfinished = {"id": "u", "summary": None}
    rows = sort_rows([retrieval, unfinished, classification], "test", reverse=True)
    assert [row["id"] for row in rows] == ["c", "r", "u"]


# --------------------------------------------------------------------------------------------------
# the device in the status line


async def test_status_line_shows_the_last_device_event(tmp_home):
    from screens.monitor import MonitorScreen

    events = make_events(5)
    sample = {"name": "cuda:0 (NVIDIA H200)", "util": 45.0, "mem_used_mb": 12_288.0, "mem_total_mb": 143_360.0}
    events.insert(1, {"v": 1, "seq": 1, "ts": 1.0, "kind": "device",
                      "devices": [{"name": "cuda:0 (NVIDIA H200)", "util": None, "mem_used_mb": None,
                                   "mem_total_mb": None}]})
    events.insert(4, {"v": 1, "seq": 4, "ts": 2.0, "kind": "device", "devices": [sample]})
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = MonitorScreen(ListSource(events, live=True), device="auto")
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.model.x == 5)
        status = str(screen.query_one("#mon-status").render())
        assert "device cuda:0 (NVIDIA H200) util 45.0% 12.0/140.0 GB" in status and "auto" not in status


async def test_status_line_falls_back_to_the_resolved_device_not_auto(tmp_home):
    from screens.monitor import MonitorScreen
    from sessions.source import StoredSource

    store = SessionStore()
    writer = store.create({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "device": "auto"})
    writer.emit("step", step=0, phase="unlearn", lr=1e-3, losses={"total": 1.0})
    writer.finish("finished", summary={"metrics": {"df_dr_auc": 0.5}, "device": "cpu"})
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = MonitorScreen(StoredSource(writer.session_id, store), device="auto")
        await app.push_screen(screen)
        await pilot.press("e")
        await wait_until(pilot, lambda: screen.model.x == 1)
        assert "device cpu" in str(screen.query_one("#mon-status").render())


def test_status_line_leaves_out_the_least_telling_parts_first_and_lr_has_one_format():
    from screens.monitor import lr_text, status_line

    assert [lr_text(lr) for lr in (1e-3, 5e-5, 0.02)] == ["1.0e-03", "5.0e-05", "2.0e-02"]  # not 0.001 beside 5e-05
    parts = [(9, "[b]run[/b]"), (2, "live"), (9, "running"), (5, "lr 1.0e-03"), (1, "stream ended")]
    assert status_line(parts, 80) == "[b]run[/b]  live  running  lr 1.0e-03  stream ended"
    assert status_line(parts, 30) == "[b]run[/b]  live  running  lr 1.0e-03"     # 'stream ended' first
    assert status_line(parts, 20) == "[b]run[/b]  live  running"   # lr left out; the shorter mode still fits


@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
async def test_status_line_is_one_line_with_lr_in_one_format(tmp_home, size):
    """Issue 25: at 80 columns the status line wrapped, and lr switched between 0.001 and 5e-05."""
    from screens.monitor import MonitorScreen

    events = make_events(12)
    for event in events:
        if event["kind"] == "step" and event["step"] >= 6:
            event["lr"] = 5e-5
    events.insert(1, {"v": 1, "seq": 1, "ts": 1.0, "kind": "device", "devices": [
        {"name": "cuda:0 (NVIDIA H200)", "util": 45.0, "mem_used_mb": 12_288.0, "mem_total_mb": 143_360.0}]})
    events[2:2] = [{"v": 1, "seq": 0, "ts": 0.0, "kind": "step", "step": i, "phase": "original",
                    "losses": {"total": 3.0}} for i in range(300)]
    events[-1]["message"] = "kept [/b] as written"  # a message is text, not markup
    app = create_app(start_engine=False)
    async with app.run_test(size=size) as pilot:
        screen = MonitorScreen(ListSource(events, session_id="20260101-000000-0001", live=True))
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.source_done and not screen.backlog and screen.model.x == 12)
        await pilot.pause()
        status = screen.query_one("#mon-status")
        text = status.render()
        plain = getattr(text, "plain", str(text))
        assert status.size.height == 1 and "\n" not in plain and len(plain) <= size[0] - 2, plain
        assert "20260101-000000-0001" in plain and "step 12" in plain and "finished" in plain
        if size[0] >= 120:
            assert "lr 5.0e-05" in plain and "original trained 300 steps" in plain and "kept [/b] as" in plain


async def test_palette_lists_each_command_once(tmp_home):
    """Issue 25: "New run" and "Studies" were listed twice (the home's n and t beside the app's ctrl+n and f2)."""
    from screens.monitor import MonitorScreen
    from screens.new_run import NewRunScreen
    from screens.studies import StudiesScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        commands = list(app.get_system_commands(app.screen))
        assert [c.help for c in commands if c.title == "New run"] == ["home.new_run  [n, ctrl+n]"]
        for screen in (MonitorScreen(ListSource(make_events(3), live=True)), StudiesScreen(app.services),
                       NewRunScreen(app.services)):
            await app.push_screen(screen)
            await pilot.pause()
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert len(titles) == len(set(titles)), (type(screen).__name__, titles)
            # Textual's "Keys" beside our Help; the monitor's Resume while it plays (a review)
            assert "Keys" not in titles and "Help" in titles
            if isinstance(screen, MonitorScreen):
                assert "Pause" in titles and "Resume" not in titles


async def test_footer_keeps_its_keys_while_the_bindings_it_shows_stay_the_same(tmp_home):
    """screens/widgets/footer.py: a Tab from one Input to the next shows the same keys, so the footer keeps the
    key widgets it has (Textual's rebuilds them twice a focus move); a new binding rebuilds it; and a key is
    mounted with the footer's compact state, never toggling its class (each toggle is a restyle)."""
    from textual.widgets import Input
    from textual.widgets._footer import FooterKey

    from screens.new_run import NewRunScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen) and isinstance(app.focused, Input))
        await wait_until(pilot, lambda: len(app.screen.query(FooterKey)) > 0)
        keys = list(app.screen.query(FooterKey))
        toggles: list[bool] = []
        for key in keys:
            key.watch(key, "compact", toggles.append, init=False)
        first = app.focused
        await pilot.press("tab")
        await wait_until(pilot, lambda: isinstance(app.focused, Input) and app.focused is not first)
        await pilot.pause()
        assert list(app.screen.query(FooterKey)) == keys  # the same widgets: nothing was rebuilt
        app.bind("f12", "bell", description="Ring")  # a key the footer must now show
        app.screen.refresh_bindings()
        await wait_until(pilot, lambda: any(key.description == "Ring" for key in app.screen.query(FooterKey)))
        bound = [key for key in app.screen.query(FooterKey) if not key.has_class("-command-palette")]
        assert all(key.compact is False and not key.has_class("-compact") for key in bound)
        assert toggles == []


async def test_the_footer_draws_help_back_and_quit_first_on_every_screen_at_80_columns(tmp_home):
    """Textual's footer ordered keys from the focused widget out to the app, so at 80x24 the app's Help and
    Quit and the monitor's Back were cut off the right edge. Ours draws them first and fits them."""
    from textual.widgets._footer import FooterKey

    sid = write_session(SessionStore(), "ft", steps=5)
    app = create_app(replay=sid)

    def drawn_actions() -> list[str]:   # the keys left of the command palette's, in the order drawn
        keys = [key for key in app.screen.query(FooterKey) if not key.has_class("-command-palette")]
        return [key.action for key in sorted(keys, key=lambda key: key.region.x) if key.region.right <= 80 - 11]

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.screen.query(FooterKey)) > 3)   # the replay's monitor
        await pilot.pause()
        assert drawn_actions()[:3] == ["help", "back", "quit"]
    app = create_app(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "help" in drawn_actions())
        assert drawn_actions()[:2] == ["help", "quit"]
        assert "new_run" not in drawn_actions()   # ctrl+n: the home's n says the same


async def test_a_session_that_ended_without_a_step_gives_its_table_the_panels_room(tmp_home):
    """A quantize attack has no unlearning step: its panels drew two dots at x = 0 and squeezed the before/after
    table, which is its whole result. A run with steps keeps its panels, also while it runs."""
    from screens.monitor import MonitorScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        stepless = MonitorScreen(ListSource(make_events(0), live=False))
        await app.push_screen(stepless)
        await wait_until(pilot, lambda: stepless.model.state == "finished")
        await wait_until(pilot, lambda: stepless.has_class("-stepless"))
        assert not stepless.query_one("#mon-plots").display
        # nothing to pause, step or speed up: the footer offered all four (a review)
        assert all(stepless.check_action(action, ()) is False for action in ("toggle_pause", "step", "faster", "slower"))
        await pilot.pause()
        assert stepless.query_one("#mon-summary").size.height > 10
        app.pop_screen()
        stepped = MonitorScreen(ListSource(make_events(5), live=False))
        await app.push_screen(stepped)
        await wait_until(pilot, lambda: stepped.model.state == "finished")
        await pilot.pause()
        assert not stepped.has_class("-stepless") and stepped.query_one("#mon-plots").display


async def test_a_session_that_cannot_be_read_says_why_where_it_can_be_seen(tmp_home):
    """The reason sat only in the status line, whose width fitter dropped it below 300 columns: the monitor read
    `replay waiting step 0 event 0/0` for good."""
    from screens.monitor import MonitorScreen
    from sessions.errors import SessionDamaged

    class Damaged:
        live = False

        def __aiter__(self):
            return self

        async def __anext__(self):
            raise SessionDamaged("20261207-000000-abcd", "session.json is not valid JSON")

    app = create_app(start_engine=False)
    told: list[tuple[str, str]] = []
    async with app.run_test(size=SIZE) as pilot:
        app.notify = lambda message, *, title="", severity="information", timeout=None, markup=True: \
            told.append((message, severity))
        screen = MonitorScreen(Damaged())
        await app.push_screen(screen)
        await wait_until(pilot, lambda: told)
        assert told[0][1] == "error" and "session.json is not valid JSON" in told[0][0]
        await wait_until(pilot, lambda: any("is damaged" in str(line) for line in screen.query_one("#mon-log").lines))


async def test_ctrl_q_asks_before_it_throws_a_filled_in_form_away(tmp_home):
    """escape asked before leaving a filled-in form; ctrl+q quit at once, and the settings were gone."""
    from screens.new_run import NewRunScreen
    from screens.widgets.confirm import ConfirmScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen) and bool(app.screen.query("#name")))
        form = app.screen
        form.query_one("#name").value = "important-run"
        await wait_until(pilot, lambda: form.edited)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert str(app.screen.query_one("#yes").label) == "Yes, quit"
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is form)
        assert app.is_running and form.query_one("#name").value == "important-run"
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running)


def test_quitting_says_which_runs_go_on_in_the_engine(tmp_home, capsys):
    """Quitting with a run live said nothing; the run goes on in the engine, and now the terminal says so."""
    from workbench.tui import say_what_goes_on

    store = SessionStore()
    say_what_goes_on(store)
    assert capsys.readouterr().err == ""
    running = store.create({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny"}, name="longrun")
    done = store.create({"method": "ga", "model": "clip-tiny", "data": "shapes-tiny"}, name="done")
    done.finish("finished")
    say_what_goes_on(store)
    said = capsys.readouterr().err
    assert said.startswith("1 run goes on in the engine (longrun); `mmul-workbench` shows it again") and "done" not in said
    running.finish("cancelled")


async def test_a_methods_fields_are_mounted_when_it_is_chosen_in_the_forms_order(tmp_home):
    """Every method's fields were composed up front (46 fields, the form took 1.6 s to open here); now the chosen
    method's are, and another's are mounted when it is chosen, in their place in the form's order."""
    from screens.new_run import NewRunScreen, form_params

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen) and bool(app.screen.query("#p-lr"))
                         and form_ready(app.screen))
        screen = app.screen
        assert not screen.query("#p-npo_beta")  # another method's field: not composed
        screen.query_one("#method").value = "npo"
        await wait_until(pilot, lambda: param_shown(screen, "npo_beta"))
        mounted = [child.query_one(".param").id[2:] for child in screen.query_one("#params").children]
        assert mounted == [param.name for param in form_params() if param.name in mounted]


async def test_a_replay_draws_retrains_reference_when_one_is_in_the_home(tmp_home):
    """The TUI's replay never drew Retrain's line (its stored source had no meta yet when the reference was looked
    for), where `replay --headless` drew it and the verdict quoted it."""
    store = SessionStore()
    write_session(store, "retrain", auc=0.84)
    sid = write_session(store, "multidelete", auc=0.9)
    app = create_app(replay=sid)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.retrain is not None and screen.retrain.get("df_dr_auc") == 0.84)
