"""The session store: event schema, atomic segmented files, catalog, readers, crash recovery."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from tinydb import TinyDB

from sessions.metric_names import flatten, nest
from sessions.recovery import recover
from sessions.schema import SchemaMismatch, check_event
from sessions.series import downsample, final_table, loss_series, tidy_rows
from sessions.store import SessionBusy, SessionStore, UnknownSession

from sessions_fixtures import ROOT, wait_for, writer_script

SPEC = {"method": "ft", "model": "clip-tiny", "data": "shapes-tiny",
        "deletion": {"strategy": "random", "n": 4, "seed": 42}, "device": "cpu"}


def _steps(writer, n, start=0, phase="unlearn"):
    for i in range(start, start + n):
        writer.emit("step", step=i, phase=phase, losses={"total": 1.0 / (i + 1), "kl": 0.5}, lr=1e-3)


def test_roundtrip_catalog_and_tinydb_files(tmp_path):
    store = SessionStore(tmp_path)
    writer = store.create(SPEC, name="first")
    sid = writer.session_id
    assert len(sid) == 20 and sid[8] == "-" and sid[15] == "-"
    writer.emit("phase", name="unlearn")
    writer.emit("eval", step=0, phase="unlearn", split="before", metrics={"df_dr_auc": 0.9})
    _steps(writer, 5)
    writer.emit("log", level="info", message="hello")
    writer.emit("artifact", name="checkpoint", path="/tmp/x")
    writer.emit("eval", step=5, phase="eval", split="after", metrics={"df_dr_auc": 0.5, "test.r_mean": 40.0})
    writer.finish("finished", summary={"metrics": {"df_dr_auc": 0.5}})

    events = store.events(sid)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert [e["kind"] for e in events[:2]] == ["status", "phase"]
    assert events[0]["state"] == "running" and events[-1] == {**events[-1], "kind": "status", "state": "finished"}
    for e in events:
        check_event(e)
        assert e["v"] == 1 and isinstance(e["ts"], float)
    assert store.events(sid, from_seq=5) == events[5:]

    meta = store.get(sid)
    assert meta["state"] == "finished" and meta["spec"] == SPEC and meta["live"] is False
    (row,) = store.list()
    assert row["id"] == sid and row["name"] == "first" and row["state"] == "finished"
    assert row["method"] == "ft" and row["deletion"] == SPEC["deletion"]
    assert row["summary"] == {"metrics": {"df_dr_auc": 0.5}} and row["events"] == len(events)

    # plain TinyDB files, readable by TinyDB itself
    sdb = TinyDB(str(store.session_dir(sid) / "session.json"), access_mode="r")
    assert len(sdb.table("events").all()) == len(events) and sdb.table("meta").all()[0]["id"] == sid
    cdb = TinyDB(str(store.catalog_path), access_mode="r")
    assert cdb.table("sessions").all()[0]["id"] == sid
    assert not list(store.root.rglob("*.partial"))


def test_segments_are_sealed_once_and_readers_stitch_them(tmp_path):
    store = SessionStore(tmp_path, segment_size=20)
    writer = store.create(SPEC)
    sid, sdir = writer.session_id, store.session_dir(writer.session_id)
    _steps(writer, 44)                       # seq 0..44 -> two sealed segments + 5 open
    seg0 = sdir / "seg-000000.json"
    before = (seg0.stat().st_ino, seg0.stat().st_mtime_ns)
    _steps(writer, 60, start=44)
    writer.flush()
    assert (seg0.stat().st_ino, seg0.stat().st_mtime_ns) == before  # never rewritten
    assert sorted(p.name for p in sdir.glob("seg-*.json")) == [f"seg-{i:06d}.json" for i in range(5)]
    events = store.events(sid)
    assert [e["seq"] for e in events] == list(range(105))
    assert [e["seq"] for e in store.events(sid, from_seq=57)] == list(range(57, 105))
    # the open segment holds only the events after the last seal
    doc = json.loads((sdir / "session.json").read_text())
    assert len(doc["events"]) == 5 and doc["meta"]["1"]["sealed"] == 5
    writer.finish("finished")
    assert len(store.events(sid)) == 106


class ManualClock:
    """A writer's clock whose monotonic time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return self.now


def test_flush_at_phase_boundary_and_on_time(tmp_path):
    clock = ManualClock()
    store = SessionStore(tmp_path, flush_interval=0.05, clock=clock)
    writer = store.create(SPEC)
    sid = writer.session_id
    _steps(writer, 1)
    assert len(store.events(sid)) == 1              # buffered, not yet on disk
    writer.emit("phase", name="eval")
    assert len(store.events(sid)) == 3              # a phase boundary flushes
    _steps(writer, 1)
    clock.now += 0.03
    _steps(writer, 1, start=1)
    assert len(store.events(sid)) == 3              # not yet a flush interval since the last flush
    clock.now += 0.03
    _steps(writer, 1, start=2)
    assert len(store.events(sid)) == 6              # the next emit after the interval flushes
    _steps(writer, 1, start=3)
    assert len(store.events(sid)) == 6
    clock.now += 0.1
    wait_for(lambda: writer.stats["flushes"] >= 4, timeout=3)  # the background flush, with no more emits
    assert writer.stats["flushes"] == 4 and len(store.events(sid)) == 7
    writer.finish("cancelled", message="stopped")
    meta = store.get(sid)
    assert meta["state"] == "cancelled" and meta["message"] == "stopped"


def test_event_validation_and_writer_misuse(tmp_path):
    writer = SessionStore(tmp_path).create(SPEC)
    with pytest.raises(ValueError, match="unknown event kind"):
        writer.emit("bogus", x=1)
    with pytest.raises(ValueError, match="total"):
        writer.emit("step", step=1, phase="u", losses={"kl": 1.0}, lr=0.1)
    with pytest.raises(ValueError, match="needs field"):
        writer.emit("eval", step=1, phase="u", metrics={})
    with pytest.raises(ValueError, match="unknown state"):
        writer.emit("status", state="exploded")
    with pytest.raises(ValueError, match="finish"):
        writer.emit("status", state="finished")
    with pytest.raises(ValueError):
        writer.finish("running")

    class Scalar:  # numpy / torch scalars are converted
        def __init__(self, v):
            self.v = v

        def item(self):
            return self.v

    event = writer.emit("step", step=1, phase="u", losses={"total": Scalar(0.25)}, lr=Scalar(0.1))
    assert event["losses"]["total"] == 0.25 and event["lr"] == 0.1
    writer.finish("finished")
    with pytest.raises(RuntimeError, match="finished"):
        writer.emit("log", level="info", message="late")


def test_context_manager_marks_failed(tmp_path):
    store = SessionStore(tmp_path)
    with pytest.raises(ZeroDivisionError):
        with store.create(SPEC) as writer:
            1 / 0
    meta = store.get(writer.session_id)
    assert meta["state"] == "failed" and "ZeroDivisionError" in meta["message"]


def test_unknown_ids_resolve_and_schema_mismatch(tmp_path):
    store = SessionStore(tmp_path)
    with pytest.raises(UnknownSession) as info:
        store.get("20200101-000000-zzzz")
    assert isinstance(info.value, KeyError) and "\n" not in str(info.value) and "sessions list" in str(info.value)
    with pytest.raises(UnknownSession):
        store.events("../../etc")
    a = store.create(SPEC)
    a.finish("finished")
    assert store.resolve(a.session_id[-4:]) == a.session_id
    assert store.resolve(a.session_id[:17]) == a.session_id

    path = store.session_dir(a.session_id) / "session.json"
    doc = json.loads(path.read_text())
    doc["meta"]["1"]["schema"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaMismatch, match="schema 99"):
        store.events(a.session_id)
    cat = json.loads(store.catalog_path.read_text())
    cat["_meta"]["1"]["schema"] = 2
    store.catalog_path.write_text(json.dumps(cat))
    with pytest.raises(SchemaMismatch, match="schema 2"):
        store.list()


def test_delete_refused_while_live(tmp_path):
    store = SessionStore(tmp_path)
    keep = store.create(SPEC)
    keep.finish("finished")
    live = store.create(SPEC)
    assert store.is_live(live.session_id)
    with pytest.raises(SessionBusy):
        store.delete(live.session_id)
    live.finish("finished")
    store.delete(live.session_id)
    assert [r["id"] for r in store.list()] == [keep.session_id]
    assert not store.session_dir(live.session_id).exists()
    with pytest.raises(UnknownSession):
        store.get(live.session_id)


def killed_writer(store: SessionStore, events: int) -> str:
    """A session whose writer, a subprocess, was killed with SIGKILL after writing more than `events` events."""
    proc = subprocess.Popen(writer_script(store.root.parent, steps=100000, sleep=0.001, flush_interval=0.05),
                            stdout=subprocess.PIPE, text=True)
    try:
        sid = proc.stdout.readline().strip()
        wait_for(lambda: len(store.events(sid)) > events, timeout=10)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return sid


def test_recovery_marks_dead_writers_interrupted_only(tmp_path):
    store = SessionStore(tmp_path)
    done = store.create(SPEC)
    done.finish("finished")
    done_bytes = (store.session_dir(done.session_id) / "session.json").read_bytes()
    live = store.create(SPEC)      # a live writer in this process (e.g. a headless run): untouched
    sid = killed_writer(store, events=30)
    flushed = store.events(sid)                       # parses; holds events up to the last flush
    assert [e["seq"] for e in flushed] == list(range(len(flushed)))
    assert store.get(sid)["state"] == "running"
    live_flags = {r["id"]: r.get("live") for r in store.list()}
    assert live_flags == {done.session_id: None, live.session_id: True, sid: False}

    assert recover(store).interrupted == [sid]
    events = store.events(sid)
    assert events[:-1] == flushed and events[-1]["kind"] == "status" and events[-1]["state"] == "interrupted"
    rows = {r["id"]: r["state"] for r in store.list()}
    assert rows == {done.session_id: "finished", live.session_id: "running", sid: "interrupted"}
    assert (store.session_dir(done.session_id) / "session.json").read_bytes() == done_bytes
    assert recover(store).interrupted == []
    live.finish("finished")


def test_check_finds_a_session_its_killed_writer_left_running_and_repair_ends_it(tmp_path):
    """A headless user never starts the engine, whose start marks such sessions interrupted: `check --repair`
    said all was healthy and left it `running?` for good."""
    from sessions.check import check

    store = SessionStore(tmp_path)
    live = store.create(SPEC)      # written by a live process: neither abandoned nor touched
    sid = killed_writer(store, events=5)
    report = check(store)
    assert report.abandoned == [sid] and report.problems and live.session_id in report.live
    repaired = check(store, repair=True)
    assert repaired.repaired and store.get(sid)["state"] == "interrupted"
    assert "sessions check --repair" in store.get(sid)["message"] and store.get(live.session_id)["state"] == "running"
    assert not check(store).problems
    live.finish("finished")

READER = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {root!r})
    from tinydb import TinyDB
    from sessions.store import SessionStore
    store = SessionStore({home!r})
    sid = {sid!r}
    path = store.session_dir(sid) / "session.json"
    reads = errors = last = 0
    deadline = time.time() + 30
    print("ready", flush=True)
    while time.time() < deadline:
        try:
            json.loads(path.read_bytes())
            TinyDB(str(path), access_mode="r").table("events").all()
            events = store.events(sid)
            assert [e["seq"] for e in events] == list(range(len(events))), "gap"
            assert len(events) >= last, "went back"
            last = len(events)
            reads += 1
            if events and events[-1]["kind"] == "status" and events[-1]["state"] == "finished":
                break
        except Exception as exc:
            errors += 1
            print("error", repr(exc), file=sys.stderr)
    print(json.dumps({{"reads": reads, "errors": errors, "last": last}}))
""")


def test_reader_process_in_tight_loop_sees_no_errors(tmp_path):
    store = SessionStore(tmp_path, segment_size=300, flush_interval=0.005)
    writer = store.create(SPEC)
    code = READER.format(root=str(ROOT), home=str(tmp_path), sid=writer.session_id)
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert reader.stdout.readline().strip() == "ready"  # writes start once the reader reads, not before
        for i in range(2500):
            _steps(writer, 1, start=i)
            if i % 500 == 0:
                writer.emit("phase", name=f"p{i}")
            os.sched_yield()  # let the reader process in between the writes
        writer.finish("finished")
        out, err = reader.communicate(timeout=40)
    finally:
        if reader.poll() is None:
            reader.kill()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["errors"] == 0, err
    assert result["reads"] > 20 and result["last"] == len(store.events(writer.session_id))


def test_concurrent_writers_keep_the_catalog_whole(tmp_path):
    store = SessionStore(tmp_path)

    def run():
        w = store.create(SPEC)
        _steps(w, 3)
        w.finish("finished")

    threads = [threading.Thread(target=run) for _ in range(6)]
    procs = [subprocess.Popen(writer_script(tmp_path, steps=3, sleep=0)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        assert p.wait(timeout=30) == 0
    rows = store.list()
    assert len(rows) == 9 and all(r["state"] == "finished" for r in rows)


def test_series_helpers():
    events = [
        {"seq": 0, "ts": 1.0, "kind": "eval", "step": 0, "phase": "u", "split": "before",
         "metrics": {"df_dr_auc": 0.9, "test": {"r_mean": 50}}},
        *[{"seq": i, "ts": 1.0, "kind": "step", "step": i, "phase": "u", "losses": {"total": float(i)}, "lr": 0.1}
          for i in range(1, 6)],
        {"seq": 6, "ts": 1.0, "kind": "eval", "step": 5, "phase": "e", "split": "after",
         "metrics": {"df_dr_auc": 0.5}},
    ]
    assert loss_series(events)["total"] == ([0, 1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0, 5.0])
    columns, rows = final_table(events)
    assert columns == ["before", "after"] and rows["df_dr_auc"] == {"before": 0.9, "after": 0.5}
    assert rows["test.r_mean"] == {"before": 50.0}
    names = [r[7] for r in tidy_rows(events)]
    assert names.count("loss.total") == 5 and names.count("lr") == 5 and "test.r_mean" in names
    xs = list(range(1000))
    ys = [float((i * 37) % 101) for i in xs]
    ys[500] = 1e6
    dx, dy = downsample(xs, ys, 100)
    assert len(dx) <= 100 and 1e6 in dy and dx == sorted(dx)


def test_metric_names_flatten_and_nest_are_inverses():
    nested = {"df_dr_auc": 0.5, "test": {"r_mean": 40.0, "txt_r1": 30.0}, "mia": {"auc": 0.6}}
    flat = {"df_dr_auc": 0.5, "test.r_mean": 40.0, "test.txt_r1": 30.0, "mia.auc": 0.6}
    assert flatten(nested) == flat and nest(flat) == nested and nest(flatten(nested)) == nested
    assert flatten({"a": {"b": {"c": 1}}, "ok": True, "name": "x"}) == {"a.b.c": 1.0}
    assert nest({"a.b.c": 1.0}) == {"a": {"b": {"c": 1.0}}}


def test_plots_share_one_percent_scale_and_leave_recall_at_k_to_the_tables():
    from sessions.series import eval_series, plotted_metric, request_series

    assert plotted_metric("df_dr_auc", 0.9) == ("df_dr_auc", pytest.approx(90.0))  # fractions x100
    assert plotted_metric("test.r_mean", 55.0) == ("test.r_mean", 55.0)          # percent as stored
    assert plotted_metric("mmbench_retention", 80.0) == ("mmbench_retention", 80.0)
    assert plotted_metric("test.r1_i2t", 30.0) is None
    assert plotted_metric("df.txt_r1", 30.0) is None and plotted_metric("dr.img_r10", 90.0) is None
    events = [{"kind": "step"}, {"kind": "eval", "split": "step",
                                 "metrics": {"df_dr_auc": 0.7, "test": {"r_mean": 40.0, "img_r5": 60.0}}},
              {"kind": "eval", "split": "after", "request": 0, "metrics": {"forget": {"image": 0.5},
                                                                           "mmbench_retention": 90.0}}]
    assert eval_series(events) == {"df_dr_auc": ([1], [pytest.approx(70.0)]), "test.r_mean": ([1], [40.0])}
    assert request_series(events) == {"forget.image": ([0.0], [50.0]), "mmbench_retention": ([0.0], [90.0])}


class SettableClock:
    """A store's clock whose wall time the test sets (the engine start that recovers comes hours later)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()


def test_an_interrupted_sessions_took_ends_at_its_last_event(tmp_path):
    from sessions.summary import run_seconds, took

    clock = SettableClock(1_000_000.0)
    store = SessionStore(tmp_path, clock=clock)
    writer = store.create(SPEC)
    clock.now += 12.5
    writer.emit("phase", name="unlearn")               # the last thing the run did: 12.5 s after it was created
    writer.abandon()                                   # its writer died (kill -9)
    clock.now += 3 * 3600                              # the next engine start, three hours later
    (unrepaired,) = store.list()   # before it: still "running", no process writes it; its took grew with the clock
    assert unrepaired["live"] is False and run_seconds(unrepaired, now=clock.now) == 12.5
    assert recover(store).interrupted == [writer.session_id]
    meta, (row,) = store.get(writer.session_id), store.list()
    assert meta["state"] == "interrupted" and store.events(writer.session_id)[-1]["ts"] == clock.now
    assert took(meta) == run_seconds(row) == 12.5
    from sessions.export import session_document   # what `sessions show` and `export` read: the same 12.5 s
    assert took(session_document(store, writer.session_id)) == 12.5


def test_a_writers_lock_waits_out_a_readers_momentary_probe(tmp_path, monkeypatch):
    """A reader's probe holds a shared lock for microseconds; a writer's non-blocking exclusive lock taken in that
    moment failed (1,419 of 408,653 tries in a review's loop): a new session died on an assert, a delete said
    "queued or running"."""
    import fcntl

    import sessions.files as sessions_files
    from sessions.files import try_lock

    path = tmp_path / ".writer.lock"
    path.touch()
    probe = os.open(path, os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
    pauses = []

    def pause(seconds):   # the probe lets go while the writer waits for the first time
        pauses.append(seconds)
        if len(pauses) == 1:
            os.close(probe)

    monkeypatch.setattr(sessions_files.time, "sleep", pause)
    fd = try_lock(path)
    assert fd is not None and len(pauses) == 1
    os.close(fd)
    holder = os.open(path, os.O_RDONLY)        # a lock held for good is still a holder
    fcntl.flock(holder, fcntl.LOCK_SH | fcntl.LOCK_NB)
    try:
        assert try_lock(path) is None
    finally:
        os.close(holder)
