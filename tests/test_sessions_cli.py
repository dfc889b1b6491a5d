"""`sessions list|show|export|delete`, `replay --headless`, and what the CLI side imports."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys

import pytest
import typer

from sessions.store import SessionStore
from workbench.cli_sessions import replay_headless, sessions_app

from sessions_fixtures import ROOT, run_cli

SPEC = {"method": "multidelete", "model": "clip-tiny", "data": "shapes-tiny",
        "deletion": {"strategy": "random", "n": 4, "seed": 42}, "device": "cpu"}


def _app():
    app = typer.Typer()
    app.add_typer(sessions_app, name="sessions")
    return app


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    return tmp_path


def _make(home, steps=120, state="finished", name="demo"):
    writer = SessionStore(home).create(SPEC, name=name)
    writer.emit("phase", name="unlearn")
    writer.emit("eval", step=0, phase="unlearn", split="before",
                metrics={"df_dr_auc": 0.91, "test.r_mean": 52.0, "mia.df_member_rate": 0.8})
    for i in range(steps):
        writer.emit("step", step=i, phase="unlearn", lr=1e-3,
                    losses={"total": 2.0 / (i + 1), "modality_decoupling": 1.0 / (i + 1), "kl": 0.1})
        if i % 40 == 39:
            writer.emit("eval", step=i, phase="unlearn", split="step", metrics={"df_dr_auc": 0.9 - i / 400})
    writer.emit("phase", name="eval")
    writer.emit("eval", step=steps, phase="eval", split="after",
                metrics={"df_dr_auc": 0.52, "test.r_mean": 50.5, "mia.df_member_rate": 0.1})
    summary = {"session": writer.session_id, "method": "multidelete", "seconds": 1.5, "steps": steps,
               "metrics": {"df_dr_auc": 0.52, "test": {"r_mean": 50.5}, "mia": {"df_member_rate": 0.1}},
               "original_metrics": {"df_dr_auc": 0.91, "test": {"r_mean": 52.0}}}
    writer.finish(state, summary=summary)
    return writer.session_id


def test_list_show_json(home):
    a, b = _make(home, steps=5), _make(home, steps=7)
    result = run_cli(_app(), ["sessions", "list", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)["sessions"]
    assert [r["id"] for r in rows] == [b, a]            # newest first
    assert rows[0]["summary"]["metrics"]["df_dr_auc"] == 0.52 and rows[0]["method"] == "multidelete"
    text = run_cli(_app(), ["sessions", "list"])
    assert text.exit_code == 0 and a in text.stdout and "52.0" in text.stdout  # an AUC in percent

    shown = json.loads(run_cli(_app(), ["sessions", "show", a, "--json"]).stdout)
    assert shown["spec"] == SPEC and shown["state"] == "finished" and shown["summary"]["method"] == "multidelete"
    assert [e["seq"] for e in shown["events"]] == list(range(len(shown["events"])))
    human = run_cli(_app(), ["sessions", "show", a[-4:]])
    assert human.exit_code == 0 and "final metrics" in human.stdout and "df_dr_auc" in human.stdout
    # its verdict, as replay and report say it (the docs promised it; show printed none: a review)
    verdict = [line for line in human.stdout.splitlines() if line.startswith("verdict: ")]
    assert len(verdict) == 1 and "Df/Dr AUC 91.0 -> 52.0" in verdict[0]


def test_list_state_reads_any_case(home):
    """`--state Finished` was refused as an unknown state while the table prints `finished`."""
    sid = _make(home, steps=5)
    result = run_cli(_app(), ["sessions", "list", "--state", "Finished", "--json"])
    assert result.exit_code == 0 and [r["id"] for r in json.loads(result.stdout)["sessions"]] == [sid]
    assert json.loads(run_cli(_app(), ["sessions", "list", "--state", "RUNNING", "--json"]).stdout)["sessions"] == []


def test_unknown_ids_are_one_line_exit_2(home):
    for args in (["show", "20200101-000000-zzzz"], ["delete", "nope"], ["export", "nope", "--out", "x.json"]):
        result = run_cli(_app(), ["sessions", *args])
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and "no session" in result.stderr and "Traceback" not in result.output
    assert replay_headless("nope") == 2


def test_export_json_csv_and_directory(home, tmp_path):
    sid = _make(home)
    out_json, out_csv = tmp_path / "e" / "s.json", tmp_path / "e" / "s.csv"
    out_json.parent.mkdir()
    assert run_cli(_app(), ["sessions", "export", sid, "--out", str(out_json)]).exit_code == 0
    doc = json.loads(out_json.read_text())
    assert doc["id"] == sid and len(doc["events"]) == len(SessionStore(home).events(sid))
    assert run_cli(_app(), ["sessions", "export", sid, "--out", str(out_csv)]).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert sum(r["name"] == "loss.total" for r in rows) == 120
    after = [r for r in rows if r["split"] == "after" and r["name"] == "df_dr_auc"]
    assert float(after[0]["value"]) == 0.52
    folder = tmp_path / "both"
    folder.mkdir()
    result = run_cli(_app(), ["sessions", "export", sid, "--out", str(folder), "--json"])
    assert sorted(json.loads(result.stdout)["files"]) == [str(folder / f"{sid}.csv"), str(folder / f"{sid}.json")]
    bad = run_cli(_app(), ["sessions", "export", sid, "--out", str(folder), "--format", "xml"])
    assert bad.exit_code == 2 and "json or csv" in bad.stderr
    # a file name that is neither format, or one whose suffix contradicts --format: refused, nothing written
    bad = run_cli(_app(), ["sessions", "export", sid, "--out", str(tmp_path / "x.txt")])
    assert bad.exit_code == 2 and "a .txt file is neither format" in bad.stderr and not (tmp_path / "x.txt").exists()
    bad = run_cli(_app(), ["sessions", "export", sid, "--out", str(tmp_path / "y.json"), "--format", "csv"])
    assert bad.exit_code == 2 and "says json but --format says csv" in bad.stderr and not (tmp_path / "y.json").exists()


def test_delete(home):
    sid, keep = _make(home, steps=2), _make(home, steps=2)
    result = run_cli(_app(), ["sessions", "delete", sid, "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == {"deleted": sid}
    assert [r["id"] for r in SessionStore(home).list()] == [keep]
    live = SessionStore(home).create(SPEC)
    busy = run_cli(_app(), ["sessions", "delete", live.session_id])
    assert busy.exit_code == 2 and "cancel it first" in busy.stderr
    live.finish("cancelled")


def test_replay_headless_draws_curves_and_table(home, capsys):
    sid = _make(home, steps=3000)
    assert replay_headless(sid) == 0
    out = capsys.readouterr().out
    assert "loss terms" in out and "modality_decoupling" in out and "forget" in out  # the panels by question
    assert "final metrics" in out and "df_dr_auc" in out and "91.0" in out and "52.0" in out and "-39.0" in out
    assert "\x1b[" not in out        # no colour codes when stdout is not a terminal
    # (the home is shared with other tests: a Retrain of the same protocol there adds its distances after the values)
    verdict = "verdict: forget: Df/Dr AUC 91.0 -> 52.0"
    assert verdict in out and out.index(verdict) < out.index("loss terms")   # the verdict first
    line = next((l for l in out.splitlines() if l.startswith("verdict:")), out[:400])
    assert "keep: test r_mean 52.0 -> 50.5" in line and "cost 1.5 s, 3000 steps" in line, line


def test_replay_headless_draws_the_panels_and_keeps_the_originals_training_apart(home, capsys):
    from test_report import trained_original

    sid = trained_original(home)
    assert replay_headless(sid, width=100) == 0
    out = capsys.readouterr().out
    assert "12 unlearning steps; the original's training ran here first (300 steps, not drawn)" in out
    titles = [line.strip() for line in out.splitlines() if line.strip() in ("forget", "keep", "loss terms")]
    assert titles == ["forget", "keep", "loss terms"]
    legends = [line.strip() for line in out.splitlines() if line.startswith("  • ")]
    assert legends[0] == "• df_dr_auc   ┄ original df_dr_auc 91.0"    # the legend under the plot, outside it
    assert legends[1].startswith("• test.r_mean   x holdout_identity.r_mean   + dr.r_mean")  # a marker a series (the
    # kept facts before Dr: the holdout sets answer the same question)
    assert legends[2] == "• total   x kl"
    ticks = [line for line in out.splitlines() if line.strip().startswith("0 ") and line.rstrip().endswith("12")]
    assert ticks and all("." not in t for t in ticks)  # integer step ticks, 0 to the 12th unlearning step
    table = out[out.index("final metrics"):]
    assert table.index("test.r_mean") < table.index("dr.r_mean") < table.index("holdout_identity.r_mean") < \
        table.index("test.txt_r1")   # headlines (Dr's too), then holdout, then the rest


def test_every_command_takes_a_name_or_a_prefix_of_one(home, tmp_path):
    from workbench.cli import app

    first, second = _make(home, steps=3, name="ft baseline"), _make(home, steps=3, name="ft tuned")
    other = _make(home, steps=3, name="MultiDelete trial")
    listed = json.loads(run_cli(app, ["sessions", "list", "--json"]).stdout)["sessions"]
    assert {r["id"]: r["name"] for r in listed} == {first: "ft baseline", second: "ft tuned", other: "MultiDelete trial"}
    text = run_cli(app, ["sessions", "list"]).stdout  # piped: tab-separated, the name beside the id
    assert text.splitlines()[0].split("\t")[:2] == ["id", "name"] and f"{other}\tMultiDelete trial\t" in text

    replayed = run_cli(app, ["replay", "ft baseline", "--headless"])
    assert replayed.exit_code == 0, replayed.output
    assert f"session {first}" in replayed.stdout and "final metrics" in replayed.stdout
    out = tmp_path / "x.html"
    reported = run_cli(app, ["sessions", "report", "ft tuned", "--out", str(out)])
    assert reported.exit_code == 0, reported.output
    assert f'<section id="{second}">' in out.read_text()
    assert json.loads(run_cli(app, ["sessions", "show", "multi", "--json"]).stdout)["id"] == other  # prefix, any case
    assert json.loads(run_cli(app, ["sessions", "export", "MultiDelete trial", "--out", str(tmp_path / "e.json"),
                                    "--json"]).stdout)["session"] == other

    for command in (["replay", "ft", "--headless"], ["sessions", "show", "ft"], ["sessions", "report", "ft", "--out",
                    str(tmp_path / "y.html")], ["sessions", "delete", "ft"], ["sessions", "export", "ft", "--out",
                                                                             str(tmp_path / "f.json")]):
        ambiguous = run_cli(app, command)
        assert ambiguous.exit_code == 2, (command, ambiguous.output)
        assert ambiguous.stderr.count("\n") == 1 and "Traceback" not in ambiguous.output
        assert "'ft' matches 2 sessions: " in ambiguous.stderr
        assert f"{first} (ft baseline)" in ambiguous.stderr and f"{second} (ft tuned)" in ambiguous.stderr
    assert not (tmp_path / "y.html").exists() and len(SessionStore(home).list()) == 3
    unknown = run_cli(app, ["replay", "no such run", "--headless"])
    assert unknown.exit_code == 2 and unknown.stderr.count("\n") == 1 and "no id or name matches" in unknown.stderr
    assert run_cli(app, ["sessions", "delete", "ft tuned"]).stdout == f"deleted {second}\n"


def test_delete_takes_a_whole_id_or_an_exact_name_and_asks_before_a_studys_cell(home):
    """`sessions delete 5` deleted the session whose id ended in 5, for good, and deleting a study's Retrain cell
    broke the study's report with no word."""
    from sessions.study import StudyRecord
    from workbench.cli import app

    named, cell = _make(home, steps=3, name="ft trial"), _make(home, steps=3, name="retrain s42")
    for part in (named[-4:], named[:-1], "ft tri"):   # an id's end, an id's start, a name's start
        refused = run_cli(app, ["sessions", "delete", part])
        assert refused.exit_code == 2 and refused.stderr.count("\n") == 1, part
        assert f"is only part of {named}; run `mmul-workbench sessions delete {named}`" in refused.stderr
    record = StudyRecord("study-0123456789ab", {"methods": ["retrain"]}, home)
    record.set_cell("retrain", 42, cell, "finished")
    asked = run_cli(app, ["sessions", "delete", cell])
    assert asked.exit_code == 2 and "is the cell retrain s42 of study-0123456789ab" in asked.stderr
    assert len(SessionStore(home).list()) == 2
    # two sessions of one name: it said "give more of the id or name", which a delete cannot take
    twin = _make(home, steps=3, name="ft trial")
    both = run_cli(app, ["sessions", "delete", "ft trial"])
    assert both.exit_code == 2 and both.stderr.count("\n") == 1 and "give more" not in both.stderr
    assert "`sessions delete` takes one whole id: give the id of the one to delete" in both.stderr and twin in both.stderr
    assert run_cli(app, ["sessions", "delete", twin]).stdout == f"deleted {twin}\n"
    empty = run_cli(app, ["sessions", "delete", ""])
    assert empty.exit_code == 2 and "needs a session's whole id or its exact name" in empty.stderr
    assert run_cli(app, ["sessions", "delete", "FT TRIAL"]).stdout == f"deleted {named}\n"   # its name, any case
    assert run_cli(app, ["sessions", "delete", cell, "--force"]).stdout == f"deleted {cell}\n"
    assert SessionStore(home).list() == []


def test_a_name_shaped_like_a_session_id_is_refused():
    """`run --name 20261207-090735-2082` made a session whose name was another session's id: a command given that
    id then meant one or the other."""
    from engine.errors import SpecError
    from engine.spec.inputs import check_name

    with pytest.raises(SpecError, match="has the shape of a session id"):
        check_name("20261207-090735-2082")
    assert check_name("ft at 20261207") == "ft at 20261207"
    # an id's last 4 characters (what the home shows of it, what `replay 3068` takes) or its start: an exact name
    # wins before them, and `--name 3068` took over another session's `show 3068`
    for part in ("3068", "20261207-174623", "20261207"):
        with pytest.raises(SpecError, match="has the shape of a session id or part of one"):
            check_name(part)

def test_cli_modules_import_no_heavy_packages():
    code = (
        "import sys; sys.path.insert(0, %r);"
        "import sessions.store, sessions.protocol, sessions.series, workbench.client.process,"
        " workbench.client.follow, workbench.sources, workbench.cli_sessions, workbench.cli_engine,"
        " workbench.cli_report, workbench.cli_compare, sessions.report, sessions.numbers;"
        "bad = [m for m in ('torch', 'transformers', 'textual', 'plotext', 'matplotlib', 'engine.jobs')"
        " if m in sys.modules];"
        "print(bad)" % str(ROOT)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = ("import sys; sys.path.insert(0, %r); import sessions.store;"
            "print(sorted(m.split('.')[0] for m in sys.modules if m.split('.')[0] in"
            " ('rich', 'typer', 'engine', 'workbench', 'screens')))" % str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


async def test_stored_source_is_an_event_source(home):
    from sessions.source import EventSource, StoredSource
    from workbench.sources import LiveSource

    sid = _make(home, steps=4)
    source = StoredSource(sid[-4:])
    assert isinstance(source, EventSource) and isinstance(LiveSource(sid), EventSource)
    events = [e async for e in source]
    assert source.state == "finished" and events == SessionStore(home).events(sid)


def test_list_shows_the_unlearning_steps_of_a_run_that_trained_its_original(home):
    """Issue 25: a run that trained its original (300 steps) before 12 unlearning steps is listed with 12."""
    from workbench.cli import app

    writer = SessionStore(home).create(SPEC, name="trained here")
    writer.emit("phase", name="original")
    for i in range(300):
        writer.emit("step", step=i, phase="original", lr=1e-3, losses={"total": 2.0})
    writer.emit("phase", name="unlearn")
    for i in range(12):
        writer.emit("step", step=i, phase="unlearn", lr=1e-3, losses={"total": 1.0})
    writer.finish("finished", summary={"seconds": 1.5, "steps": 12, "metrics": {"df_dr_auc": 0.5}})
    failed = SessionStore(home).create(SPEC, name="no summary")
    failed.finish("failed", message="loss became NaN at step 3")
    lines = run_cli(app, ["sessions", "list"]).stdout.splitlines()
    rows = {row["name"]: row for row in (dict(zip(lines[0].split("\t"), line.split("\t"))) for line in lines[1:])}
    assert rows["trained here"]["steps"] == "12" and rows["no summary"]["steps"] == "-"


STOPPED_RUN = """
import signal, sys
import typer
from workbench.execute import run_in_session

if "--nohup" in sys.argv:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)   # as `nohup` starts it

def job(emitter):
    print(emitter.session_id, flush=True)
    signal.pause()   # a long run, stopped from outside

try:
    run_in_session({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny"}, "ft", job)
except typer.Exit as ended:
    sys.exit(ended.exit_code)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_headless_run_stopped_by_sigterm_or_sighup_ends_its_session_cancelled(tmp_path, signum):
    """A batch scheduler's SIGTERM or a closed terminal's SIGHUP ended the process with no word (exit 143, 129)
    and left its session `running?`, which only an engine start would mend."""
    from conftest import ROOT

    proc = subprocess.Popen([sys.executable, "-c", STOPPED_RUN], cwd=ROOT, env={**os.environ, "MMUL_HOME": str(tmp_path)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    session = proc.stdout.readline().strip()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == f"error: cancelled (session {session} kept)"
    meta = SessionStore(tmp_path).get(session)
    assert meta["state"] == "cancelled" and meta["message"] == f"stopped by {signal.Signals(signum).name}"


def test_show_says_running_with_a_question_as_list_does_for_a_session_no_process_writes(home):
    """`sessions list` printed `running?` and `sessions show` `state running` for the same dead session."""
    writer = SessionStore(home).create(SPEC, name="killed")
    writer.emit("log", level="info", message="started")
    writer.abandon()   # as if its process died mid-run: state running, lock free
    out = run_cli(_app(), ["sessions", "show", writer.session_id])
    assert out.exit_code == 0 and "state running?" in out.stdout and "sessions check --repair" in out.stdout



def start_stopped_run(home, *flags):
    from conftest import ROOT

    proc = subprocess.Popen([sys.executable, "-c", STOPPED_RUN, *flags], cwd=ROOT,
                            env={**os.environ, "MMUL_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return proc, proc.stdout.readline().strip()


def test_sigterm_then_sighup_at_once_still_ends_the_session_cancelled(tmp_path):
    """systemd sends SIGTERM and SIGHUP together: the second, arriving while the end was written, killed the process
    and at times left the session running."""
    proc, session = start_stopped_run(tmp_path)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == f"error: cancelled (session {session} kept)"
    # both pending at once are handled in signal-number order, so either may be the one named
    assert SessionStore(tmp_path).get(session)["message"] in ("stopped by SIGTERM", "stopped by SIGHUP")


def test_a_run_under_nohup_outlives_the_hang_up(tmp_path):
    """The handler replaced the SIGHUP that `nohup` had ignored: a logout cancelled a run started to outlive it."""
    proc, session = start_stopped_run(tmp_path, "--nohup")
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGTERM)   # ordered after the hang-up: had that stopped the run, it would say so
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and SessionStore(tmp_path).get(session)["message"] == "stopped by SIGTERM"


def test_export_and_report_never_replace_what_is_not_a_regular_file(home, tmp_path):
    """The atomic write replaces what it finds: `--out` given a pipe (or, as root, /dev/null) replaced it with a
    regular file. A symbolic link to a file is written through, not replaced."""
    from workbench.cli import app

    sid = _make(home, steps=3)
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    for args in (["sessions", "export", sid, "--out", str(pipe)], ["sessions", "report", sid, "--out", str(pipe)]):
        out = run_cli(app, args)
        assert out.exit_code == 2 and "is not a regular file (a device, a pipe or a socket)" in out.stderr, args
        assert pipe.is_fifo()
    target, link = tmp_path / "real.json", tmp_path / "link.json"
    target.write_text("{}")
    link.symlink_to(target)
    out = run_cli(app, ["sessions", "export", sid, "--out", str(link), "--force"])
    assert out.exit_code == 0 and out.stdout.strip() == str(link)   # the path as given, not the link's target
    assert link.is_symlink() and json.loads(target.read_text())["id"] == sid


def nested(levels: int):
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def test_an_exported_session_imports_into_another_home_as_it_was(home, tmp_path_factory, monkeypatch):
    """There was no way back from `sessions export`: a session moved to another machine, or restored from a backup,
    could be read as JSON and no more (no replay, show, report or compare)."""
    sid = _make(home, steps=30, state="cancelled")
    exported = home / "out.json"
    assert run_cli(_app(), ["sessions", "export", sid, "--out", str(exported)]).exit_code == 0
    other = tmp_path_factory.mktemp("other-home")
    monkeypatch.setenv("MMUL_HOME", str(other))
    imported = run_cli(_app(), ["sessions", "import", str(exported), "--json"])
    assert imported.exit_code == 0, imported.stderr
    assert json.loads(imported.stdout)["session"] == sid
    again = home / "again.json"
    assert run_cli(_app(), ["sessions", "export", sid, "--out", str(again)]).exit_code == 0
    assert json.loads(again.read_text()) == json.loads(exported.read_text())   # ids, seqs, times, summary, state
    assert replay_headless(sid) == 0
    twice = run_cli(_app(), ["sessions", "import", str(exported)])
    assert twice.exit_code == 2 and twice.stderr.count("\n") == 1 and f"session {sid} is already in this home; nothing to import (`mmul-workbench sessions show {sid}` reads it; delete it first to import it again)" in twice.stderr

    document = json.loads(exported.read_text())
    bad = {"not JSON": "{", "another schema": {**document, "schema": 99},
           "a running session": {**document, "state": "running"},
           "a gap in the events": {**document, "events": document["events"][:3] + document["events"][4:]},
           "an event outside the schema": {**document, "events": [*document["events"][:-1],
                                                                  {**document["events"][-1], "state": "exploded"}]},
           # each imported and then read as damaged, or made `sessions list` fail for the whole home (a review)
           "a spec that is no record": {**document, "spec": "hello"},
           "a summary that is no record": {**document, "summary": [1, 2]},
           "a time past 2200": {**document, "created": 1e300},
           "a name shaped like an id": {**document, "name": "20261207-125544-ef31"},
           # an id's end: `sessions show 39a0` then showed the imported session, not 20261207-184024-39a0
           "a name shaped like an id's end": {**document, "name": "39a0"},
           "a spec nested 900 deep": {**document, "spec": {**document["spec"], "x": nested(900)}},
           "a session ended before its last event": {**document, "events": [
               *document["events"][:2], {**document["events"][2], "kind": "status", "state": "finished"},
               *document["events"][3:]]}}
    store = SessionStore(other)
    store.delete(sid)
    for what, content in bad.items():
        path = home / "bad.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        refused = run_cli(_app(), ["sessions", "import", str(path)])
        assert refused.exit_code == 2 and refused.stderr.startswith("error: cannot import"), what
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr, what
        assert store.list() == [] and not (other / "sessions" / sid).exists(), what   # nothing half-written
        assert [p.name for p in (other / "sessions").iterdir() if p.name.startswith(".deleted-import")] == [], what
    # something that is not a session where the id would go: named as such, and left as it is
    (other / "sessions" / sid).mkdir()
    clash = run_cli(_app(), ["sessions", "import", str(exported)])
    assert clash.exit_code == 2 and "something that is not a session is in its place" in clash.stderr
    (other / "sessions" / sid).rmdir()
    # the session is put together out of sight and moved into place last: a failure there leaves nothing
    import sessions.importing as importing

    def refuse(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(importing.os, "rename", refuse)
    full = run_cli(_app(), ["sessions", "import", str(exported)])
    assert full.exit_code == 2 and "could not be written (No space left on device)" in full.stderr
    assert [p.name for p in (other / "sessions").iterdir() if "catalog" not in p.name] == []


def test_took_says_whether_it_is_the_runs_own_seconds_or_all_of_it():
    """`took` read a finished run's unlearning seconds (0.3 s of an 8 s run) and a cancelled run's wall time (15 s)
    with the same word."""
    from sessions.summary import took_words

    finished = {"state": "finished", "created": 100.0, "ended": 108.0, "summary": {"seconds": 0.3}}
    assert took_words(finished) == "0.3 s of unlearning (8 s in all)"
    assert took_words({"state": "cancelled", "created": 100.0, "ended": 115.0, "summary": None}) == "15 s in all"
    # an attack's seconds are its attack: a rephrase trains nothing (it read "of unlearning"; a review)
    assert took_words({**finished, "spec": {"kind": "attack"}}) == "0.3 s of the attack (8 s in all)"
    # a resumed run's own process ran only the requests after the point: its document counts the run it resumed too
    resumed = {**finished, "spec": {"resumes": {"session": "A", "request": 2}}, "summary": {"seconds": 0.3,
                                                                                           "total_seconds": 21.0}}
    assert took_words(resumed) == "0.3 s of unlearning (21 s in all, with the run it resumed)"


FINISHED_THEN_PRINTING = """
import signal, sys
from workbench.execute import StopSignals, interrupted_after_the_end, run_in_session
StopSignals.AFTER_THE_END = interrupted_after_the_end   # as workbench.cli.main sets it
try:   # as workbench.cli.main wraps every command
    result = run_in_session({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny"}, "ft", lambda emitter: {})
    print(result["session"], flush=True)
    signal.pause()   # printing the finished run's document, when a SIGTERM comes
except KeyboardInterrupt:   # what workbench.cli.main does with it
    print("interrupted", file=sys.stderr)
    sys.exit(130)
"""


def test_a_sigterm_after_a_headless_run_finished_stops_it_as_ctrl_c_does(tmp_path):
    """A SIGTERM that landed while a finished run printed its document killed the process with 143 (a script reads a
    failed run), the default handler being back by then (a review)."""
    from conftest import ROOT

    proc = subprocess.Popen([sys.executable, "-c", FINISHED_THEN_PRINTING], cwd=ROOT,
                            env={**os.environ, "MMUL_HOME": str(tmp_path)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    session = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
    assert SessionStore(tmp_path).get(session)["state"] == "finished"


def test_export_and_report_replace_only_their_own_files_and_never_the_store(home, tmp_path):
    """`sessions export --out $MMUL_HOME/sessions/ID/session.json` replaced the session's own file with its export
    (exit 0: its events gone for good); an unrelated file given as --out was overwritten; a typo in a folder made
    the whole tree (at / as root) where `sessions report` refused it."""
    from workbench.cli import app

    sid = _make(home, steps=3)
    own = home / "sessions" / sid / "session.json"
    before = own.read_bytes()
    for command in ("export", "report"):
        out = run_cli(app, ["sessions", command, sid, "--out", str(own if command == "export" else own.with_suffix(".html"))])
        assert out.exit_code == 2 and "is inside the workbench's store" in out.stderr, out.stderr
    assert own.read_bytes() == before and run_cli(app, ["sessions", "show", sid]).exit_code == 0
    unrelated = tmp_path / "notes.json"
    unrelated.write_text("keep")
    for command, name in (("export", "notes.json"), ("report", "notes.json")):
        out = run_cli(app, ["sessions", command, sid, "--out", str(tmp_path / name)])
        assert out.exit_code == 2 and "already holds a file this command did not write" in out.stderr
        assert "--force" in out.stderr and unrelated.read_text() == "keep"
    assert run_cli(app, ["sessions", "export", sid, "--out", str(unrelated), "--force"]).exit_code == 0
    assert json.loads(unrelated.read_text())["id"] == sid
    # its own files are replaced without asking: an export again, a report again
    assert run_cli(app, ["sessions", "export", sid, "--out", str(unrelated)]).exit_code == 0
    report = tmp_path / "r.html"
    assert run_cli(app, ["sessions", "report", sid, "--out", str(report)]).exit_code == 0
    assert run_cli(app, ["sessions", "report", sid, "--out", str(report)]).exit_code == 0
    for target in (tmp_path / "nope" / "x.json", tmp_path / "nope" / "folder"):
        out = run_cli(app, ["sessions", "export", sid, "--out", str(target)])
        assert out.exit_code == 2 and "directory" in out.stderr and "does not exist" in out.stderr
    assert not (tmp_path / "nope").exists()
    # - is standard output
    out = run_cli(app, ["sessions", "export", sid, "--out", "-"])
    assert out.exit_code == 0 and json.loads(out.stdout)["id"] == sid and not os.path.exists("-")
    out = run_cli(app, ["sessions", "export", sid, "--out", "-", "--format", "csv"])
    assert out.stdout.startswith("seq,ts,kind,phase,request,split,step,name,value\n")
    out = run_cli(app, ["sessions", "report", sid, "--out", "-"])   # it made a file named `-`
    assert out.exit_code == 2 and "give --out FILE.html" in out.stderr and not os.path.exists("-")


def test_a_shared_mmul_cache_is_the_stores_only_where_the_workbench_made_folders(home, tmp_path_factory, monkeypatch):
    """With MMUL_CACHE naming a wide folder, every path under it was refused as 'inside the workbench's store'."""
    from workbench.cli import app

    sid = _make(home, steps=3)
    shared = tmp_path_factory.mktemp("shared")
    (shared / "originals").mkdir()
    monkeypatch.setenv("MMUL_CACHE", str(shared))
    assert run_cli(app, ["sessions", "export", sid, "--out", str(shared / "mine.json")]).exit_code == 0
    out = run_cli(app, ["sessions", "export", sid, "--out", str(shared / "originals" / "x.json")])
    assert out.exit_code == 2 and "is inside the workbench's store" in out.stderr


def test_json_output_is_strict_json_when_a_session_holds_a_nan(home):
    """`sessions show --json` of a session with a NaN loss printed a bare NaN, which JSON has not (RFC 8259): a
    strict parser (jq, JSON.parse) refused the document. Non-finite numbers print as null."""
    from workbench.cli import app

    writer = SessionStore(home).create(SPEC, name="diverged")
    writer.emit("step", step=0, phase="unlearn", lr=1e-3, losses={"total": 1.0})
    writer.emit("step", step=1, phase="unlearn", lr=1e-3, losses={"total": float("nan"), "kl": float("inf")})
    writer.finish("failed", message="loss became nan at step 1")
    for args in (["sessions", "show", writer.session_id, "--json"], ["sessions", "list", "--json"]):
        out = run_cli(app, args)
        assert out.exit_code == 0 and "NaN" not in out.stdout and "Infinity" not in out.stdout, args

        def refuse(constant):
            raise ValueError(f"not JSON: {constant}")

        document = json.loads(out.stdout, parse_constant=refuse)
    shown = json.loads(run_cli(app, ["sessions", "show", writer.session_id, "--json"]).stdout)
    losses = [e["losses"] for e in shown["events"] if e["kind"] == "step"]
    assert losses[1] == {"total": None, "kl": None} and losses[0] == {"total": 1.0}
    assert document is not None


def test_compare_shows_sessions_side_by_side_without_the_tui(home):
    """Compare was a screen only: over SSH or in a script there was no way to put two runs' numbers side by side
    (`sessions import --help` promised "compare")."""
    from workbench.cli import app

    first, second = _make(home, steps=3, name="first"), _make(home, steps=3, name="second")
    out = run_cli(app, ["sessions", "compare", first, "second", "--json"])
    assert out.exit_code == 0, out.stderr
    document = json.loads(out.stdout)
    assert [entry["id"] for entry in document["sessions"]] == [first, second]
    assert document["sessions"][0]["final"]["df_dr_auc"] == 0.52 and document["metrics"][0] == "df_dr_auc"
    assert document["sessions"][1]["state"] == "finished" and document["sessions"][1]["method"] == SPEC["method"]
    out = run_cli(app, ["sessions", "compare", first, second, "--metrics", "test"])
    lines = out.stdout.splitlines()
    assert out.exit_code == 0 and any("test.r_mean" in line and "50.5" in line for line in lines)
    assert not any("df_dr_auc" in line for line in lines) and any(line.startswith("│ state") for line in lines)
    for args, said in (([first], "compare needs two or more sessions"), ([first, first], "two or more sessions"),
                       ([first, second, "--metrics", "zzz"], "matches none of these sessions' metrics"),
                       ([first, "nope"], "no session")):
        out = run_cli(app, ["sessions", "compare", *args])
        assert out.exit_code == 2 and said in out.stderr and out.stderr.count("\n") == 1, (args, out.stderr)
