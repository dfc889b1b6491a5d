"""A stopped run of K requests goes on from its resume point (engine/protocols/resume.py, sessions/resuming.py,
`mmul-workbench resume`) and ends with the numbers of a run that was never stopped."""
import json
import secrets

import pytest
import typer

from conftest import run_in_process

SPEC = {"method": "multidelete", "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu", "seed": 7,
        "deletion": {"strategy": "random", "n": 6, "seed": 7}, "requests": 3, "resume_every": 0,
        "params": {"epochs": 1}}
PULSE = {"kind": "pulse", "method": "npo", "model": "llava-tiny", "data": "people-tiny", "requests": 3, "forget": 3,
         "knowledge": "finetuned", "device": "cpu", "seed": 5, "resume_every": 0}


def validated(raw: dict) -> dict:
    from engine.spec import validate, validate_pulse

    return validate_pulse(raw) if raw.get("kind") == "pulse" else validate(raw)


def stopped_after(spec: dict, request: int) -> tuple[str, list[dict]]:
    """Run `spec` as session id S until its resume point after `request` is written, then stop it as Ctrl-C
    would between two steps: (S, the events it emitted)."""
    from engine.errors import Cancelled
    from engine.protocols.requests import run_requests

    session, events, stop = f"stopped-{secrets.token_hex(4)}", [], []

    def emit(kind, **fields):
        events.append({"kind": kind, **fields})
        if kind == "artifact" and fields["name"] == "resume_point" and fields["request"] == request:
            stop.append(True)
    with pytest.raises(Cancelled):
        run_requests(spec, emit, lambda: bool(stop), session_id=session)
    return session, events


def marked(events: list[dict]) -> set[int]:
    """The requests whose resume_point events a run emitted (what its session's events would hold)."""
    return {e["request"] for e in events if e["kind"] == "artifact" and e["name"] == "resume_point"}


def resumed(spec: dict, session: str, reached: set[int]) -> tuple[dict, list[dict]]:
    from engine.protocols.requests import run_requests
    from engine.protocols.resume import check_resumable
    from sessions.paths import cache_dir

    again = {**spec, "resumes": {"session": session}}
    again["resumes"] = check_resumable(again, cache_dir(spec.get("artifacts")), reached)
    events: list[dict] = []
    document = run_requests(again, lambda kind, **fields: events.append({"kind": kind, **fields}), lambda: False,
                            session_id=f"resumed-{secrets.token_hex(4)}")
    return document, events


def numbers(document: dict) -> dict:
    """What a run measured (not what it took): every request's entry without its timings, the final metrics, the
    history, the per-unit scores."""
    return {"requests": [{key: value for key, value in entry.items() if key not in ("seconds", "cost")}
                         for entry in document["requests"]],
            **{key: document.get(key) for key in ("metrics", "original_metrics", "history", "df_unit_scores",
                                                  "steps", "hyperparameters", "variant")}}


def never_stopped(raw: dict) -> dict:
    from engine.protocols.requests import run_requests
    from engine.protocols.resume import point_dir
    from sessions.paths import cache_dir

    from sessions.resuming import drop_points_of_finished

    whole = run_requests(validated(raw), lambda kind, **fields: None, lambda: False,
                         session_id=f"whole-{secrets.token_hex(4)}")
    # the run keeps its last point until its finish is written (an engine killed in between left nothing to resume
    # from: a review); what writes the finish drops it
    assert point_dir(cache_dir(), whole["session"]).is_dir()
    drop_points_of_finished(validated(raw), whole["session"])
    assert not point_dir(cache_dir(), whole["session"]).exists()  # a finished run keeps no point
    return whole


@pytest.fixture(scope="module")
def whole_clip(shared_home):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMUL_HOME", str(shared_home))
        return never_stopped(SPEC)


@pytest.mark.parametrize("raw", [SPEC, PULSE], ids=["clip-multidelete", "llava-npo-lora"])
def test_a_run_resumed_after_a_request_ends_as_one_never_stopped(home, raw, request):
    from engine.protocols.resume import point_dir
    from sessions.paths import cache_dir

    spec = validated(raw)
    whole = request.getfixturevalue("whole_clip") if raw is SPEC else never_stopped(raw)
    session, before = stopped_after(spec, 1)
    assert [e["request"] for e in before if e["kind"] == "artifact"] == [1]
    assert point_dir(cache_dir(), session).is_dir()
    document, events = resumed(spec, session, marked(before))
    assert numbers(document) == numbers(whole)
    assert document["resumed"] == {"session": session, "request": 1}
    # the setup's events are held back (the new session has the old one's); requests 2 and 3 are emitted
    assert not any(e["kind"] == "eval" and e.get("split") == "before" for e in events)
    assert sorted({e["request"] for e in events if e["kind"] == "eval" and e.get("split") == "after"}) == [2, 3]
    assert [e["message"] for e in events if e["kind"] == "log"][0] == f"resumed session {session} after request 1 of 3"
    from sessions.resuming import drop_points_of_finished

    drop_points_of_finished({**spec, "resumes": {"session": session}}, document["session"])
    assert not point_dir(cache_dir(), session).exists()  # gone once the resumed run's finish is written


def test_a_resume_at_another_thread_count_computes_at_the_points(home, whole_clip):
    """On the CPU the thread count is part of the arithmetic and of the cached original's key: a resume in a process
    at another count went looking for (and trained) another original, then failed on it (exit 1). It computes at
    the point's count instead, ends with the numbers of a run never stopped, and gives the process its count back."""
    import torch

    spec = validated(SPEC)
    session, before = stopped_after(spec, 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        document, events = resumed(spec, session, marked(before))
        assert torch.get_num_threads() == threads + 1
    finally:
        torch.set_num_threads(threads)
    assert numbers(document) == numbers(whole_clip)
    assert not any(e["kind"] == "phase" and e["name"] == "original" for e in events)  # the point's original loaded
    assert any(e["kind"] == "log" and e["message"].startswith(f"computing at the resume point's {threads} torch threads")
               for e in events)


def test_the_point_its_events_reach_is_the_one_it_goes_on_from(home):
    """A kill -9 of the engine in the half second after a point was written left a session whose events ended
    before that point's event, with the point before it already deleted: it could never resume. The point before
    is kept, and taken when the newest is out of the events' reach, or damaged."""
    from engine.errors import SpecError
    from engine.protocols.resume import check_resumable, points, resume_point_dirs
    from sessions.paths import cache_dir

    spec = validated(SPEC)
    session, events = stopped_after(spec, 2)
    assert marked(events) == {1, 2} and [state["request"] for state, _ in points(cache_dir(), session)[0]] == [2, 1]
    whole = {"session": session}
    assert check_resumable({**spec, "resumes": whole}, cache_dir(), {1, 2})["request"] == 2
    assert check_resumable({**spec, "resumes": whole}, cache_dir(), {1})["request"] == 1  # event 2 never written
    newest, older = resume_point_dirs(cache_dir(), session)
    # a damaged older point beside a sound newest one is not news: the run goes on from the newest without a warning
    kept_state = (older / "state.json").read_text()
    (older / "state.json").write_text("{")
    taken = check_resumable({**spec, "resumes": {**whole, "unusable": ["stale"]}}, cache_dir(), {1, 2})
    assert taken["request"] == 2 and "unusable" not in taken
    (older / "state.json").write_text(kept_state)
    weights = newest / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])   # cut short
    taken = check_resumable({**spec, "resumes": whole}, cache_dir(), {1, 2})
    assert taken["request"] == 1
    # and the resumed run says why it went on from the older one (it said nothing; a review)
    assert len(taken["unusable"]) == 1 and "model.safetensors" in taken["unusable"][0]
    _, events = resumed(spec, session, {1, 2})
    assert any(e["kind"] == "log" and e["level"] == "warning" and "went on from an older one (after request 1"
               in e["message"] for e in events)
    (older / "state.json").write_text('{"version": 1, "request": "1"}')
    with pytest.raises(SpecError, match=f"session {session} cannot resume: its points cannot be used .*model.safetensors "
                                        "is damaged.*has no valid 'spec'"):
        check_resumable({**spec, "resumes": whole}, cache_dir(), {1, 2})


def test_a_point_for_another_spec_or_none_is_refused(home, monkeypatch):
    import engine.protocols.resume as resume
    from engine.errors import SpecError
    from engine.protocols.resume import check_resumable
    from sessions.paths import cache_dir

    spec = validated(SPEC)
    session, events = stopped_after(spec, 1)
    other = validated({**SPEC, "seed": 8})
    with pytest.raises(SpecError, match="written for a spec that differs from the session's in seed "):
        check_resumable({**other, "resumes": {"session": session}}, cache_dir(), marked(events))
    with pytest.raises(SpecError, match="has no resume point"):
        check_resumable({**spec, "resumes": {"session": "20260101-000000-abcd"}}, cache_dir(), set())
    assert check_resumable({**spec, "name": "again", "resumes": {"session": session}}, cache_dir(),
                           marked(events))["request"] == 1
    # data whose files changed since the point (a deletion set and requests that may be others): refused up front
    real_identity = resume.data_identity
    monkeypatch.setattr(resume, "data_identity", lambda ref: "another identity")
    with pytest.raises(SpecError, match="shapes-tiny changed since session .* resume point was written"):
        check_resumable({**spec, "resumes": {"session": session}}, cache_dir(), marked(events))
    monkeypatch.setattr(resume, "data_identity", real_identity)
    # a cluster run's point holds the device Ray placed it on, where the session says auto: not a difference
    state_file = resume.point_dir(cache_dir(), session) / resume.STATE_FILE
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "spec": {**state["spec"], "cluster": "ray", "device": "cpu"}}))
    assert check_resumable({**spec, "cluster": "ray", "device": "auto", "resumes": {"session": session}}, cache_dir(),
                           marked(events))["request"] == 1
    with pytest.raises(SpecError, match="differs from the session's in device"):  # off a cluster it is one
        state_file.write_text(json.dumps(state))
        check_resumable({**spec, "device": "cuda", "resumes": {"session": session}}, cache_dir(), marked(events))
    # a point of real files written before points recorded the data's identity cannot tell a change: refused
    state["spec"]["data"] = "flickr30k:/srv/flickr30k"
    del state["data"]
    state_file.write_text(json.dumps(state))
    with pytest.raises(SpecError, match="written by an earlier mmul-workbench, which did not record the identity of "
                                        "flickr30k:/srv/flickr30k"):
        check_resumable({**spec, "data": "flickr30k:/srv/flickr30k", "resumes": {"session": session}}, cache_dir(),
                        marked(events))


def stopped_session(home, spec: dict, request: int | None) -> str:
    """A session in `home`'s store stopped (cancelled) after the resume point of `request` (None: at its first
    step), as a headless run that got Ctrl-C there is."""
    from engine.jobs import run_job
    from workbench.execute import run_in_session

    made: list[str] = []

    def job(emitter):
        stop = []

        class Stopping:
            session_id = emitter.session_id

            @staticmethod
            def emit(kind, **fields):
                emitter.emit(kind, **fields)
                if kind == "artifact" and fields["name"] == "resume_point" and fields["request"] == request:
                    stop.append(True)
        return run_job(spec, Stopping, lambda: bool(stop) or request is None)
    with pytest.raises(typer.Exit) as ended:
        run_in_session(spec, "stopped", job, on_session=made.append)
    assert ended.value.exit_code == 130
    return made[0]


def test_resume_command_goes_on_in_a_new_session_with_the_old_events(home, monkeypatch, whole_clip):
    from sessions.store import SessionStore

    monkeypatch.setenv("MMUL_HOME", str(home))
    spec = validated(SPEC)
    old = stopped_session(home, spec, 2)
    result = run_in_process(home, "resume", old[-4:], "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert numbers(document) == numbers(whole_clip)
    store = SessionStore()
    assert store.get(old)["state"] == "cancelled"  # the old session stays as it was
    new = store.get(document["session"])
    assert (new["state"], new["spec"]["resumes"]) == ("finished", {"session": old, "request": 2})
    events = store.events(document["session"])
    assert [e["request"] for e in events if e["kind"] == "eval" and e["split"] == "after"] == [1, 2, 3]
    assert [e["state"] for e in events if e["kind"] == "status"] == ["running", "finished"]
    history = [e["request"] for e in events if e["kind"] == "eval" and e["split"] == "history"]
    assert history == [0, 1, 2, 3]
    for command in (("sessions", "show", document["session"]), ("replay", document["session"], "--headless")):
        assert f"resumed session {old} after request 2" in run_in_process(home, *command).stdout
    for command in (("sessions", "show", old), ("replay", old, "--headless")):   # and the old one names it
        assert f"resumed by session {document['session']} (finished)" in run_in_process(home, *command).stdout
    again = run_in_process(home, "resume", old)
    assert again.returncode == 2 and again.stderr == (f"error: session {old} was resumed by session "
                                                      f"{document['session']}, which finished; see that one\n")


def test_deleting_a_stopped_session_removes_its_resume_point(home, monkeypatch, capsys):
    """A point is a whole model's weights, of no use without its session's events. (And the stopped run says how
    it goes on: its line said only that the session was kept.)"""
    from engine.protocols.resume import point_dir
    from sessions.paths import cache_dir

    monkeypatch.setenv("MMUL_HOME", str(home))
    old = stopped_session(home, validated(SPEC), 1)
    assert capsys.readouterr().err.strip().endswith(
        f"error: cancelled (session {old} kept; `mmul-workbench resume {old}` goes on from its last resume point)")
    shown = run_in_process(home, "sessions", "show", old)
    assert f"`mmul-workbench resume {old}` goes on from its last resume point" in shown.stdout
    from workbench.execute import kept   # a run of K requests stopped before its first point says that instead
    assert kept(validated({**SPEC, "resume_every": 10}), "20260101-000000-abcd") == (
        "session 20260101-000000-abcd kept; it stopped before its first resume point (--resume-every 10 minutes), so "
        "its command starts it again")
    # a resumed run cut short before a point of its own goes on by resuming the run it resumed (a review: it said
    # "its command starts it again")
    resumed = {**validated({**SPEC, "resume_every": 10}), "resumes": {"session": old, "request": 1}}
    assert kept(resumed, "20260101-000000-abce").endswith(
        f"it stopped before a resume point of its own, so `mmul-workbench resume {old}` goes on again from the point it "
        "started from")
    assert point_dir(cache_dir(), old).is_dir()
    staging = point_dir(cache_dir(), old).with_name(f".{old}.resume.cut-short")   # a write a kill cut short
    staging.mkdir()
    deleted = run_in_process(home, "sessions", "delete", old)
    assert deleted.returncode == 0, deleted.stderr
    assert not point_dir(cache_dir(), old).exists() and not staging.exists()


@pytest.mark.parametrize("args, words", [
    (("resume", "nosuchsession"), "no session 'nosuchsession'"),
    (("run", "--method", "ga", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4", "--resume-every", "0"),
     "--resume-every applies to a run of K > 1 requests"),
    (("run", "--method", "ga", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4", "--requests", "2",
      "--resume-every", "soon"), "--resume-every 'soon': give minutes"),
    (("run", "--method", "ga", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4", "--requests", "2",
      "--resume-every", "-1"), "--resume-every -1.0: give minutes"),
    # accepted, it wrote no point (a --devices N run's ranks hold the model), and a crash found nothing to go on from
    (("run", "--method", "ga", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4", "--requests", "2",
      "--resume-every", "0", "--device", "cpu", "--devices", "2"), "--resume-every 0: a --devices 2 run writes no "
                                                                    "resume points"),
])
def test_bad_resume_input_is_one_line_exit_2(tmp_path, args, words):
    result = run_in_process(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_finished_or_single_request_session_does_not_resume(home, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(home))
    single = run_in_process(home, "run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--device",
                            "cpu", "--seed", "7", "--delete", "3", "--epochs", "1", "--json")
    assert single.returncode == 0, single.stderr
    session = json.loads(single.stdout)["session"]
    result = run_in_process(home, "resume", session)
    assert result.returncode == 2 and f"session {session} is finished: only a stopped run resumes" in result.stderr


def test_a_resumed_run_removes_the_points_it_went_on_from_at_its_second_point(home):
    """A -> B (stopped after its own points) -> C left A's points (a model's weights) for good, and `resume A` then
    ran the same requests a second time. They go as the resumed run writes its second point: after its first, a
    kill -9 in the writer's half second could leave its event unwritten, and A's points are then the ones to use."""
    from engine.protocols.resume import check_resumable, point_dir
    from sessions.paths import cache_dir

    spec = validated({**SPEC, "requests": 6})
    first, events = stopped_after(spec, 1)
    again = {**spec, "resumes": check_resumable({**spec, "resumes": {"session": first}}, cache_dir(), marked(events))}
    second, later = stopped_after(again, 2)
    assert marked(later) == {2} and point_dir(cache_dir(), first).is_dir()   # its first point alone: A's kept
    third, latest = stopped_after(again, 3)
    assert marked(latest) == {2, 3}
    assert not point_dir(cache_dir(), first).exists() and point_dir(cache_dir(), third).is_dir()


def test_one_resumer_at_a_time_and_the_one_that_went_on_is_named(home, monkeypatch):
    """Two resumes of one session raced for its point (the second failed loading what the first had removed), and
    a session resumed by a run that went on past its point said only that it had none."""
    from engine.protocols.resume import discard
    from sessions.paths import cache_dir
    from sessions.store import SessionStore

    monkeypatch.setenv("MMUL_HOME", str(home))
    spec = validated(SPEC)
    old = stopped_session(home, spec, 1)
    store = SessionStore()
    running = store.create({**spec, "resumes": {"session": old, "request": 1}})   # a resume going on now
    busy = run_in_process(home, "resume", old)
    assert busy.returncode == 2 and busy.stderr.strip() == (
        f"error: session {old} is being resumed by session {running.session_id} (running); follow it with "
        f"`mmul-workbench replay {running.session_id}`")
    running.finish("cancelled")
    discard(cache_dir(), old)   # as that run does once it has written a point of its own
    gone = run_in_process(home, "resume", old)
    assert gone.returncode == 2 and f"session {old} has no resume point left: {running.session_id} (cancelled) " \
                                   "resumed it and went on past it; resume that one instead" in gone.stderr


def test_a_run_left_running_by_a_dead_process_resumes_and_names_stay_one_sessions(home, monkeypatch):
    """After a headless kill -9 the session still says running: resume pointed to `engine cancel`, which refused
    it. And the resumed session took the old one's name, so the name matched two sessions."""
    from sessions.store import SessionStore

    monkeypatch.setenv("MMUL_HOME", str(home))
    spec = validated({**SPEC, "name": "long-sequence"})
    old = stopped_session(home, spec, 1)
    store = SessionStore()
    events = store.events(old)
    dead = store.create(spec, name="long-sequence-2")   # its process killed with -9 after request 1's point
    for event in events[1:]:
        if event["kind"] != "status":
            dead.emit_copy(event)
    dead.abandon()
    from engine.protocols.resume import point_dir
    from sessions.paths import cache_dir
    import shutil

    shutil.copytree(point_dir(cache_dir(), old), point_dir(cache_dir(), dead.session_id))
    result = run_in_process(home, "resume", "long-sequence-2", "--json")
    assert result.returncode == 0, result.stderr
    assert store.get(dead.session_id)["state"] == "interrupted"
    new = json.loads(result.stdout)["session"]
    assert store.get(new)["name"] == "long-sequence-2 (resumed)"
    assert store.resolve("long-sequence-2") == dead.session_id
    copied = [e for e in store.events(new) if e["kind"] == "eval" and e.get("split") == "before"]
    assert copied and copied[0]["ts"] == next(e["ts"] for e in events if e["kind"] == "eval" and e.get("split") == "before")


def test_a_resumed_run_stopped_before_a_point_of_its_own_points_to_the_one_it_went_on_from(home, monkeypatch):
    """`resume B`, B stopped before its first point (any resumed run stopped within its first 10 minutes), said
    "run its command again" and threw the progress away, while A's points still stood."""
    from sessions.store import SessionStore

    monkeypatch.setenv("MMUL_HOME", str(home))
    spec = validated(SPEC)
    first = stopped_session(home, spec, 1)
    second = stopped_session(home, {**spec, "resumes": {"session": first, "request": 1}}, None)
    told = run_in_process(home, "resume", second)
    assert told.returncode == 2 and told.stderr == (f"error: session {second} stopped before a resume point of its own; "
                                                    f"resume {first}, the session it went on from, instead (the same "
                                                    "requests, from its point)\n")
    store = SessionStore()
    assert store.get(second)["updated"] >= store.get(second)["created"]   # copied events kept their own times
    # the one it went on from deleted since (its points with it): nothing to resume, and no pointer to a ghost
    store.delete(first)
    told = run_in_process(home, "resume", second)
    assert told.returncode == 2 and told.stderr == (
        f"error: session {second} stopped before a resume point of its own, and {first}, the session it went on "
        "from, has been deleted with its points; nothing is left to resume from: run its command again (it starts "
        "from the first request)\n")


def test_a_resumed_sessions_name_is_one_no_other_session_has():
    from sessions.resuming import resuming_spec

    class Home:
        def __init__(self, *names):
            self.names = names

        def list(self):
            return [{"name": name} for name in self.names]

    assert resuming_spec(Home("par"), "A", {"name": "par", "spec": {}})["name"] == "par (resumed)"
    assert resuming_spec(Home("par", "par (resumed)"), "A", {"name": "par", "spec": {}})["name"] == "par (resumed 2)"
    assert resuming_spec(Home("par (resumed)"), "B", {"name": "par (resumed)", "spec": {}})["name"] == "par (resumed 2)"
    assert "name" not in resuming_spec(Home(), "A", {"name": None, "spec": {}}) or \
        resuming_spec(Home(), "A", {"name": None, "spec": {}})["name"] is None


def test_two_resumes_submitted_at_once_to_the_engine_are_one(tmp_path):
    """The engine checks a resume against live resumers while validating, and creates its session after: two quick
    submits both passed the check, and both ran from one point."""
    import asyncio
    from types import SimpleNamespace

    from engine.daemon import ops

    created = asyncio.Event()
    release = None

    async def accept(store, normal, name, threads):
        created.set()
        await release.wait()    # the first resume's session is being created
        return SimpleNamespace(session="new", device="cpu"), 0

    async def main():
        nonlocal release
        release = asyncio.Event()
        daemon = SimpleNamespace(stopping=False, resuming=set(),
                                 store=SimpleNamespace(list=lambda: []),
                                 queues=SimpleNamespace(jobs_module=lambda: SimpleNamespace(validate=lambda spec: spec),
                                                        accept=accept))
        spec = {"method": "ga", "resumes": {"session": "old", "request": 1}}
        first = asyncio.create_task(ops.submit(daemon, None, 1, spec))
        await created.wait()
        second = await ops.submit(daemon, None, 2, spec)
        release.set()
        return await first, second, daemon.resuming

    first, second, left = asyncio.run(main())
    assert first["ok"] and first["session"] == "new"
    assert not second["ok"] and "session old is being resumed by another run submitted a moment ago" in \
        second["error"]["message"]
    assert left == set()


def test_a_resumed_sessions_copied_events_are_on_disk_when_it_is_created(home, monkeypatch):
    """The copied tail after the last phase event waited for the writer's half-second flush: an engine follower that
    subscribed at once read the disk without it, and its console skipped request j's `eval (after)` line."""
    from sessions.reader import SessionReader
    from sessions.resuming import point_events
    from sessions.store import SessionStore

    monkeypatch.setenv("MMUL_HOME", str(home))
    spec = validated(SPEC)
    old = stopped_session(home, spec, 1)
    store = SessionStore()
    copied = point_events(store, old, 1)
    assert copied[-1]["kind"] == "artifact" and copied[-2]["kind"] != "phase"   # a tail after the last phase event
    writer = store.create({**spec, "resumes": {"session": old, "request": 1}})
    on_disk = SessionReader(home).events(writer.session_id)
    assert len(on_disk) == 1 + len(copied) and on_disk[-1]["name"] == "resume_point"
    writer.finish("cancelled")


def test_a_finished_runs_points_go_once_its_finish_is_written(home, monkeypatch):
    """The run removed its points itself, before its session was marked finished: an engine killed in between left
    an interrupted session with nothing to resume from (a review). Whatever writes the finish removes them now."""
    from engine.protocols.resume import point_dir
    from sessions.paths import cache_dir
    from sessions.store import SessionStore

    monkeypatch.setenv("MMUL_HOME", str(home))
    done = run_in_process(home, "run", "--method", "ga", "--model", "clip-tiny", "--data", "shapes-tiny", "--device",
                          "cpu", "--seed", "9", "--delete", "4", "--requests", "2", "--resume-every", "0",
                          "--epochs", "1", "--json")
    assert done.returncode == 0, done.stderr
    session = json.loads(done.stdout)["session"]
    events = SessionStore(home).events(session)
    assert [e["request"] for e in events if e["kind"] == "artifact" and e["name"] == "resume_point"] == [1]
    assert not point_dir(cache_dir(), session).exists()


def test_resuming_a_running_session_names_both_ways_to_stop_it():
    """It named `engine cancel` alone, which cannot stop a headless run (a review)."""
    from sessions.resuming import resume_problem

    said = resume_problem("20261207-205207-9439", {"state": "running", "spec": {"requests": 3}})
    assert "engine cancel 20261207-205207-9439` in the engine" in said and "Ctrl-C where a headless run runs" in said
