"""Where the history is drawn: the monitor's heatmap (live and replay are one screen) and `replay --headless`."""
from __future__ import annotations

import pytest

from conftest import wait_until
from sessions.history import heat_colour
from sessions.source import ListSource
from sessions.store import SessionStore

BEFORE = [80.0, 60.0, 90.0]
ROWS = [[20.0], [30.0, 10.0], [25.0, 40.0, 30.0]]
SPEC = {"method": "ga", "model": "clip-tiny", "data": "shapes-tiny", "requests": 3,
        "deletion": {"strategy": "random", "n": 6, "seed": 7}, "device": "cpu"}


def history_events() -> list[dict]:
    events = [{"kind": "status", "state": "running"},
              {"kind": "eval", "step": 0, "phase": "original", "split": "before", "metrics": {"test.r_mean": 60.0}},
              {"kind": "eval", "step": 0, "phase": "original", "split": "history", "request": 0,
               "metrics": {f"r{j + 1}": v for j, v in enumerate(BEFORE)}, "metric": "df.r_mean"}]
    for i, row in enumerate(ROWS, start=1):
        events.append({"kind": "step", "step": i, "phase": "unlearn", "losses": {"total": 1.0}, "lr": 1e-3,
                       "request": i})
        events.append({"kind": "eval", "step": i, "phase": "unlearn", "split": "after", "request": i,
                       "metrics": {"test.r_mean": 60.0 - i}})
        events.append({"kind": "eval", "step": i, "phase": "unlearn", "split": "history", "request": i,
                       "metrics": {f"r{j + 1}": v for j, v in enumerate(row)}, "metric": "df.r_mean"})
    return events + [{"kind": "status", "state": "finished"}]


def test_heat_colour_runs_blue_to_red():
    assert heat_colour(0.0, 0.0, 100.0) == "#313695" and heat_colour(100.0, 0.0, 100.0) == "#a50026"
    assert heat_colour(None, 0.0, 1.0) == "#444444"


async def test_monitor_draws_the_history_heatmap(tmp_path, monkeypatch):
    from screens.history_heatmap import HistoryHeatmap, heatmap_text
    from screens.monitor import MonitorScreen
    from workbench.tui import create_app

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    app = create_app(start_engine=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = MonitorScreen(ListSource(history_events(), live=True))
        await app.push_screen(screen)
        heatmap = screen.query_one("#mon-history", HistoryHeatmap)
        await wait_until(pilot, lambda: heatmap.display and len(heatmap.matrix) == 3)
        assert heatmap.before == BEFORE and heatmap.matrix[2] == [25.0, 40.0, 30.0]
        assert heatmap.matrix[0] == [20.0, None, None]
        # drawn again at its laid-out size (shown, it is sized on the next layout): one row per request
        await wait_until(pilot, lambda: "r3" in str(heatmap.render()))
        plain = str(heatmap.render())
        assert "before" in plain and "r1 " in plain and "██" in plain
        assert "df.r_mean of request j (column) after request i (row); blue ░░ 10.0 .. red ██ 90.0" in plain  # its unit
        # the 10 (request 2 just after it) is the lowest value: the bluest cell
        drawn = heatmap_text(heatmap.before, heatmap.matrix, heatmap.size.width, heatmap.size.height, heatmap.metric)
        assert str(drawn) == plain and any(span.style == "#313695" for span in drawn.spans)
        # the history rows stay out of the summary table and the per-request curves
        assert not any(name.startswith("r1") for name in screen.model.final)


def test_a_pulse_heatmap_reads_its_fractions_in_percent():
    """People accuracies are stored 0-1: the legend said 'blue 0.9 .. red 1' beside tables in percent."""
    from screens.history_heatmap import heatmap_text
    from sessions.history import history_metric

    assert history_metric([{"kind": "eval", "split": "history", "request": 0, "metric": "forget"}]) == "forget"
    assert history_metric([{"kind": "eval", "split": "history", "request": 0}]) == ""  # an older session
    drawn = str(heatmap_text([1.0, 1.0], [[0.25], [0.5, 0.9]], 40, metric="forget"))
    assert drawn.startswith("forget of request j (column) after request i (row); blue ░░ 25.0 .. red ██ 100.0")


def test_replay_headless_prints_the_history(tmp_path, monkeypatch, capsys):
    from workbench.cli_sessions import replay_headless

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    writer = SessionStore(tmp_path).create(SPEC)
    for event in history_events()[1:-1]:
        kind = event.pop("kind")
        writer.emit(kind, **event)
    history = {"metric": "df.r_mean", "utility_metric": "dr.r_mean", "before": BEFORE,
               "summary": {"preservation": 0.6583, "rebound": 30.0, "rebound_at": [2, 3], "stability": 4.899,
                           "retain_area": 66.33}}
    writer.finish("finished", summary={"method": "ga", "metrics": {"test": {"r_mean": 57.0}}, "history": history})
    assert replay_headless(writer.session_id, width=100) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines.index("history: df.r_mean of request j (column) after request i (row), in its own galleries")
    assert lines[header + 1].split() == ["r1", "r2", "r3"]
    assert lines[header + 2].split() == ["before", "80.0", "60.0", "90.0"]
    assert lines[header + 5].split() == ["r3", "25.0", "40.0", "30.0"]
    assert lines[header + 3].split() == ["r1", "20.0"]
    assert ("history summary: preservation 0.66, rebound 30.0 (r2 at r3), stability 4.9, retain area 66.3"
            in out)
    assert "r1 " not in "".join(l for l in lines if l.startswith("final")), "history rows stay out of the table"
    # narrow: the final table keeps "before" and the last requests that fit, and says how many it left out
    assert replay_headless(writer.session_id, width=50) == 0
    narrow = capsys.readouterr().out
    assert "(2 of 4 columns left out of the table below" in narrow
    assert "after r3" in narrow and "after r1 " not in narrow


def test_the_report_carries_the_history_and_the_attacks(tmp_path, monkeypatch):
    """`sessions report` of a request run: its history as a heatmap table with the summary line, and the attack
    sessions whose parent it is, each in its one line."""
    import re

    from typer.testing import CliRunner

    from workbench.cli import app

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    store = SessionStore(tmp_path)
    writer = store.create(SPEC)
    for event in history_events()[1:-1]:
        kind = event.pop("kind")
        writer.emit(kind, **event)
    history = {"metric": "df.r_mean", "before": BEFORE,
               "summary": {"preservation": 0.6583, "rebound": 30.0, "rebound_at": [2, 3], "stability": 4.899,
                           "retain_area": 66.33}}
    writer.finish("finished", summary={"method": "ga", "metrics": {"test": {"r_mean": 57.0}}, "history": history})
    attack = store.create({"kind": "attack", "method": "attack:quantize", "model": "clip-tiny", "data": "shapes-tiny",
                           "parent": writer.session_id, "attack": {"kind": "quantize", "params": {"bits": 4}}})
    attack.finish("finished", summary={"attack": {"kind": "quantize", "params": {"bits": 4}},
                                       "recovery": {"points": 12.0, "fraction": 0.25, "gap": 48.0}})
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["sessions", "report", writer.session_id, "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    table = re.search(r"<h3>history</h3>.*?<table>(.*?)</table>", text, re.S).group(1)
    rows = [re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]
    assert rows[0] == ["", "r1", "r2", "r3"] and rows[1] == ["before", "80.0", "60.0", "90.0"]
    assert rows[4] == ["r3", "25.0", "40.0", "30.0"] and rows[2] == ["r1", "20.0", "", ""]
    assert f'background:{heat_colour(90.0, 10.0, 90.0)}' in table   # the highest value in red
    assert "preservation 0.66, rebound 30.0 (r2 at r3)" in text
    attacks = re.search(r"<h3>attacks</h3><ul>(.*?)</ul>", text, re.S).group(1)
    assert f"{attack.session_id} quantize (bits 4) finished: recovered 25% of the forgotten gap" in attacks


def test_a_pulse_history_summary_reads_in_percent_as_its_table():
    """A pulse run's history metrics are the people groups' pooled accuracies, stored as fractions: the summary
    line printed 'rebound 0, retain area 1' under a table in percent."""
    from sessions.history import summary_words
    from sessions.numbers import fmt

    document = {"metric": "forget", "utility_metric": "retain",
                "summary": {"preservation": 0.5, "rebound": 0.125, "rebound_at": [1, 2], "stability": 0.05,
                            "retain_area": 0.9}}
    assert summary_words(document, fmt) == "preservation 0.50, rebound 12.5 (r1 at r2), stability 5.0, retain area 90.0"


def test_sessions_show_of_a_long_sequence_prints_whole_names_and_the_last_requests_that_fit(tmp_path, monkeypatch):
    """`sessions show` of a 100-request run printed a table of 101 columns squeezed into the terminal: not one digit
    in its 43 rows, and the names cut to `holdo…`. A sample evaluation's column did not say it was one."""
    from typer.testing import CliRunner

    from workbench.cli_sessions import sessions_app

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    writer = SessionStore(tmp_path).create({**SPEC, "requests": 100})
    metrics = {"test.r_mean": 50.0, "holdout_association.r_mean": 40.0, "holdout_identity.r_mean": 30.0}
    writer.emit("eval", step=0, phase="original", split="before", metrics=metrics)
    for i in range(1, 101):
        writer.emit("eval", step=i, phase="unlearn", split="after", request=i, metrics=metrics,
                    **({"evaluation": "sample"} if i % 10 else {}))
    writer.finish("finished", summary={"method": "ga", "metrics": metrics})
    out = CliRunner().invoke(sessions_app, ["show", writer.session_id, "-e", "0"], env={"COLUMNS": "80"}).output
    assert "columns left out of the table below" in out
    rows = [line for line in out.splitlines() if line.startswith("│ holdout")]
    assert [row.split()[1] for row in rows] == ["holdout_association.r_mean", "holdout_identity.r_mean"]
    assert all(row.count("40.0") + row.count("30.0") >= 3 for row in rows)   # before and two requests at least
    assert "r100" in out and "(sample)" in out   # request 99 was a sample evaluation; 100 a full one


def test_the_heatmaps_cells_read_without_colour():
    """Under NO_COLOR the cells were grey on grey, and the legend still said blue .. red."""
    from screens.history_heatmap import heatmap_text

    plain = heatmap_text([90.0, 90.0], [[10.0], [50.0, 90.0]], 40).plain
    rows = [line.split(maxsplit=1)[1].rstrip() for line in plain.splitlines()[1:]]   # the cells after each label
    assert rows == ["████", "░░", "▓▓██"]   # before; request 1 forgot its data (10); request 2 half (50)


def test_a_cancelled_request_runs_report_names_its_history_metric_and_rounds_it(tmp_path, monkeypatch):
    """A cancelled sequence has no summary: its report's history read `Df` and `72.67` where a finished one reads
    `df.r_mean` and `72.7`."""
    import re

    from sessions.report import history_html

    events = [dict(e) for e in history_events()[1:-1]]
    events[-1]["metrics"] = {"r1": 25.0, "r2": 40.0, "r3": 30.666}
    html = history_html(events, None)
    assert "<p>df.r_mean of each request's forget set" in html and "30.7" in html and "30.666" not in html
    assert re.search(r"no history summary: the run did not finish", html)


def test_an_attacks_table_keeps_its_own_after_column_when_narrow():
    """At 80 columns `sessions show` on an attack kept before, Retrain before and Retrain after, and left out the
    attacked values themselves."""
    from rich.console import Console

    from workbench.cli_sessions import _fitting_columns

    columns = ["before", "after", "retrain before", "retrain after"]
    rows = {"mia.attacks.min_k_plus_plus.df_member_rate": {}}  # a long metric name leaves room for 2 values
    kept = _fitting_columns(Console(width=80, file=__import__("io").StringIO()), columns, rows)
    assert kept[:2] == ["before", "after"] and len(kept) < len(columns)
    wide = _fitting_columns(Console(width=200, file=__import__("io").StringIO()), columns, rows)
    assert wide == columns
