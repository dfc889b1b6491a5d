"""Compare that lines up: the pure curve functions (hand-checked values) and the screen's toggles: x axis
by step / fraction / request, EMA smoothing, log scale, the glob filter, one colour per session in every
plot, the headline metrics first in the table."""
from __future__ import annotations

import math

import pytest

from conftest import wait_until
from screens.curves import PALETTE, ema, log_points, map_x, request_positions, session_colours
from sessions.metric_names import glob_match
from screens.metric_order import headline_first
from sessions.store import SessionStore
from workbench.tui import create_app

SIZE = (100, 30)


def test_ema_is_debiased_as_tensorboard_and_wandb():
    # a = 0.5: e1 = 0.5*0 + 0.5*2 = 1 -> 1/(1-0.5) = 2; e2 = 0.5*1 + 0.5*4 = 2.5 -> 2.5/0.75 = 3.333...
    # e3 = 0.5*2.5 + 0.5*8 = 5.25 -> 5.25/0.875 = 6
    assert ema([2.0, 4.0, 8.0], 0.5) == pytest.approx([2.0, 10 / 3, 6.0])
    assert ema([5.0, 5.0, 5.0], 0.9) == pytest.approx([5.0, 5.0, 5.0])  # a constant stays itself from the start
    assert ema([1.0, 3.0], 0.0) == [1.0, 3.0]                           # a = 0: no smoothing
    out = ema([2.0, float("nan"), 4.0], 0.5)                            # a NaN is shown, not averaged in
    assert out[0] == 2.0 and math.isnan(out[1]) and out[2] == pytest.approx(10 / 3)
    with pytest.raises(ValueError):
        ema([1.0], 1.0)


def test_x_axis_by_step_fraction_and_request():
    single = [None] * 4                                  # a 4-step single-request run
    assert map_x([0, 1, 2, 3, 4], "step", single) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert map_x([0, 2, 4], "fraction", single) == [0.0, 0.5, 1.0]
    assert map_x([0, 2, 4], "request", single) == [0.0, 0.5, 1.0]
    # two requests of 2 and 4 steps: request 0 spans [0, 1), request 1 spans [1, 2), the end is 2
    requests = [0, 0, 1, 1, 1, 1]
    assert request_positions(requests) == [0.0, 0.5, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert map_x([1, 3, 6], "request", requests) == [0.5, 1.25, 2.0]
    assert map_x([3], "fraction", requests) == [0.5]
    # a 320-step run and a 5,405-step one both end at 1.0 by fraction
    assert map_x([320], "fraction", [None] * 320) == map_x([5405], "fraction", [None] * 5405) == [1.0]
    with pytest.raises(ValueError):
        map_x([0], "time", single)


def test_log_points_colours_and_glob():
    assert log_points([0, 1, 2, 3], [1.0, 0.0, -2.0, 5.0]) == ([0, 3], [1.0, 5.0])
    colours = session_colours(["a", "b", "a", "c"])
    assert colours == {"a": PALETTE[0], "b": PALETTE[1], "c": PALETTE[2]}
    assert session_colours(str(i) for i in range(len(PALETTE) + 1))[str(len(PALETTE))] == PALETTE[0]
    names = ["df_dr_auc", "mia.auc", "mia.df_member_rate", "test.r_mean", "test.txt_r1"]
    assert glob_match(names, "*auc*") == ["df_dr_auc", "mia.auc"]
    assert glob_match(names, "mia.*, test.r_*") == ["mia.auc", "mia.df_member_rate", "test.r_mean"]
    assert glob_match(names, "MIA") == ["mia.auc", "mia.df_member_rate"]   # no wildcard: anywhere in the name
    assert glob_match(names, "") == names


def test_headline_metrics_come_first():
    names = ["test.txt_r1", "seconds", "mia.auc", "test.r_mean", "df.r_mean", "df_dr_auc", "forget_quality"]
    assert headline_first(names) == ["df_dr_auc", "test.r_mean", "df.r_mean", "forget_quality", "mia.auc",
                                     "seconds", "test.txt_r1"]
    # the holdout sets right after the headlines (a study grid's columns too), what a run cost last
    names = ["cost.device_count", "dr.r_mean", "holdout_identity.r_mean", "df_dr_auc", "holdout_association.r_mean",
             "cost.train_seconds", "test.txt_r1"]
    assert headline_first(names) == ["df_dr_auc", "dr.r_mean", "holdout_association.r_mean", "holdout_identity.r_mean",
                                     "test.txt_r1", "cost.device_count", "cost.train_seconds"]
    # a holdout set's recall at k goes with the others', after them (it sat between the holdouts' means and Df's)
    names = ["holdout_identity.txt_r1", "df.txt_r1", "holdout_identity.r_mean", "df.r_mean", "mia.attack_auc"]
    assert headline_first(names) == ["df.r_mean", "holdout_identity.r_mean", "mia.attack_auc", "df.txt_r1",
                                     "holdout_identity.txt_r1"]


def test_a_study_cells_label_drops_its_study_id():
    from screens.compare import run_entry

    meta = {"name": "study-f44096c4b03a retrain s42", "spec": {"method": "retrain"}}
    assert run_entry("20261207-045115-747c", meta, [])["label"] == "retrain s42 747c"
    assert run_entry("20261207-045115-12bc", {"spec": {"method": "multidelete"}}, [])["label"] == "multidelete 12bc"


def write_run(store: SessionStore, method: str, steps: int, requests: int = 1, name: str | None = None) -> str:
    """A run of ``steps`` steps over ``requests`` requests; total loss 2 at the start falling as 1/(i+1)."""
    writer = store.create({"method": method, "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu"}, name=name)
    per = steps // requests
    for i in range(steps):
        writer.emit("step", step=i, phase="unlearn", lr=1e-3, request=i // per if requests > 1 else None,
                    losses={"total": 2.0 / (i + 1), "kl": 0.0 if i == 0 else 0.1})
        if (i + 1) % per == 0:
            writer.emit("eval", step=i + 1, phase="unlearn", split="step", metrics={"df_dr_auc": 0.5 + i / (4 * steps)})
    final = {"df_dr_auc": 0.6, "test": {"r_mean": 40.0, "txt_r1": 30.0}, "mia": {"auc": 0.55}}
    writer.emit("eval", step=steps, phase="eval", split="after", metrics=final)
    writer.finish("finished", summary={"metrics": final})
    return writer.session_id


@pytest.fixture
def two_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    store = SessionStore()
    return [write_run(store, "multidelete", 32), write_run(store, "retrain", 540, requests=2)]


async def test_compare_toggles_axis_smoothing_log_and_filter(two_runs):
    from screens.compare import CompareScreen
    from screens.widgets.plot import SeriesPlot

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = CompareScreen(two_runs, app.services)
        await app.push_screen(screen)
        await wait_until(pilot, lambda: bool(screen.runs))
        loss, metric = screen.query_one("#cmp-loss", SeriesPlot), screen.query_one("#cmp-forget", SeriesPlot)
        labels = [r["label"] for r in screen.runs]
        assert loss.colours == metric.colours == {labels[0]: PALETTE[0], labels[1]: PALETTE[1]}
        assert max(loss.series[labels[1]].xs) == 539.0                     # by step: the long run sets the axis
        await pilot.press("x")                                             # by fraction: both end near 1
        assert screen.axis == "fraction" and loss.panel.xlabel == "fraction of the run"
        assert loss.border_title.endswith("by fraction") and not loss.panel.integer_x
        assert max(loss.series[labels[0]].xs) == pytest.approx(31 / 32)
        assert max(loss.series[labels[1]].xs) == pytest.approx(539 / 540)
        await pilot.press("x")                                             # by request: retrain spans 2
        assert max(loss.series[labels[1]].xs) == pytest.approx(1 + 269 / 270)
        assert max(metric.series[labels[1]].xs) == pytest.approx(2.0)
        await pilot.press("x")
        assert screen.axis == "step"
        raw = list(loss.series[labels[0]].ys)
        await pilot.press("s")                                             # EMA, debiased: the first point stays
        smooth = list(loss.series[labels[0]].ys)
        assert screen.smoothing and smooth[0] == pytest.approx(raw[0]) and smooth[1] == pytest.approx(
            (0.6 * 0.4 * 2.0 + 0.4 * 1.0) / (1 - 0.36))
        assert "(EMA)" in loss.border_title
        await pilot.press("l")
        assert loss.log_y and metric.log_y
        await pilot.press("t")                                             # kl: a 0 at step 0, dropped on log
        assert screen.term == "kl"
        await wait_until(pilot, lambda: loss.points_drawn < sum(len(s) for s in loss.series.values()))
        table = screen.query_one("#cmp-table")
        assert [str(table.get_row_at(i)[0]) for i in range(3)] == ["df_dr_auc", "test.r_mean", "mia.auc"]
        await pilot.press("slash", *"mia")
        await wait_until(pilot, lambda: screen.pattern == "mia")
        assert screen.metrics == ["mia.auc"]
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == ["mia.auc", "state", "method", "model", "data"]
        await pilot.press("escape")                                        # leaves the filter, stays on Compare
        assert app.screen is screen
        await pilot.press("escape")
        assert app.screen is not screen


async def test_compare_draws_panels_by_question_on_unlearning_steps(tmp_path, monkeypatch):
    from screens.compare import CompareScreen
    from screens.widgets.plot import SeriesPlot

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    store = SessionStore()
    trained = store.create({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny"}, name="trained original")
    for i in range(300):   # this run trained its original first: those steps are not the run's
        trained.emit("step", step=i, phase="original", lr=1e-3, losses={"total": 5.0})
    for i in range(12):
        trained.emit("step", step=i, phase="unlearn", lr=1e-3, losses={"total": 1.0})
    trained.emit("eval", step=12, phase="eval", split="after", metrics={"df_dr_auc": 0.6, "test": {"r_mean": 40.0}})
    trained.finish("finished", summary={"metrics": {"df_dr_auc": 0.6}})
    cached = write_run(store, "multidelete", 12)
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = CompareScreen([trained.session_id, cached], app.services)
        await app.push_screen(screen)
        await wait_until(pilot, lambda: bool(screen.runs))
        plots = {p.id: p for p in screen.query(SeriesPlot) if not p.has_class("-empty")}
        assert sorted(plots) == ["cmp-forget", "cmp-keep", "cmp-loss", "cmp-privacy"]
        labels = [r["label"] for r in screen.runs]
        assert list(plots["cmp-forget"].series) == labels and plots["cmp-forget"].border_title == "forget: df_dr_auc"
        assert max(plots["cmp-loss"].series[labels[0]].xs) == 11.0   # aligned on unlearning steps only
        assert {p.panel.x_range for p in plots.values()} == {(0.0, 12.0)}
        assert labels[0] in plots["cmp-loss"].border_subtitle   # the legend names the sessions


async def test_compare_shows_names_where_it_showed_ids(tmp_path, monkeypatch):
    from textual.widgets import DataTable, Static

    from screens.compare import CompareScreen
    from screens.widgets.plot import SeriesPlot

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    store = SessionStore()
    named, plain = write_run(store, "multidelete", 4, name="strong forgetting"), write_run(store, "ft", 4)
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = CompareScreen([named, plain], app.services)
        await app.push_screen(screen)
        await wait_until(pilot, lambda: bool(screen.runs))
        labels = [f"strong forgetting {named[-4:]}", f"ft {plain[-4:]}"]  # no name: the method in its place
        assert [r["label"] for r in screen.runs] == labels
        table = screen.query_one("#cmp-table", DataTable)
        assert [str(c.label) for c in table.columns.values()] == ["metric", *labels]
        assert list(screen.query_one("#cmp-loss", SeriesPlot).series) == labels   # the legend
        status = str(screen.query_one("#cmp-status", Static).render())
        assert f"{named} (strong forgetting)" in status and plain in status


async def test_at_80x24_the_metric_m_chooses_is_drawn_in_an_open_panel(two_runs):
    """The privacy and general-ability panels fold away at 80x24; `m` choosing a membership metric opens the
    privacy panel, so the key is seen to do something (it used to change nothing visible for 3-4 presses)."""
    from screens.compare import CompareScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = CompareScreen(two_runs, app.services)
        await app.push_screen(screen)
        await wait_until(pilot, lambda: bool(screen.runs))
        privacy = screen.query_one("#cmp-privacy")
        assert privacy.has_class("-minor")
        while screen.metric != "mia.auc":
            await pilot.press("m")
        await wait_until(pilot, lambda: not privacy.has_class("-minor") and privacy.display)
        assert privacy.region.width > 0


def test_every_runs_colour_is_named_in_a_narrow_legend():
    """Three runs at 80x24: the legend read `━ ft s42 5522 ━ ret…`, naming one of the three (set before the panel had
    a size, and with the reference line it overflowed even by the ids' ends)."""
    from rich.text import Text

    from screens.widgets.plot import legend_markup
    from sessions.panels import Line, Panel, Reference

    lines = [Line(label, [0.0], [1.0], (200, 0, 0)) for label in ("ft s42 5522", "retrain s42 f319", "multidelete ab12")]
    panel = Panel("forget", "forget: df_dr_auc", lines, [Reference("original", 90.0)])
    wide = Text.from_markup(legend_markup(panel, 200)).plain
    assert "ft s42 5522" in wide and "original 90.0" in wide
    narrow = Text.from_markup(legend_markup(panel, 26)).plain
    assert narrow == "━ 5522 ━ f319 ━ ab12" and len(narrow) <= 26


async def test_a_legend_set_before_its_plot_had_a_size_is_chosen_again_for_the_size_it_gets():
    """Compare opened from the home at 80x24 read `━ multidelete s1 99… ─╯` in every legend: set before the panels had
    their size, the legend was the whole one, which the border cut; a key press later it named both sessions by their
    ids' ends (a review)."""
    from rich.text import Text
    from textual.app import App

    from screens.widgets.plot import SeriesPlot
    from sessions.panels import Line, Panel

    lines = [Line(label, [0.0, 1.0], [1.0, 2.0], (200, 0, 0)) for label in ("retrain with a long name s1 ab12",
                                                                           "multidelete with a long name s1 cd34")]
    plot = SeriesPlot("forget")
    plot.set_panel(Panel("forget", "forget: df_dr_auc", lines, []))   # before it is mounted: no size yet
    assert "long name" in Text.from_markup(plot.border_subtitle).plain

    class OnePlot(App):
        CSS = "SeriesPlot { width: 30; height: 10; }"

        def compose(self):
            yield plot

    async with OnePlot().run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: plot.size.width > 0)
        await wait_until(pilot, lambda: Text.from_markup(plot.border_subtitle).plain == "━ ab12 ━ cd34")
