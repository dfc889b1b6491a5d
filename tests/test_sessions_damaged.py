"""Damaged sessions and a damaged catalog, met the way an operator meets them: a truncated session
file, a session.json replaced by a directory, an unreadable session directory, garbage in
catalog.json, files a crash left behind. Every command ends in one line and its documented exit code,
and nothing of the other sessions is lost.

The suite runs as root in CI, where ``chmod 000`` hides nothing; an unreadable directory is simulated
in-process instead (``unreadable`` below: every open of a file in it, the lock probe and ``os.access``
fail with EACCES, as they do for a normal user), and ``test_chmod_000_as_a_normal_user`` does the real
thing where the tests do not run as root.
"""
from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import typer

import sessions.files
import sessions.reader
import sessions.store
from sessions.check import check
from sessions.recovery import recover
from sessions.store import SessionDamaged, SessionStore
from workbench.cli_sessions import replay_headless, sessions_app

from sessions_fixtures import run_cli

SPEC = {"method": "ft", "model": "clip-tiny", "data": "shapes-tiny",
        "deletion": {"strategy": "random", "n": 4, "seed": 42}, "device": "cpu"}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    return tmp_path


def _app():
    app = typer.Typer()
    app.add_typer(sessions_app, name="sessions")
    return app


def _make(home, n=3, finish=True) -> list[str]:
    ids = []
    for _ in range(n):
        writer = SessionStore(home).create(SPEC)
        writer.emit("phase", name="unlearn")
        for i in range(5):
            writer.emit("step", step=i, phase="unlearn", lr=1e-3, losses={"total": 1.0 / (i + 1)})
        writer.emit("eval", step=5, phase="eval", split="after", metrics={"df_dr_auc": 0.5})
        if finish:
            writer.finish("finished", summary={"metrics": {"df_dr_auc": 0.5}})
        else:
            writer.abandon()  # as if its process died mid-run: state running, lock free
        ids.append(writer.session_id)
    return ids


def _truncate_half(path: Path) -> None:
    """``truncate -s 50% FILE``."""
    os.truncate(path, path.stat().st_size // 2)


@pytest.fixture
def unreadable(monkeypatch):
    """Make a directory unreadable for this process, root or not (see the module docstring)."""
    blocked: list[str] = []
    real_open, real_access = builtins.open, os.access
    real_try_lock, real_lock_is_held = sessions.files.try_lock, sessions.files.lock_is_held

    def inside(path) -> bool:
        path = os.path.abspath(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else ""
        return any(path == b or path.startswith(b + os.sep) for b in blocked)

    def fake_open(path, *args, **kwargs):
        if inside(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    def fake_access(path, mode, *args, **kwargs):
        return False if inside(path) else real_access(path, mode, *args, **kwargs)

    def blocking(real):
        def fake(path):
            if inside(path):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real(path)
        return fake

    monkeypatch.setattr(sessions.files, "open", fake_open, raising=False)
    monkeypatch.setattr(os, "access", fake_access)
    monkeypatch.setattr(sessions.reader, "lock_is_held", blocking(real_lock_is_held))
    monkeypatch.setattr(sessions.store, "try_lock", blocking(real_try_lock))
    return lambda path: blocked.append(os.path.abspath(path))


def _one_line_exit_2(result, *words):
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def _healthy_everywhere(home, ids):
    """Every command works on the sessions that are not damaged."""
    for sid in ids:
        shown = run_cli(_app(), ["sessions", "show", sid, "--json"])
        assert shown.exit_code == 0 and len(json.loads(shown.stdout)["events"]) == 9
        assert replay_headless(sid) == 0
    listed = {r["id"]: r["state"] for r in json.loads(run_cli(_app(), ["sessions", "list", "--json"]).stdout)["sessions"]}
    assert all(listed[sid] == "finished" for sid in ids)


@pytest.mark.parametrize("damage", ["truncated", "directory", "unreadable", "edited", "edited-inside"])
def test_a_damaged_session_is_one_line_everywhere_and_still_deletable(home, damage, unreadable, capsys):
    bad, *good = _make(home, 3)
    path = SessionStore(home).session_dir(bad) / "session.json"
    if damage == "truncated":
        _truncate_half(path)
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    elif damage.startswith("edited"):  # valid JSON, but its spec (or its seed) is no longer what readers take
        document = json.loads(path.read_text())
        if damage == "edited":
            document["meta"]["1"]["spec"] = "garbage"
        else:  # an attack read it and raised ValueError
            document["meta"]["1"]["spec"]["seed"] = "abc"
        path.write_text(json.dumps(document))
    else:
        unreadable(path.parent)
    reason = {"truncated": "not valid JSON", "directory": "is a directory", "unreadable": "permission denied",
              "edited": "meta record is incomplete or edited",
              "edited-inside": "meta record is incomplete or edited"}[damage]
    for args in (["show", bad], ["show", bad, "--json"], ["export", bad, "--out", str(home / "x.json")]):
        _one_line_exit_2(run_cli(_app(), ["sessions", *args]), f"session {bad} is damaged", reason)
    assert replay_headless(bad) == 2
    assert capsys.readouterr().err.count("\n") == 1

    listed = run_cli(_app(), ["sessions", "list", "--json"])
    assert listed.exit_code == 0
    rows = {r["id"]: r for r in json.loads(listed.stdout)["sessions"]}
    assert rows[bad]["state"] == "damaged" and reason in rows[bad]["message"]
    text = run_cli(_app(), ["sessions", "list"])
    assert text.exit_code == 0 and "damaged" in text.stdout and "check --repair" in text.stderr
    _healthy_everywhere(home, good)

    deleted = run_cli(_app(), ["sessions", "delete", bad])
    assert deleted.exit_code == 0, deleted.output
    assert not os.path.lexists(home / "sessions" / bad)
    assert {r["id"] for r in SessionStore(home).list()} == set(good)


def test_an_unreadable_running_session_breaks_neither_list_nor_engine_start(home, unreadable):
    done = _make(home, 2)
    (running,) = _make(home, 1, finish=False)
    (blocked,) = _make(home, 1, finish=False)
    unreadable(SessionStore(home).session_dir(blocked))
    rows = {r["id"]: r for r in SessionStore(home).list()}
    assert rows[blocked]["state"] == "damaged" and rows[running]["live"] is False
    recovery = recover(SessionStore(home))   # what `engine start` runs
    assert recovery.interrupted == [running]
    assert [sid for sid, _ in recovery.damaged] == [blocked] and "permission denied" in recovery.damaged[0][1]
    _healthy_everywhere(home, done)


def test_a_session_json_replaced_by_a_directory_does_not_stop_recovery(home):
    done = _make(home, 1)
    first, second = _make(home, 2, finish=False)
    path = SessionStore(home).session_dir(first) / "session.json"
    path.unlink()
    path.mkdir()
    recovery = recover(SessionStore(home))
    assert recovery.interrupted == [second] and recovery.damaged[0][0] == first
    assert SessionStore(home).get(second)["state"] == "interrupted"
    _healthy_everywhere(home, done)


def test_a_garbage_catalog_is_rebuilt_by_the_first_command_that_needs_it(home):
    ids = _make(home, 3)
    store = SessionStore(home)
    store.catalog_path.write_text("garbage")
    listed = run_cli(_app(), ["sessions", "list", "--json"])
    assert listed.exit_code == 0
    assert sorted(r["id"] for r in json.loads(listed.stdout)["sessions"]) == sorted(ids)
    assert listed.stderr.count("\n") == 1 and "rebuilt it from 3 session(s)" in listed.stderr
    kept = list((store.root / ".quarantine").glob("catalog-*.json"))
    assert len(kept) == 1 and kept[0].read_text() == "garbage"      # kept aside, never deleted

    for garbage in ("[1, 2]", '{"_meta": {"1": {"schema": 1}}, "sessions": {"1": [1]}}', "{" * 100_000):
        store.catalog_path.write_text(garbage)
        assert run_cli(_app(), ["sessions", "delete", ids.pop()]).exit_code == 0
        writer = store.create(SPEC)           # `run` creates its session through the same catalog
        writer.finish("finished")
        ids.append(writer.session_id)
        assert sorted(r["id"] for r in store.list()) == sorted(ids)
    store.catalog_path.unlink()
    store.catalog_path.mkdir()                # a directory where the catalog belongs
    assert recover(store).damaged == [] and sorted(r["id"] for r in store.list()) == sorted(ids)


def test_a_missing_or_empty_catalog_beside_sessions_is_rebuilt(home):
    """With catalog.json deleted (or an old, empty one restored), `sessions list` said "no sessions yet" (exit 0)
    and no name resolved, while `sessions check` found every session."""
    ids = _make(home, 3)
    store = SessionStore(home)
    store.catalog_path.unlink()
    listed = run_cli(_app(), ["sessions", "list", "--json"])
    assert listed.exit_code == 0 and sorted(r["id"] for r in json.loads(listed.stdout)["sessions"]) == sorted(ids)
    assert "(it was missing or empty while 3 session folder(s) exist); rebuilt it from 3 session(s)" in listed.stderr
    store.catalog_path.write_text('{"_meta": {"1": {"schema": 1}}, "sessions": {}}')
    assert sorted(r["id"] for r in SessionStore(home).list()) == sorted(ids)
    assert SessionStore(home / "empty-home").list() == []  # no sessions: nothing to rebuild


def test_a_session_that_cannot_be_started_leaves_nothing_behind(home, monkeypatch):
    keep = _make(home, 1)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sessions.store, "write_rows", full_disk)
    with pytest.raises(OSError):
        SessionStore(home).create(SPEC)
    monkeypatch.undo()
    assert SessionStore(home).session_ids() == keep


def test_sessions_check_reports_truncated_garbage_catalog_and_unreadable_then_repairs(home, unreadable):
    truncated, blocked, *good = _make(home, 5)
    store = SessionStore(home)
    _truncate_half(store.session_dir(truncated) / "session.json")
    unreadable(store.session_dir(blocked))
    store.catalog_path.write_text("{not json")
    (store.session_dir(good[0]) / "session.json.partial").write_text('{"meta"')   # a crash mid-flush
    (store.root / "catalog.json.partial").write_text("")

    found = run_cli(_app(), ["sessions", "check"])
    assert found.exit_code == 1, found.output
    assert f"{truncated}: damaged: session.json is not valid JSON" in found.stdout
    assert f"{blocked}: damaged:" in found.stdout and "permission denied" in found.stdout
    assert "catalog: catalog.json is not valid JSON" in found.stdout and "2 stale file(s)" in found.stdout
    assert store.catalog_path.read_text() == "{not json"        # a check alone changes nothing

    repaired = run_cli(_app(), ["sessions", "check", "--repair", "--json"])
    assert repaired.exit_code == 0, repaired.output
    report = json.loads(repaired.stdout)
    assert report["repaired"] and {d["id"] for d in report["damaged"]} == {truncated, blocked}
    assert not report["catalog"]["ok"] and Path(report["catalog"]["kept"]).read_text() == "{not json"
    quarantine = store.root / ".quarantine"
    assert (quarantine / truncated / "session.json").exists() and (quarantine / f"{truncated}.reason").exists()
    assert (quarantine / blocked).is_dir() and not list(store.root.rglob("*.partial"))

    again = run_cli(_app(), ["sessions", "check"])
    assert again.exit_code == 0 and "3 healthy, 0 damaged; all good" in again.stdout
    _healthy_everywhere(home, good)
    assert sorted(r["id"] for r in store.list()) == sorted(good)
    assert run_cli(_app(), ["sessions", "delete", good[0]]).exit_code == 0


def test_a_hole_in_the_event_sequence_is_damage(home):
    store = SessionStore(home, segment_size=4)
    writer = store.create(SPEC)
    for i in range(10):
        writer.emit("step", step=i, phase="u", lr=0.1, losses={"total": 1.0})
    writer.finish("finished")
    (store.session_dir(writer.session_id) / "seg-000001.json").unlink()
    with pytest.raises(SessionDamaged, match="seg-000001.json is missing"):
        store.events(writer.session_id)
    doc = json.loads((store.session_dir(writer.session_id) / "seg-000000.json").read_text())
    doc["events"].pop("2")
    (store.session_dir(writer.session_id) / "seg-000000.json").write_text(json.dumps(doc))
    report = check(store)
    assert report.damaged and report.damaged[0]["id"] == writer.session_id


def test_recovery_removes_what_a_crash_left_behind(home):
    (sid,) = _make(home, 1)
    store = SessionStore(home)
    (store.session_dir(sid) / "seg-000000.json.partial").write_text("{")
    live = store.create(SPEC)                 # a live writer's .partial is never touched
    (store.session_dir(live.session_id) / "session.json.partial").write_text("{")
    (store.root / f".deleted-{sid}-ab12").mkdir()   # a crash in the middle of a delete
    assert recover(store).cleaned == 2
    assert (store.session_dir(live.session_id) / "session.json.partial").exists()
    assert not (store.root / f".deleted-{sid}-ab12").exists()
    live.finish("finished")


def test_files_are_private(home):
    os.chmod(home, 0o755)
    (home / "sessions").mkdir(mode=0o755)              # made by an older release
    (sid,) = _make(home, 1)
    store = SessionStore(home)
    for path in (store.root, store.session_dir(sid)):
        assert path.stat().st_mode & 0o777 == 0o700, path
    for path in (store.catalog_path, store.session_dir(sid) / "session.json"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    fresh = home / "new-home"
    SessionStore(fresh).create(SPEC).finish("finished")
    assert fresh.stat().st_mode & 0o777 == 0o700       # a home the store makes is private too


@pytest.mark.skipif(os.geteuid() == 0, reason="chmod 000 hides nothing from root (see `unreadable`)")
def test_chmod_000_as_a_normal_user(home):
    bad, *good = _make(home, 3)
    sdir = SessionStore(home).session_dir(bad)
    os.chmod(sdir, 0)
    try:
        _one_line_exit_2(run_cli(_app(), ["sessions", "show", bad]), "damaged", "permission denied")
        rows = {r["id"]: r["state"] for r in SessionStore(home).list()}
        assert rows[bad] == "damaged"
        assert run_cli(_app(), ["sessions", "delete", bad]).exit_code == 0
        _healthy_everywhere(home, good)
    finally:
        if sdir.exists():
            os.chmod(sdir, 0o700)
            shutil.rmtree(sdir)


async def test_the_tui_home_lists_a_damaged_session_and_opens_it_to_an_error(home):
    from conftest import wait_until
    from screens.home import HomeScreen
    from workbench.tui import create_app

    bad, good = _make(home, 2)
    _truncate_half(SessionStore(home).session_dir(bad) / "session.json")
    SessionStore(home).catalog_path.write_text("garbage")
    app = create_app(start_engine=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, HomeScreen)
        table = screen.query_one("#sessions")
        await wait_until(pilot, lambda: table.row_count == 2)
        states = {row["id"]: row["state"] for row in screen.shown}
        assert states == {bad: "damaged", good: "finished"}
        assert "damaged" in [str(c) for c in table.get_row(bad)]
        index = [row["id"] for row in screen.shown].index(bad)
        table.move_cursor(row=index)
        await pilot.press("enter")                      # the monitor says what is wrong; nothing crashes
        from screens.monitor import MonitorScreen

        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.source_error)
        assert f"session {bad} is damaged" in app.screen.source_error


def test_a_home_on_a_read_only_file_system_is_read_and_a_write_to_it_is_one_line(tmp_path, monkeypatch, capsys):
    """Every session of a read-only home read as damaged (probing the writer's lock opened it for writing), and
    `run` and `engine start` died in tracebacks."""
    import errno
    import sys

    from sessions.check import check
    from workbench.cli import main

    writer = SessionStore(tmp_path).create({"method": "ft"})
    writer.emit("log", level="info", message="kept")
    writer.finish("finished")
    real_open, real_mkdir = os.open, os.mkdir

    def refuse(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    def read_only_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(tmp_path)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def read_only_mkdir(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path)):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    monkeypatch.setattr(os, "mkdir", read_only_mkdir)
    store = SessionStore(tmp_path)
    assert not store.is_live(writer.session_id) and store.get(writer.session_id)["state"] == "finished"
    assert not check(store).problems
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["mmul-workbench", "engine", "start"])
    with pytest.raises(SystemExit) as ended:
        main()
    err = capsys.readouterr().err
    assert ended.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: cannot write {tmp_path}/engine (Read-only file system); set MMUL_HOME")
    # `run --engine` said "engine unavailable: [Errno 30] ..." and exit 1 on the same home
    monkeypatch.setattr(sys, "argv", ["mmul-workbench", "run", "--method", "ft", "--model", "clip-tiny", "--data",
                                      "shapes-tiny", "--delete", "8", "--engine"])
    with pytest.raises(SystemExit) as ended:
        main()
    err = capsys.readouterr().err
    assert ended.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: cannot write {tmp_path}/engine (Read-only file system); set MMUL_HOME")


def test_a_readable_session_with_fields_off_is_reported_and_never_moved_aside(home):
    """An eval event whose metrics were edited into a string read fine everywhere, yet check called the session
    damaged and --repair moved it into the quarantine; a summary replaced by garbage passed as healthy."""
    edited, garbage, good = _make(home, 3)
    store = SessionStore(home)
    path = store.session_dir(edited) / "session.json"
    document = json.loads(path.read_text())
    event = next(e for e in document["events"].values() if e["kind"] == "eval")
    event["metrics"] = "x"
    path.write_text(json.dumps(document))
    path = store.session_dir(garbage) / "session.json"
    document = json.loads(path.read_text())
    next(iter(document["meta"].values()))["summary"] = {"metrics": "x", "steps": "many"}
    path.write_text(json.dumps(document))

    # the edited summary left the catalog's row behind, which is what --repair rebuilds (exit 1 until then)
    assert run_cli(_app(), ["sessions", "check"]).exit_code == 1
    for args in (["sessions", "check", "--repair"], ["sessions", "check"]):
        out = run_cli(_app(), args)
        assert out.exit_code == 0, out.output
        assert f"{edited}: readable, but event {event['seq']} is outside the schema" in out.stdout
        assert f"{garbage}: readable, but its summary is not an object with a metrics object" in out.stdout
        assert "1 healthy, 2 readable with fields off, 0 damaged;" in out.stdout
    assert sorted(r["id"] for r in store.list()) == sorted([edited, garbage, good])
    assert not (store.root / ".quarantine").exists()
    assert run_cli(_app(), ["sessions", "show", edited]).exit_code == 0


def test_only_a_write_refused_under_the_home_is_called_the_homes(tmp_path, monkeypatch):
    """Every EACCES/EPERM/EROFS anywhere (a kill of another user's process, a file elsewhere) was told to set
    MMUL_HOME."""
    import errno

    from workbench.output import unwritable_home

    monkeypatch.setenv("MMUL_HOME", str(tmp_path / "home"))
    inside = OSError(errno.EROFS, "Read-only file system", str(tmp_path / "home" / "sessions" / "x"))
    assert unwritable_home(inside).startswith(f"cannot write {tmp_path}/home/sessions/x (Read-only file system)")
    assert unwritable_home(OSError(errno.EACCES, "Permission denied", "/etc/shadow")) is None
    assert unwritable_home(OSError(errno.EPERM, "Operation not permitted")) is None   # no path: not the home's
    assert unwritable_home(OSError(errno.ENOSPC, "No space", str(tmp_path / "home" / "x"))) is None


def test_a_repair_the_full_disk_kept_from_marking_a_session_says_so(home, monkeypatch):
    """On a full disk `sessions check --repair` said a running session was "marked interrupted" and "repaired" when
    it was not, and recovery then called the sound session damaged (a review)."""
    import sessions.recovery as recovery
    from sessions.errors import DiskFull

    (sid,) = _make(home, n=1, finish=False)

    def no_room(store, session_id, message):
        raise DiskFull(store.root / session_id / "session.json", needed=145_000)

    monkeypatch.setattr(recovery, "interrupt", no_room)
    assert recover(SessionStore(home)).damaged == [] and [s for s, _ in recover(SessionStore(home)).unmarked] == [sid]
    report = check(SessionStore(home), repair=True)
    assert not report.repaired and [entry["id"] for entry in report.unmarked] == [sid]
    shown = run_cli(_app(), ["sessions", "check", "--repair"])
    assert shown.exit_code == 1 and f"{sid}: still marked running, and no process writes it: could not be marked " \
        "interrupted (disk full" in shown.stdout and "free some space and repair again" in shown.stdout
    assert SessionStore(home).list()[0]["state"] == "running"
