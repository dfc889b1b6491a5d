"""The sessions home: columns that fit 80 and 120 columns (whole columns dropped by priority, no value cut),
a colour per state, request and PULSE runs told apart in their row, and the highlighted session's verdict."""
from __future__ import annotations

import pytest

from conftest import wait_until
from screens.home_table import COLUMNS, PRIORITY, column_widths, fit_columns, kind_label, row_cells
from sessions.store import SessionStore
from sessions.verdict import session_verdict
from workbench.tui import create_app

BASE = {"model": "blip-tiny", "data": "shapes-tiny", "deletion": {"strategy": "random", "n": 8, "seed": 0},
        "device": "cpu"}


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    return tmp_path


def write(store: SessionStore, name: str, method: str, state: str = "finished", summary: dict | None = None,
          **spec) -> str:
    writer = store.create({"method": method, **BASE, **spec}, name=name)
    writer.emit("step", step=0, phase="unlearn", lr=1e-3, losses={"total": 1.0})
    if summary is None and state == "finished":
        summary = {"metrics": {"df_dr_auc": 0.52, "test": {"r_mean": 46.25}}}
    if state == "running":
        return writer.session_id  # left open: a live session
    writer.finish(state, summary=summary, message=None if state == "finished" else f"{state} at step 1")
    return writer.session_id


def write_home(store: SessionStore) -> dict[str, str]:
    return {
        "single": write(store, "single-run", "multidelete", kind="run", requests=1),
        "requests": write(store, "three-requests", "npo", kind="run", requests=3),
        "pulse": write(store, "pulse-people", "ga", kind="pulse", requests=2, forget=4),
        "failed": write(store, "md-lr-high", "multidelete", state="failed"),
        "cancelled": write(store, "npo-try", "npo", state="cancelled"),
    }


def screen_lines(table) -> list[str]:
    """The table's lines as drawn (header first)."""
    return [table.render_line(y).text for y in range(table.size.height)]


def test_fit_columns_drops_the_lowest_priority_first():
    widths = {name: 10 for name in COLUMNS}
    assert fit_columns(widths, 10 * len(COLUMNS)) == list(COLUMNS)
    kept = fit_columns(widths, 10 * 5 + 9)  # room for five whole columns, not six
    assert set(kept) == set(PRIORITY[:5]) and kept == [c for c in COLUMNS if c in kept]
    # a wide high-priority column is not skipped to keep a narrower lower one
    widths["session"] = 40
    kept = fit_columns(widths, 40 + 10 * 4)
    assert set(kept) == set(PRIORITY[:5])
    assert set(fit_columns(widths, 1)) == {"session", "status"}  # the two that always stay
    # a column too wide for what is left is hidden, and the lower ones that fit stay: one long data path hid the
    # model, started and deletion columns behind it
    widths = {name: 10 for name in COLUMNS} | {"data": 60}
    kept = fit_columns(widths, 10 * (len(COLUMNS) - 1))
    assert "data" not in kept and set(kept) == set(COLUMNS) - {"data"}


def test_kind_tells_request_and_pulse_runs_apart():
    assert kind_label({"kind": "run", "requests": 1}) == "run"
    assert kind_label({"kind": "run", "requests": 5}) == "k=5"
    assert kind_label({"kind": "pulse", "requests": 1}) == "pulse"
    assert kind_label({"kind": "pulse", "requests": 3}) == "pulse k=3"
    # a row from before the catalog kept the spec's requests: counted from the summary's request entries
    assert kind_label({"summary": {"requests": [{}, {}]}}) == "k=2"
    assert kind_label({}) == "run"
    # an attack read "run", its method "attack:quantize"; and at 80 columns a "pulse k=2" row's kind took the room
    # of the test column (`hidden: test, model +4`): the results come before the kind now
    attack = {"id": "20261207-050818-053e", "kind": "attack", "method": "attack:quantize", "state": "interrupted"}
    assert kind_label(attack) == "attack" and row_cells(attack, False)["method"] == "quantize"
    pulse = {"id": "20261207-050818-0540", "name": "a rather long session name here", "kind": "pulse", "requests": 2,
             "method": "multidelete", "state": "interrupted"}
    kept = fit_columns(column_widths([row_cells(pulse, False), row_cells(attack, False)]), 78)
    assert {"Df/Dr AUC", "test"} <= set(kept)


@pytest.mark.parametrize("size", [(80, 24), (120, 30)])
async def test_home_table_fits_without_cutting_a_value(tmp_home, size):
    store = SessionStore()
    ids = write_home(store)
    app = create_app(start_engine=False)
    async with app.run_test(size=size) as pilot:
        home = app.screen
        table = home.query_one("#sessions")
        await wait_until(pilot, lambda: table.row_count == len(ids))
        await pilot.pause()
        shown = [str(column.label) for column in table.columns.values()]
        hidden = [c for c in COLUMNS if c not in shown]
        # the dropped columns are the lowest-priority ones, the shown keep their display order
        assert set(hidden) == set(PRIORITY[len(PRIORITY) - len(hidden):])
        assert shown == [c for c in COLUMNS if c in shown]
        assert "session" in shown and "status" in shown and "kind" in shown
        if size[0] == 120:  # the issue saw started and duration off-screen at 120 columns
            assert "started" in shown and "duration" in shown and "Df/Dr AUC" in shown
        else:
            assert len(hidden) >= 3
        # nothing lies beyond the right edge, and every shown cell's whole value is on its row's line
        assert table.virtual_size.width <= table.scrollable_content_region.width
        lines = screen_lines(table)
        for index, row in enumerate(home.shown):
            for name in shown:
                value = str(table.get_cell(row["id"], table.columns[_key(table, name)].key))
                assert value.strip() in lines[index + 1], (name, value, lines[index + 1])
        kinds = {row["name"]: str(table.get_cell(row["id"], _key(table, "kind"))) for row in home.shown}
        assert kinds["three-requests"] == "k=3" and kinds["pulse-people"] == "pulse k=2"
        assert kinds["md-lr-high"] == "run"


def _key(table, label: str):
    return next(key for key, column in table.columns.items() if str(column.label) == label)


async def test_each_state_has_its_own_colour(tmp_home):
    store = SessionStore()
    write_home(store)
    write(store, "live-one", "ft", state="running")
    app = create_app(start_engine=False)
    async with app.run_test(size=(120, 30)) as pilot:
        home = app.screen
        table = home.query_one("#sessions")
        await wait_until(pilot, lambda: table.row_count == 6)
        colours = {}
        for row in home.shown:
            cell = table.get_cell(row["id"], _key(table, "status"))
            colours[str(cell)] = cell.style.color
        assert set(colours) == {"finished", "failed", "cancelled", "running"}
        assert None not in colours.values()
        assert len(set(colours.values())) == 4


async def test_the_highlighted_session_shows_its_verdict(tmp_home):
    store = SessionStore()
    summary = {"metrics": {"df_dr_auc": 0.52, "test": {"r_mean": 46.25}},
               "original_metrics": {"df_dr_auc": 0.91, "test": {"r_mean": 50.0}}, "seconds": 1.5, "steps": 12}
    requests_summary = {**summary, "requests": [
        {"request": 1, "metrics": {"df_dr_auc": 0.7, "test": {"r_mean": 49.0}}, "seconds": 0.5, "steps": 4},
        {"request": 2, "metrics": {"df_dr_auc": 0.52, "test": {"r_mean": 46.25}}, "seconds": 1.0, "steps": 8}]}
    single = write(store, "single", "multidelete", summary=summary)
    stepped = write(store, "stepped", "npo", summary=requests_summary, requests=2)
    failed = write(store, "broken", "ft", state="failed")
    attack = store.create({"kind": "attack", "method": "attack:quantize", "model": "clip-tiny", "data": "shapes-tiny",
                           "parent": single, "attack": {"kind": "quantize", "params": {"bits": 4}}})
    attack.finish("finished", summary={"attack": {"kind": "quantize", "params": {"bits": 4}},
                                       "recovery": {"points": 12.0, "fraction": 0.25, "gap": 48.0}})
    app = create_app(start_engine=False)
    async with app.run_test(size=(120, 30)) as pilot:
        home = app.screen
        table = home.query_one("#sessions")
        detail = home.query_one("#home-detail")
        await wait_until(pilot, lambda: table.row_count == 4)
        await wait_until(pilot, lambda: home.current_id() is not None)
        if home.current_id() == attack.session_id:  # the newest first: start at the runs
            await pilot.press("down")
        seen: dict[str, str] = {}
        for _ in range(3):
            sid = home.current_id()
            expected = session_verdict(store, store.get(sid))
            await wait_until(pilot, lambda: all(line in str(detail.render()) for line in expected)
                             and (expected or "failed at step 1" in str(detail.render())))
            seen[sid] = str(detail.render())
            await pilot.press("down")
        assert "forget: Df/Dr AUC 91.0 -> 52.0" in seen[single] and "cost 1.5 s, 12 steps" in seen[single]
        assert "request 1/2: forget: Df/Dr AUC 91.0 -> 70.0" in seen[stepped]
        assert "request 2/2: " in seen[stepped] and "k=2 npo" in seen[stepped]
        assert "failed at step 1" in seen[failed]
        assert f"attack {attack.session_id} quantize (bits 4) finished: recovered 25%" in seen[single]



async def test_the_detail_takes_its_form_for_the_size_when_the_terminal_is_resized(tmp_home):
    """Shrunk to 80x24, a sequence's detail kept its three-request form, cut after the oldest; it was redrawn
    only when the cursor moved."""
    store = SessionStore()
    summary = {"metrics": {"df_dr_auc": 0.52, "test": {"r_mean": 46.25}}, "original_metrics": {"df_dr_auc": 0.91},
               "requests": [{"request": r, "metrics": {"df_dr_auc": 0.5 + r / 100}, "seconds": 0.5, "steps": 4}
                            for r in (1, 2, 3)]}
    write(store, "three", "npo", summary=summary, requests=3)
    app = create_app(start_engine=False)
    async with app.run_test(size=(120, 30)) as pilot:
        detail = app.screen.query_one("#home-detail")
        await wait_until(pilot, lambda: "request 1/3" in str(detail.render()))
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: "request 1/3" not in str(detail.render())
                         and "request 3/3" in str(detail.render()))
        await pilot.resize_terminal(120, 30)
        await wait_until(pilot, lambda: "request 1/3" in str(detail.render()))


async def test_the_home_folds_for_80x24_when_the_terminal_shrank_under_another_screen(tmp_home):
    """Shrunk to 80x24 while Help (or a monitor) was open, the home came back with its header and boxed filter, and
    about nine rows of table (a review)."""
    from textual.widgets import Header

    app = create_app(start_engine=False)
    async with app.run_test(size=(120, 40)) as pilot:
        home = app.screen
        await pilot.press("f1")
        await wait_until(pilot, lambda: app.screen is not home)
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: app.has_class("-compact"))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is home)
        await wait_until(pilot, lambda: home.query_one(Header).styles.display == "none")


def test_at_80x24_a_sessions_attacks_take_one_line():
    """The four-line detail cut an attack's line mid-sentence, and showed none of a second one."""
    from sessions.attacks import attacks_brief

    entries = [{"kind": "relearn", "state": "finished", "recovery": 0.61, "points": 12.0},
               {"kind": "quantize", "state": "finished", "recovery": None, "points": 1.25},
               {"kind": "rephrase", "state": "running", "recovery": None, "points": None}]
    assert attacks_brief(entries) == "attacks: relearn 61% back, quantize no gap (1.2 points), rephrase running"
    assert attacks_brief([]) is None


async def test_the_delete_question_wraps_whole_words_at_80_columns(tmp_home):
    from screens.widgets.confirm import ConfirmScreen

    store = SessionStore()
    sid = write(store, "a-rather-long-session-name", "multidelete")
    app = create_app(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#sessions")
        await wait_until(pilot, lambda: table.row_count == 1)
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = app.screen.query_one("#question")
        await wait_until(pilot, lambda: question.size.height > 1)
        lines = [question.render_line(y).text.strip() for y in range(question.size.height)]
        assert " ".join(lines) == f"Delete session a-rather-long-session-name ({sid}, multidelete, finished)? " \
                                  "Its files are removed."
        await pilot.press("escape")
        # a session without a name is named by its id, once ("Delete session ID (, npo, finished)?" before)
        unnamed = write(store, None, "npo")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen) and table.row_count == 2)
        table.move_cursor(row=0)  # the newest first
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = app.screen.query_one("#question")
        await wait_until(pilot, lambda: question.size.height > 1)
        lines = [question.render_line(y).text.strip() for y in range(question.size.height)]
        assert " ".join(lines) == f"Delete session {unnamed} (npo, finished)? Its files are removed."


def test_duration_is_what_sessions_list_says():
    """The CLI said "took 1.0 s" and the home "30 s" for one run: both now show the run's own seconds."""
    from screens.home import sort_rows
    from screens.home_table import row_cells

    row = {"id": "a", "state": "finished", "created": 100.0, "ended": 130.0, "summary": {"seconds": 1.0}}
    from sessions.numbers import format_duration

    assert row_cells(row, False)["duration"] == format_duration(1.0) == "1 s"  # not the 30 s from start to end
    slow = {"id": "b", "state": "finished", "created": 100.0, "ended": 105.0, "summary": {"seconds": 4.0}}
    assert [r["id"] for r in sort_rows([slow, row], "duration", reverse=False)] == ["a", "b"]


def test_s_sorts_by_kind_too():
    """`s` went from status to method past the kind column; k=10 sorts after k=5, pulse runs after runs."""
    from screens.home import SORTS, sort_rows
    from screens.home_table import kind_label

    assert SORTS.index("kind") == SORTS.index("status") + 1
    rows = [{"id": "p", "kind": "pulse", "requests": 2}, {"id": "k10", "requests": 10},
            {"id": "one"}, {"id": "k5", "requests": 5}]
    assert [kind_label(r) for r in sort_rows(rows, "kind", reverse=False)] == ["run", "k=5", "k=10", "pulse k=2"]


async def test_the_highlight_stays_on_its_session_when_a_new_one_arrives(tmp_home):
    """A session created elsewhere (a CLI run) lands at the top; the highlighted row keeps its session, not its row
    number, so `enter`, `d` and `x` still act on what the operator chose."""
    store = SessionStore()
    first, second = write(store, "first", "multidelete"), write(store, "second", "ft")
    app = create_app(start_engine=False)
    async with app.run_test(size=(100, 30)) as pilot:
        home = app.screen
        table = home.query_one("#sessions")
        await wait_until(pilot, lambda: table.row_count == 2 and home.current_id() == second)
        await pilot.press("down")
        await wait_until(pilot, lambda: home.current_id() == first)
        write(store, "third", "npo")
        await wait_until(pilot, lambda: table.row_count == 3)
        assert home.current_id() == first and table.cursor_row == 2
        assert str(home.query_one("#home-detail").render()).startswith("first: ")


def test_a_long_session_name_is_cut_with_its_ids_end_so_the_results_keep_their_room():
    from screens.home_table import SESSION_WIDTH, session_cell

    row = {"id": "20261207-050818-053e", "name": "a very long name of a session that goes on"}
    cell = session_cell(row)
    assert len(cell) == SESSION_WIDTH and cell.endswith("… 053e") and cell.startswith("a very long name")
    # a study's cell reads as its method and seed, with the study's id begun (cut, it hid both at 25 characters)
    assert session_cell({"id": "20261207-050818-053e", "name": "study-7361fbc06e56 ft s1"}) == "ft s1 · 7361"
    assert session_cell({"id": "20261207-050818-053e", "name": "study-5075b61b385e multidelete s42"}) == \
        "multidelete s42 · 5075"
    assert session_cell({"id": "20261207-050818-053e", "name": "study-5075b61b385e mmunlearner s100"}) == \
        "mmunlearner s100 · 5075"   # a long method and seed: whole
    assert session_cell({"id": "20261207-050818-053e"}) == "20261207-050818-053e"
    widths = column_widths([row_cells({**row, "state": "finished", "method": "ft"}, False)])
    assert "test" in fit_columns(widths, 78)  # at 80 columns the result stays (a 43-character name hid it)


def test_the_deletion_is_named_as_far_as_the_spec_says_it():
    """A study's protocol has no seed (each cell draws with its own): no dangling "s"; a PULSE run has no deletion
    spec (its people are in its verdict): the detail leaves the word out."""
    from screens.home import detail_text
    from sessions.summary import format_deletion

    assert format_deletion({"strategy": "random", "n": 8, "seed": 3}) == "random 8 s3"
    assert format_deletion({"strategy": "random", "n": 8}) == "random 8"
    pulse = {"id": "20261207-000000-abcd", "state": "finished", "kind": "pulse", "method": "ga",
             "model": "llava-tiny", "data": "people-tiny"}
    assert detail_text(pulse, []).splitlines()[0].endswith("on llava-tiny / people-tiny, forgets known people")
    # what a PULSE run forgot: its people, or their facts (the deletion column was blank for it)
    from screens.home_table import deletion_cell

    assert detail_text({**pulse, "forget": 4, "granularity": "fact"}, []).splitlines()[0].endswith(", forgets 4 facts")
    assert deletion_cell({**pulse, "forget": 2, "granularity": None}) == "2 people"
    assert deletion_cell({**pulse, "forget": 2}) == "forget 2"  # an older row: it does not say which
    assert deletion_cell({"deletion": {"strategy": "random", "n": 8, "seed": 3}}) == "random 8 s3"


def test_at_80x24_a_request_runs_detail_keeps_its_last_request_whole():
    from screens.home import detail_text

    row = {"id": "20261207-000000-abcd", "name": "seq-ft", "state": "finished", "method": "ft", "requests": 2,
           "model": "clip-tiny", "data": "shapes-tiny", "deletion": {"strategy": "random", "n": 8, "seed": 1}}
    verdict = ["request 1/2: forget: Df/Dr AUC 52.2 -> 53.6", "request 2/2: forget: Df/Dr AUC 52.2 -> 54.9"]
    assert detail_text(row, verdict).splitlines()[1:] == verdict[::-1]  # newest first
    assert detail_text(row, verdict, compact=True).splitlines()[1:] == [verdict[1]]


async def test_shift_r_resumes_a_stopped_request_run_in_the_engine_and_says_why_not_otherwise(tmp_home):
    """`mmul-workbench resume` from the home: the stopped run's spec goes to the engine with `resumes` naming it,
    and the monitor follows the new session; a run that cannot resume says why, and nothing is sent."""
    from screens.monitor import MonitorScreen

    store = SessionStore()
    single = write(store, "one-request", "npo", state="cancelled", kind="run", requests=1)
    stopped = write(store, "ten-requests", "npo", state="cancelled", kind="run", requests=10)
    app = create_app(start_engine=False)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one("#sessions")
        await wait_until(pilot, lambda: table.row_count == 2)
        sent = []

        async def submit(spec):
            sent.append(spec)
            return {"session": single, "device": "cpu"}   # a session the monitor can open
        app.screen.services.submit = submit
        table.move_cursor(row=1)  # the older: a single request
        await pilot.press("R")
        await wait_until(pilot, lambda: any(f"session {single} is not a run of K > 1 requests" in str(n.message)
                                            for n in app._notifications))
        table.move_cursor(row=0)
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen))
        assert [spec["resumes"] for spec in sent] == [{"session": stopped}]
        assert sent[0]["requests"] == 10 and sent[0]["method"] == "npo"


async def test_a_stopped_runs_detail_names_the_run_that_went_on_from_it(tmp_home):
    """A cancelled run resumed by another said only 'cancelled by request' on the home; `sessions show` named the
    session that went on from it."""
    store = SessionStore()
    spec = {"method": "ga", "model": "clip-tiny", "data": "shapes-tiny", "requests": 4}
    stopped = store.create(spec, name="seq")
    stopped.emit("artifact", name="resume_point", request=2, path="/nowhere")
    stopped.finish("cancelled", message="cancelled by request")
    resumed = store.create({**spec, "resumes": {"session": stopped.session_id, "request": 2}}, name="seq (resumed)")
    resumed.finish("finished", summary={"metrics": {"df_dr_auc": 0.6}})
    app = create_app(start_engine=False)
    async with app.run_test(size=(120, 30)) as pilot:
        home = app.screen
        detail = home.query_one("#home-detail")
        await wait_until(pilot, lambda: home.query_one("#sessions").row_count == 2)
        home.query_one("#sessions").move_cursor(row=[r["id"] for r in home.shown].index(stopped.session_id))
        await wait_until(pilot, lambda: f"resumed by session {resumed.session_id} (finished)" in str(detail.render()))
        assert "cancelled by request" in str(detail.render())


def test_a_verdict_cut_by_its_box_ends_in_an_ellipsis():
    """The home's detail at 80x24 ended `keep: test r_mean 53.4 -> 48.2, Dr r_mean 84.0 -> 72.8,` and the monitor's
    verdict `holdout id r_mean`: cut mid-sentence with nothing saying so (a review)."""
    from screens.widgets.clamped import clamped_rows

    text = "head line\nforget: Df/Dr AUC 51.9 -> 53.8, Df r_mean 85.6 -> 77.5; keep: test r_mean 59.7 -> 51.7"
    assert clamped_rows(text, 30, None)[0] == "head line" and all(len(row) <= 30 for row in clamped_rows(text, 30, None))
    rows = clamped_rows(text, 30, 3)
    assert len(rows) == 3 and rows[-1].endswith("…") and all(len(row) <= 30 for row in rows)
    assert clamped_rows(text, 200, 3) == text.splitlines()   # it fits: nothing cut, no ellipsis


async def test_the_homes_detail_at_80x24_ends_in_an_ellipsis_where_its_box_cuts_it(tmp_home):
    store = SessionStore()
    groups = ("df", "test", "dr", "holdout_identity", "holdout_association")
    summary = {"metrics": {"df_dr_auc": 0.52, **{group: {"r_mean": 46.25} for group in groups}},
               "original_metrics": {"df_dr_auc": 0.91, **{group: {"r_mean": 80.0} for group in groups}}}
    write(store, "a run with a verdict longer than the four rows its box has at eighty columns", "ft", summary=summary)
    app = create_app(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = app.screen.query_one("#home-detail")
        await wait_until(pilot, lambda: "forget" in detail.text)
        await wait_until(pilot, lambda: detail.size.height > 0)
        shown = [line.text for line in (detail.render_line(y) for y in range(detail.size.height))]
        assert len(detail.text.splitlines()) < len(clamped_rows_of(detail)) and shown[-1].rstrip().endswith("…")


def clamped_rows_of(widget) -> list[str]:
    from screens.widgets.clamped import clamped_rows

    return clamped_rows(widget.text, widget.content_region.width, None)


async def test_the_hint_line_fits_80_columns_with_marks_and_names_its_sort_as_its_column(tmp_home):
    """At 80x24 with two marks the hint ended `hidden: kind,` (cut), and a sort by the AUC read `sort: df_dr_auc`
    (a review)."""
    store = SessionStore()
    for name in ("first", "second", "third"):
        write(store, name, "ft", summary={"metrics": {"df_dr_auc": 0.6}})
    app = create_app(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        hint = app.screen.query_one("#home-hint")
        await wait_until(pilot, lambda: "3 sessions" in str(hint.render()))
        await pilot.press("space", "down", "space")
        app.screen.sort_key = "df_dr_auc"
        app.screen.render_table(force=True)
        await wait_until(pilot, lambda: "marked: 2" in str(hint.render()) and "sort: Df/Dr AUC" in str(hint.render()))
        # `s` goes through the columns shown, ascending each time (it sorted by hidden ones and kept a reversal)
        seen = []
        await pilot.press("S")
        for _ in range(8):
            await pilot.press("s")
            seen.append(app.screen.sort_key)
            assert app.screen.sort_reverse is False
        from screens.home import SORT_LABELS

        shown = app.screen._columns
        assert all(SORT_LABELS.get(key, key) in shown for key in seen) and len(set(seen)) > 2
        text = str(hint.render())
        assert len(text) <= 78 and not text.rstrip().endswith(","), text


async def test_delete_takes_the_marked_sessions_as_export_does(tmp_home):
    """`d` deleted the highlighted session while `x` exported and `c` compared the marked ones: marking two and
    pressing `d` on a third removed the third."""
    from screens.widgets.confirm import ConfirmScreen

    store = SessionStore()
    first, second, third = (write(store, name, "ft") for name in ("first", "second", "third"))
    app = create_app(start_engine=False)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one("#sessions")
        await wait_until(pilot, lambda: table.row_count == 3)
        table.move_cursor(row=1)
        await pilot.press("space")
        table.move_cursor(row=2)
        await pilot.press("space")
        await wait_until(pilot, lambda: app.screen.marked == {first, second})
        table.move_cursor(row=0)   # the newest, unmarked, highlighted
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = str(app.screen.query_one("#question").render())
        assert question == "Delete the 2 marked sessions (second, first)? Their files are removed."
        await pilot.press("y")
        await wait_until(pilot, lambda: [row["id"] for row in store.list()] == [third])
        await wait_until(pilot, lambda: table.row_count == 1 and not app.screen.marked)
        # none marked: the highlighted one, as before
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert str(app.screen.query_one("#question").render()).startswith(f"Delete session third ({third}, ft,")


async def test_deleting_marked_sessions_says_those_a_filter_hides(tmp_home):
    from screens.widgets.confirm import ConfirmScreen

    store = SessionStore()
    write(store, "alpha", "ft")
    write(store, "beta", "npo")
    app = create_app(start_engine=False)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one("#sessions")
        await wait_until(pilot, lambda: table.row_count == 2)
        await pilot.press("space", "down", "space")
        await wait_until(pilot, lambda: len(app.screen.marked) == 2)
        await pilot.press("slash", *"alpha", "enter")
        await wait_until(pilot, lambda: table.row_count == 1)
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Delete the 2 marked sessions (" in str(app.screen.query_one("#question").render())
        assert "1 of them is filtered out of view." in str(app.screen.query_one("#question").render())
