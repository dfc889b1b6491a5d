"""The Studies view: the grid of a study (methods x metrics, mean ± std, n, headline metrics first),
sorting by any column, a running study filling in, a method's sessions and the monitor from there, the
launch form (arguments as `study` takes them; a bad one stays in the form) and the toasts when a run or
a study ends. No engine and no training: the study's sessions are written with fixed numbers."""
from __future__ import annotations

import pytest
from textual.widgets import DataTable

from conftest import wait_until
from sessions_fixtures import wait_for
from sessions.store import SessionStore
from sessions.study import StudyRecord
from workbench.tui import create_app

SIZE = (100, 30)
SEEDS = (42, 87)
# method -> per seed (Df/Dr AUC, test r_mean, MIA Df member rate)
NUMBERS = {"retrain": ((0.60, 50.0, 0.20), (0.64, 52.0, 0.24)),
           "ft": ((0.52, 49.0, 0.50), (0.50, 47.0, 0.46)),
           "multidelete": ((0.66, 48.0, 0.30), (0.70, 50.0, 0.34))}
STUDY_ID = "study-0123456789ab"


def finished_session(store: SessionStore, method: str, seed: int, numbers: tuple) -> str:
    auc, r_mean, member = numbers
    writer = store.create({"method": method, "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu",
                           "deletion": {"strategy": "random", "n": 8, "seed": seed}},
                          name=f"{STUDY_ID} {method} s{seed}")
    for step in range(4):
        writer.emit("step", step=step, phase="unlearn", lr=1e-3, losses={"total": 1.0 / (step + 1)})
    metrics = {"df_dr_auc": auc, "test": {"r_mean": r_mean}, "mia": {"df_member_rate": member}}
    writer.emit("eval", step=4, phase="eval", split="after", metrics=metrics)
    writer.finish("finished", summary={"metrics": metrics, "seconds": 10.0 + seed / 100, "device": "cpu",
                                       "df_unit_scores": [auc, auc / 2, auc / 3]})
    return writer.session_id


def write_study(store: SessionStore, running: tuple[str, int] | None = None) -> StudyRecord:
    """The study of NUMBERS; the cell ``running`` (method, seed) is a session still running."""
    spec = {"model": "clip-tiny", "data": "shapes-tiny", "task": "retrieval", "device": "cpu",
            "deletion": {"strategy": "random", "n": 8}, "requests": 1, "params": {},
            "methods": list(NUMBERS), "seeds": list(SEEDS)}
    record = StudyRecord(STUDY_ID, spec, store.home)
    record.created = 0.0
    for method, per_seed in NUMBERS.items():
        for seed, numbers in zip(SEEDS, per_seed):
            if (method, seed) == running:
                writer = store.create({"method": method, "model": "clip-tiny", "data": "shapes-tiny"},
                                      name=f"{STUDY_ID} {method} s{seed}")
                writer.flush()
                record.set_cell(method, seed, writer.session_id, "running")
                record.writer = writer  # the test finishes it
                continue
            record.set_cell(method, seed, finished_session(store, method, seed, numbers), "finished")
    return record


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    return tmp_path


# --------------------------------------------------------------------------------------------------
# the grid's numbers (pure)


def test_load_study_aggregates_the_cells_with_headlines_first(tmp_home):
    from screens.study_data import grid_metrics, grid_rows, load_study, progress

    store = SessionStore()
    write_study(store)
    study = load_study(store, STUDY_ID, None, {})
    assert progress(study) == "6 of 6 runs finished"
    ft = study["methods"]["ft"]
    assert ft["df_dr_auc"] == {"mean": pytest.approx(0.51), "std": pytest.approx(0.0141421356), "n": 2}
    assert ft["auc_gap_to_retrain"]["mean"] == pytest.approx((0.08 + 0.14) / 2)   # |0.52-0.60|, |0.50-0.64|
    metrics = grid_metrics(study)
    assert metrics[:5] == ["df_dr_auc", "test.r_mean", "auc_gap_to_retrain", "test_gap_to_retrain",
                           "mia.df_member_rate"]
    rows = grid_rows(study, metrics)
    assert [row[0] for row in rows] == ["retrain", "ft", "multidelete"]
    assert rows[1][1:5] == ["2/2", "2", "51.0 ± 1.4", "48.0 ± 1.4"]  # percent, one decimal; n = finished/runs
    # ranked as `study` ranks: Retrain the reference, then by AUC gap among those within 5 test points
    assert [row[2] for row in rows] == ["ref", "2", "1"] and study["ranking"]["within"] == ["multidelete", "ft"]
    assert [row[0] for row in grid_rows(study, metrics, "rank", reverse=True)] == ["ft", "multidelete", "retrain"]
    by_auc = grid_rows(study, metrics, "df_dr_auc")
    assert [row[0] for row in by_auc] == ["ft", "retrain", "multidelete"]
    assert [row[0] for row in grid_rows(study, metrics, "df_dr_auc", reverse=True)] == ["multidelete", "retrain", "ft"]


def test_the_grid_shows_the_attacks_and_tolerance_of_the_study_command(tmp_home):
    """`study --attacks` printed each attack's recovery and a rank; the grid had neither (a TUI review)."""
    from screens.study_data import grid_metrics, grid_rows, header, load_study

    store = SessionStore()
    record = write_study(store)
    record.spec["tolerance"] = 0.5  # as `study --tolerance 0.5` plans it: ft (test gap 1.0) falls outside

    def attack(parent: str, fraction: float, points: float) -> str:
        writer = store.create({"kind": "attack", "method": "attack:relearn", "model": "clip-tiny",
                               "data": "shapes-tiny", "parent": parent})
        writer.finish("finished", summary={"headline": "df.r_mean", "attack": {"kind": "relearn", "params": {}},
                                           "recovery": {"fraction": fraction, "points": points, "unit": "points"}})
        return writer.session_id

    ft42, ft87 = record.cell("ft", 42)["session"], record.cell("ft", 87)["session"]
    record.set_attacks({ft42: {"relearn": attack(ft42, 0.25, 12.0)}, ft87: {"relearn": attack(ft87, 0.75, 20.0)}})
    study = load_study(store, STUDY_ID, None, {})
    ft = study["methods"]["ft"]
    assert ft["attack.relearn.recovery"]["mean"] == pytest.approx(0.5) and ft["attack.relearn.points"]["mean"] == 16.0
    assert header("attack.relearn.recovery") == "relearn recovery" and "attack.relearn.points" in grid_metrics(study)
    rows = {row[0]: row for row in grid_rows(study, grid_metrics(study))}
    column = 3 + grid_metrics(study).index("attack.relearn.recovery")
    assert rows["ft"][column] == "50.0 ± 35.4" and rows["multidelete"][column] == "-"
    assert study["ranking"]["tolerance"] == 0.5 and rows["ft"][2] == "over tol."
    # and the study's HTML report has the column too: it had no attack at all (a review of continual unlearning)
    from workbench.cli_report import study_html

    html = study_html(STUDY_ID, 0.5)
    assert "relearn recovery" in html and "50.0 ± 35.4" in html

    # and `study --json` names each cell's attack sessions (its cells listed none: a reader could not find them)
    from workbench.cli_study import report

    cells = [(method, seed, {}) for method in NUMBERS for seed in SEEDS]
    attacked = {ft42: {"relearn": {"recovery": 0.25, "points": 12.0, "session": "attack-ft42"}}}
    listed = {(c["method"], c["seed"]): c for c in report(record, cells, 0.5, attacked, ["relearn"])["cells"]}
    assert listed[("ft", 42)]["attacks"] == {"relearn": "attack-ft42"} and "attacks" not in listed[("ft", 87)]

    # the cell run again (its session deleted): the old session's attacks are not the new one's
    record.set_cell("ft", 42, finished_session(store, "ft", 42, NUMBERS["ft"][0]), "finished")
    assert "attacks" not in record.cell("ft", 42)
    record.cell("ft", 87)["session"] = record.cell("ft", 42)["session"]  # a record naming another cell's attack
    record.save()
    assert load_study(store, STUDY_ID, None, {})["methods"]["ft"].get("attack.relearn.recovery") is None


def test_forget_quality_shows_its_median_and_each_seed_and_sorts_by_the_median(tmp_home):
    from screens.study_data import grid_rows, load_study

    store = SessionStore()
    write_study(store)
    same = lambda a, b: 1.0 if a == b else 0.5 if a[0] > b[0] else 0.125  # noqa: E731  (a stand-in KS test)
    study = load_study(store, STUDY_ID, same, {})
    # ft's Df scores sit under Retrain's at both seeds (0.125 each); MultiDelete's above (0.5 each)
    assert study["methods"]["ft"]["forget_quality"] == {"median": 0.125, "per_seed": {"42": 0.125, "87": 0.125},
                                                        "n": 2}
    rows = grid_rows(study, ["forget_quality"], "forget_quality")
    assert [row[0] for row in rows] == ["ft", "multidelete", "retrain"]
    assert rows[0][3] == "0.12 (lower median of 0.12, 0.12)" and rows[2][3] == "1 (lower median of 1, 1)"


def test_a_cell_whose_session_was_deleted_is_left_out_and_the_rest_still_shown(tmp_home, tmp_path):
    """Deleting a study's Retrain session made its grid show only an error, its report fail (exit 2) and its list
    row still read 6/6: the cell kept its recorded `finished`."""
    from conftest import run_in_process
    from screens.study_data import list_studies, load_study, progress

    store = SessionStore()
    record = write_study(store)
    store.delete(record.cell("retrain", 42)["session"])
    study = load_study(store, STUDY_ID, None, {})
    assert progress(study) == "5 of 6 runs finished, 1 deleted since (the study runs them again)"
    assert study["methods"]["retrain"]["df_dr_auc"]["n"] == 1 and study["methods"]["ft"]["df_dr_auc"]["n"] == 2
    listed = next(row for row in list_studies(store) if row["id"] == STUDY_ID)
    assert sum(cell["state"] == "finished" for cell in listed["cells"]) == 5
    out = run_in_process(tmp_home, "sessions", "report", "--study", STUDY_ID, "--out", str(tmp_path / "r.html"))
    assert out.returncode == 0, out.stderr
    assert "gone" in (tmp_path / "r.html").read_text()   # the cell's state in the report's list of cells

def test_a_running_cell_counts_as_running_and_is_left_out_of_the_means(tmp_home):
    from screens.study_data import load_study, progress

    store = SessionStore()
    record = write_study(store, running=("multidelete", 87))
    study = load_study(store, STUDY_ID, None, {})
    assert progress(study) == "5 of 6 runs finished, 1 running"
    assert study["methods"]["multidelete"]["df_dr_auc"]["n"] == 1
    record.writer.finish("finished", summary={"metrics": {"df_dr_auc": 0.70}})
    study = load_study(store, STUDY_ID, None, {})
    assert progress(study) == "6 of 6 runs finished"
    assert study["methods"]["multidelete"]["df_dr_auc"]["mean"] == pytest.approx(0.68)


# --------------------------------------------------------------------------------------------------
# the screens


def grid_cells(screen) -> list[list[str]]:
    table = screen.query_one("#study-grid")
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def test_studies_from_home_grid_sorts_fills_in_live_and_opens_sessions(tmp_home):
    from screens.monitor import MonitorScreen
    from screens.studies import StudiesScreen
    from screens.study_grid import StudyGridScreen
    from screens.study_sessions import StudySessionsScreen

    store = SessionStore()
    record = write_study(store, running=("multidelete", 87))
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")                       # home -> Studies
        await wait_until(pilot, lambda: isinstance(app.screen, StudiesScreen)
                         and app.screen.query_one("#studies").row_count == 1)
        assert "5/6" in [str(c) for c in app.screen.query_one("#studies").get_row_at(0)]
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, StudyGridScreen) and app.screen.rows)
        grid = app.screen
        assert "1 running" in str(grid.query_one("#study-status").render())
        assert grid_cells(grid)[2][:4] == ["multidelete", "1/2", "1", "66.0"]  # one seed: no ±
        # the running cell finishes: the grid fills in without a key
        record.writer.finish("finished", summary={"metrics": {"df_dr_auc": 0.70, "test": {"r_mean": 50.0}}})
        await wait_until(pilot, lambda: grid_cells(grid)[2][:4] == ["multidelete", "2/2", "1", "68.0 ± 2.8"], timeout=10)
        assert "6 of 6 runs finished" in str(grid.query_one("#study-status").render())
        # sort by the column under the cursor (Df/Dr AUC), then reversed
        await pilot.press("right", "right", "right", "s")
        assert grid.sort_key == "df_dr_auc"
        assert [row[0] for row in grid_cells(grid)] == ["ft", "retrain", "multidelete"]
        await pilot.press("s")
        assert [row[0] for row in grid_cells(grid)] == ["multidelete", "retrain", "ft"]
        # a method's sessions, and the monitor from there
        await pilot.press("down", "enter")         # row 1 after the reversed sort: retrain
        await wait_until(pilot, lambda: isinstance(app.screen, StudySessionsScreen) and app.screen.cells)
        assert app.screen.method == "retrain"
        assert [c["seed"] for c in app.screen.cells] == [42, 87]
        shown = app.screen.query_one("#study-sessions", DataTable)
        assert [str(shown.get_row_at(i)[2]) for i in range(2)] == \
            [f"retrain s{seed} {c['session'][-4:]}" for seed, c in zip((42, 87), app.screen.cells)]  # names, not ids
        # the run's own seconds, as the home says (it showed the wall time from the session's start to its end)
        assert [str(shown.get_row_at(i)[5]) for i in range(2)] == ["10 s", "11 s"]  # 10.42 and 10.87
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen))
        await wait_until(pilot, lambda: app.screen.model.x == 4)
        assert app.screen.source.session_id == app.screen_stack[-2].cells[0]["session"]
        assert "device cpu" in str(app.screen.query_one("#mon-status").render())


class FakeLaunch:
    """A started study as the services hand it back (screens.services.StudyLaunch)."""

    def __init__(self, study_id: str | None = STUDY_ID, code: int | None = None, error: str | None = None):
        self.id, self.code, self.message = study_id, code, error

    def poll(self):
        return self.code

    def study_id(self):
        return self.id

    def error(self):
        return self.message if self.code not in (None, 0) else None


async def test_study_form_launches_the_study_and_opens_its_grid(tmp_home):
    from screens.study_form import StudyFormScreen
    from screens.study_grid import StudyGridScreen

    write_study(SessionStore())
    launched: list[list[str]] = []
    app = create_app(start_engine=False)
    app.services.study_launcher = lambda args: launched.append(args) or FakeLaunch()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, StudyFormScreen))
        form = app.screen
        form.query_one("#methods").value = "ft, nope"
        await pilot.press("ctrl+s")
        error = form.query_one("#err-methods")
        assert "unknown method 'nope'" in str(error.render()) and error.display and launched == []
        form.query_one("#methods").value = "ft,neggrad"
        form.query_one("#seeds").value = "42,7"
        form.query_one("#flags").value = "--epochs 1 --lr 1e-4"
        form.query_one("#del-n").value = "10"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, StudyGridScreen) and app.screen.rows)
        assert launched == [["--methods", "ft,neggrad", "--seeds", "42,7", "--model", "clip-tiny", "--data",
                             "shapes-tiny", "--device", "auto", "--delete", "10", "--epochs", "1", "--lr", "1e-4"]]
        assert app.screen.study_id == STUDY_ID and app.studies == {STUDY_ID: app.studies[STUDY_ID]}


async def test_study_form_shows_the_study_commands_one_line_error(tmp_home):
    from screens.study_form import StudyFormScreen

    app = create_app(start_engine=False)
    app.services.study_launcher = lambda args: FakeLaunch(None, 2, "--tolerance must be a number of points >= 0")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, StudyFormScreen))
        await pilot.press("ctrl+s")
        error = app.screen.query_one("#form-error")
        await wait_until(pilot, lambda: "--tolerance must be" in str(error.render()))
        assert isinstance(app.screen, StudyFormScreen) and not app.screen.query_one("#submit").disabled


async def test_toasts_when_a_run_or_a_study_ends_elsewhere(tmp_home):
    from screens.monitor import MonitorScreen
    from screens.studies import StudiesScreen

    store = SessionStore()
    seen = store.create({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny"}, name="watched")
    other = store.create({"method": "npo", "model": "clip-tiny", "data": "shapes-tiny"}, name="elsewhere")
    seen.flush()
    other.flush()
    toasts: list[tuple[str, str]] = []
    app = create_app(start_engine=False)
    app.watch_seconds = 0.1
    app.notify = lambda message, *, title="", severity="information", timeout=None, markup=True: \
        toasts.append((message, severity))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.seen_states is not None and len(app.seen_states) == 2)
        from sessions.source import StoredSource

        await app.push_screen(MonitorScreen(StoredSource(seen.session_id, store, follow=True), replay=False))
        seen.finish("finished", summary={"metrics": {"df_dr_auc": 0.61}})   # on screen: no toast
        await wait_until(pilot, lambda: app.seen_states[seen.session_id] == "finished")
        await app.push_screen(StudiesScreen(app.services))
        other.finish("failed", message="loss became NaN at step 3")         # elsewhere: a toast
        await wait_until(pilot, lambda: len(toasts) == 1)
        assert toasts == [("npo elsewhere failed: loss became NaN at step 3", "error")]
        app.watch_study(STUDY_ID, FakeLaunch(code=0))
        await wait_until(pilot, lambda: len(toasts) == 2)
        assert toasts[1] == (f"study {STUDY_ID} finished", "information") and app.studies == {}


def test_study_args_are_the_study_commands():
    from screens.study_form import FormError, study_args

    values = {"methods": "retrain, ft", "seeds": "42, 7", "model": "blip-tiny", "data": "shapes-ve",
              "task": "classification", "device": "cpu", "requests": "2", "tolerance": "3", "flags": "--ukr-on dr"}
    assert study_args(values, {"strategy": "query", "query": "red circle", "n": None}) == [
        "--methods", "retrain,ft", "--seeds", "42,7", "--model", "blip-tiny", "--data", "shapes-ve", "--device", "cpu",
        "--task", "classification", "--delete-query", "red circle", "--requests", "2", "--tolerance", "3",
        "--ukr-on", "dr"]
    assert study_args({**values, "requests": "", "tolerance": "", "flags": ""},
                      {"strategy": "ids", "file": "/tmp/ids.txt", "n": 5})[-4:] == [
        "--delete", "5", "--delete-ids", "/tmp/ids.txt"]
    assert study_args({**values, "attacks": "quantize, rephrase,quantize", "flags": ""},
                      {"strategy": "random", "n": 4})[-2:] == ["--attacks", "quantize,rephrase"]
    # the lists are read as `study` reads them: `42,,87` and a repeated seed were passed on here (a review)
    for field, value, words in (("seeds", "42,x", "whole number"), ("seeds", "42,,87", "an empty entry"),
                                ("seeds", "42,42", "given twice"), ("methods", "ft,,npo", "an empty entry"),
                                ("flags", "--lr '1e-4", "quotation"),
                                ("flags", "--json", "leave out --json"), ("attacks", "quantise", "unknown attack")):
        with pytest.raises(FormError, match=words) as caught:
            study_args({**values, field: value}, {"strategy": "random", "n": 4})
        assert caught.value.field == field


def test_engine_study_says_the_study_commands_one_line_error(tmp_home):
    """The form's study is planned here as `study` plans it, and refused in one line before the engine is asked
    (no engine starts: nothing under $MMUL_HOME/engine)."""
    from workbench.study_launch import EngineStudy

    launch = EngineStudy(["--methods", "nope", "--model", "clip-tiny", "--data", "shapes-tiny"], tmp_home)
    assert launch.wait(timeout=60) == 2 and launch.poll() == 2 and launch.study_id() is None
    assert launch.error().startswith("--methods: unknown method 'nope'")
    bad = EngineStudy(["--methods", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--tolerance", "-1"],
                      tmp_home)
    assert bad.wait(timeout=60) == 2 and bad.error() == "--tolerance must be a number of points >= 0, got -1.0"
    assert not (tmp_home / "engine").exists()


def test_a_form_study_with_attacks_runs_them_once_the_engine_has_finished_it(tmp_home, monkeypatch):
    """The New-study form had no attacks: `study --attacks` runs them client-side after the engine, and the TUI
    never imports torch. The launch now runs `study ARGS --engine` as a child once the engine is done (the engine
    finds every cell finished, the child attacks them); closing the TUI stops that child."""
    import threading

    import workbench.client.follow as follow
    import workbench.study_launch as study_launch

    started, release = [], threading.Event()

    class Child:   # `study ... --engine` as a process: it says what it says on stderr, and ends with its code
        def __init__(self, command, stderr, **options):
            self.command, self.options, self.stderr, self.code = command, options, stderr, None
            started.append(self)

        def wait(self):
            release.wait(timeout=60)
            self.stderr.write(outcome[1])
            self.stderr.flush()
            self.code = outcome[0]
            return self.code

        def poll(self):
            return self.code

        def terminate(self):
            outcome[:] = [130, "error: cancelled (session 20261207-101010-abcd kept)\n"]
            release.set()

    monkeypatch.setattr(follow, "submit_study_and_follow",
                        lambda study, spec, cells, on_event, on_accepted, home: on_accepted({}) or {"state": "finished"})
    monkeypatch.setattr(study_launch.subprocess, "Popen", Child)
    args = ["--methods", "retrain,ft", "--seeds", "42", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "8",
            "--attacks", "quantize"]
    outcome = [1, "study attacks: 2 to go\nerror: quantize attack failed: out of memory\n"]
    release.set()
    failed = study_launch.EngineStudy(args, tmp_home)
    assert failed.wait(timeout=60) == 1 and failed.error() == "quantize attack failed: out of memory"
    child = started[-1]
    assert child.command[1:] == ["-m", "workbench.cli", "study", *args, "--engine"]
    assert child.options["env"]["MMUL_HOME"] == str(tmp_home)
    assert (tmp_home / "studies" / f"{failed.study_id()}.attacks.log").read_text().endswith("out of memory\n")

    release.clear()
    outcome = [0, ""]
    running = study_launch.EngineStudy(args[:-2] + ["--attacks=quantize"], tmp_home)   # as the flags field writes it
    wait_for(lambda: len(started) == 2, what="the attack child")
    running.stop()   # the TUI closes
    assert running.wait(timeout=60) == 130 and "cancelled" in running.error()

    plain = study_launch.EngineStudy(args[:-2], tmp_home)   # no attacks: no child
    assert plain.wait(timeout=60) == 0 and len(started) == 2


async def test_closing_the_tui_stops_a_studys_attacks(tmp_home):
    stopped = []

    class Launch:
        def poll(self):
            return None

        def stop(self):
            stopped.append(True)

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE):
        app.watch_study(STUDY_ID, Launch())
    assert stopped == [True]


async def test_a_studys_cells_get_no_toast_each_the_study_gets_one(tmp_home):
    """Issue 25: a toast for every study cell; now the cells are quiet and the study toasts once when it ends."""
    from screens.studies import StudiesScreen
    from sessions.study import cell_name, study_of

    assert study_of(cell_name(STUDY_ID, "ft", 42)) == STUDY_ID and study_of("ft baseline") is None
    store = SessionStore()
    cells = [store.create({"method": m, "model": "clip-tiny", "data": "shapes-tiny"}, name=cell_name(STUDY_ID, m, 42))
             for m in ("retrain", "ft")]
    run = store.create({"method": "npo", "model": "clip-tiny", "data": "shapes-tiny"}, name="alone")
    for writer in (*cells, run):
        writer.flush()
    toasts: list[str] = []
    app = create_app(start_engine=False)
    app.watch_seconds = 0.1
    app.notify = lambda message, *, title="", severity="information", timeout=None, markup=True: \
        toasts.append(message)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.seen_states is not None and len(app.seen_states) == 3)
        await app.push_screen(StudiesScreen(app.services))
        launch = FakeLaunch(code=None)
        app.watch_study(STUDY_ID, launch)
        for writer in cells:
            writer.finish("finished", summary={"metrics": {"df_dr_auc": 0.6}})
        run.finish("finished", summary={"metrics": {"df_dr_auc": 0.61}})
        await wait_until(pilot, lambda: app.seen_states[run.session_id] == "finished")
        assert toasts == ["npo alone finished: Df/Dr AUC 61.0"]       # the lone run only
        launch.code = 0
        await wait_until(pilot, lambda: len(toasts) == 2)
        assert toasts[1] == f"study {STUDY_ID} finished"


async def test_deleting_a_studys_cell_from_home_says_what_the_study_loses(tmp_home):
    """`sessions delete` refuses a study's cell without --force; the home's d asked the same as for any session."""
    from screens.widgets.confirm import ConfirmScreen

    store = SessionStore()
    record = write_study(store)
    cell = record.cell("retrain", 42)["session"]
    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one("#sessions", DataTable)
        await wait_until(pilot, lambda: table.row_count == 6)
        table.move_cursor(row=next(i for i, row in enumerate(app.screen.shown) if row["id"] == cell))
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert f"It is the cell retrain s42 of {STUDY_ID}" in app.screen.question


async def test_the_grid_scrolled_sideways_never_shows_part_of_a_number(tmp_home):
    """At 80x24, Right past the screen's edge showed `retrain 0.5 ± 2.7` for 80.5 ± 2.7: Textual scrolls by the
    character, and the column under the fixed method column lost its first digits; the right edge cut another."""
    from screens.study_grid import StudyGridScreen
    from screens.widgets.column_table import ColumnTable

    write_study(SessionStore())
    app = create_app(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        await wait_until(pilot, lambda: app.screen.query_one("#studies").row_count == 1)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, StudyGridScreen) and app.screen.rows)
        table = app.screen.query_one("#study-grid", ColumnTable)
        assert table.max_scroll_x > 0, "the grid must be wider than the screen for this test"
        shown = table.whole_width()   # and the column the right edge cuts is left blank (`52.0` read `5`)
        assert shown is not None and all(not table.render_line(y).text[shown:].strip() for y in range(4))
        assert table.render_line(1).text[:shown].strip()
        seen = set()
        for _ in range(len(table.columns) + 2):
            await pilot.press("right")
            await pilot.pause()
            assert table.scroll_x in table.column_starts()
            seen.add(table.scroll_x)
        assert len(seen) > 1   # it did scroll
        status = app.screen.query_one("#study-status")
        await wait_until(pilot, lambda: "← " in str(status.render()))   # scrolled: columns left of the view counted
        for _ in range(len(table.columns) + 2):
            await pilot.press("left")
            await pilot.pause()
            assert table.scroll_x in table.column_starts()
        assert table.scroll_x == 0
        # the columns past the right edge are named (forget quality and MIA sat there with nothing saying so)
        _, right = table.columns_out_of_view()
        assert right and "← " not in str(status.render())
        await wait_until(pilot, lambda: f"→ {right[0]}" in str(status.render()))


def test_the_studies_list_leaves_out_whole_columns_that_do_not_fit_and_names_them():
    """At 80 columns the list scrolled sideways and its edge cut values mid-word (`delet`, `rando`)."""
    from screens.home_table import cell_widths, fit_columns
    from screens.studies import COLUMNS, PRIORITY

    row = ("study-0123456789ab", "6/6", "retrain,ft,multidelete", "clip-tiny", "shapes-tiny", "random 16", "42,87,21",
           "12-07 16:00")
    widths = cell_widths(COLUMNS, [row])
    assert fit_columns(widths, 200, PRIORITY, COLUMNS) == list(COLUMNS)
    narrow = fit_columns(widths, 78, PRIORITY, COLUMNS)
    assert narrow == ["study", "runs", "methods", "model", "data"] and sum(widths[c] for c in narrow) <= 78


async def test_a_study_that_cannot_be_read_says_why_in_the_grids_status_line(tmp_home):
    """The status line's columns-out-of-view part (written on a resize or a scroll) wrote the plain status over a load's
    error: a bad study id read as its bare id (a review)."""
    from screens.study_grid import StudyGridScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = StudyGridScreen("nosuchstudy", app.services)
        await app.push_screen(screen)
        status = screen.query_one("#study-status")
        await wait_until(pilot, lambda: screen.error is not None)
        screen.show_status()   # as a resize or a scroll calls it
        await pilot.pause()
        assert screen.error in str(status.render()) and "nosuchstudy" in str(status.render())
