"""A resumed run's session begins with the events of the session it resumes, up to that run's resume point
(engine/protocols/resume.py writes the point and its `resume_point` artifact event): its replay, curves and
history then read as those of one run. The old session's status and device events stay its own."""
from __future__ import annotations

import json
import re
from pathlib import Path

from sessions.schema import ACTIVE_STATES

NOT_COPIED = ("status", "device")
RESUMABLE_STATES = ("cancelled", "interrupted", "failed")


def resume_problem(session_id: str, record: dict) -> str | None:
    """Why session `session_id` (its stored record) cannot resume, in one line; None when it can be tried (its
    resume point is the engine's to find)."""
    state, spec = record.get("state"), record.get("spec") or {}
    if state not in RESUMABLE_STATES:
        return (f"session {session_id} is {state}: only a stopped run resumes ({', '.join(RESUMABLE_STATES)})"
                + (f"; stop it first (`mmul-workbench engine cancel {session_id}` in the engine, Ctrl-C where a "
                   "headless run runs)" if state in ("queued", "running") else ""))
    if spec.get("kind", "run") not in ("run", "pulse") or spec.get("requests", 1) < 2:
        return (f"session {session_id} is not a run of K > 1 requests: only those resume (a single request runs again "
                "with its command; a study goes on with its unfinished cells when its command is given again)")
    return None


RESUMED = re.compile(r" \(resumed(?: (\d+))?\)$")


def resuming_spec(store, session_id: str, record: dict) -> dict:
    """The spec that resumes session `session_id`: its own, with `resumes` naming it (still to validate), and its
    name marked (`par (resumed)`, then `par (resumed 2)`, the first not taken in the home): a name keeps naming
    one session."""
    spec = {**(record.get("spec") or {}), "resumes": {"session": session_id}}
    name = record.get("name")
    if isinstance(name, str) and name:
        found = RESUMED.search(name)
        stem = name[:found.start()] if found else name
        taken = {row.get("name") for row in store.list()}
        marks = (" (resumed)" if number == 1 else f" (resumed {number})" for number in range(1, len(taken) + 2))
        spec["name"] = next(stem[:200 - len(mark)] + mark for mark in marks  # run --name's 200 characters
                            if stem[:200 - len(mark)] + mark not in taken)
    return spec


def is_point(event: dict) -> bool:
    """Whether `event` says a resume point was written (its request and path with it)."""
    return event["kind"] == "artifact" and event.get("name") == "resume_point"


def reached_points(store, session_id: str, events: list[dict] | None = None) -> set[int]:
    """The requests after which the session's events say a resume point was written."""
    events = store.events(session_id) if events is None else events
    return {event["request"] for event in events if is_point(event) and isinstance(event.get("request"), int)}


def resumers(store, session_id: str) -> list[dict]:
    """The catalog rows of the sessions that resume `session_id` (newest first)."""
    return [row for row in store.list() if (row.get("resumes") or {}).get("session") == session_id]


def resume_conflict(store, session_id: str) -> str | None:
    """Why `session_id` cannot be resumed now because of another session (one line), or None: a run resuming it is
    queued or running (two runs from one point would race for it), or one that resumed it has gone on past it (its
    points are gone, and that session is the one to resume)."""
    for row in resumers(store, session_id):
        state, other = row.get("state"), row["id"]
        if state in ACTIVE_STATES and store.is_live(other):
            return f"session {session_id} is being resumed by session {other} ({state}); follow it with " \
                   f"`mmul-workbench replay {other}`"
        if state == "finished":
            return f"session {session_id} was resumed by session {other}, which finished; see that one"
    return None


def point_events(store, session_id: str, request: int) -> list[dict]:
    """The events of `session_id` through its resume point after `request`, without its status and device
    events; ValueError (one line) when they end before it (the run stopped as the point was being written)."""
    events = store.events(session_id)
    for index, event in enumerate(events):
        if is_point(event) and event.get("request") == request:
            return [kept for kept in events[: index + 1] if kept["kind"] not in NOT_COPIED]
    raise ValueError(f"session {session_id}'s events end before its resume point after request {request} (it stopped "
                     "while the point was written); run its command again instead")


def copy_events(writer, events: list[dict]) -> None:
    """The events into `writer`, each at the time it happened (exports and time axes read the request times)."""
    for event in events:
        writer.emit_copy(event)


def resumed_by_words(store, session_id: str) -> str | None:
    """``resumed by session S (finished)``: what a stopped session's show and replay say once a run went on from
    it; None otherwise."""
    others = [f"{row['id']} ({row.get('state')})" for row in resumers(store, session_id)]
    return f"resumed by session{'s' if len(others) > 1 else ''} {', '.join(others)}" if others else None


def resumed_words(spec: dict) -> str | None:
    """``resumed session S after request 3``: what a resumed run's show and replay say first; None otherwise."""
    resumes = spec.get("resumes") if isinstance(spec, dict) else None
    if not isinstance(resumes, dict) or not resumes.get("session"):
        return None
    after = f" after request {resumes['request']}" if isinstance(resumes.get("request"), int) else ""
    return f"resumed session {resumes['session']}{after}"


def point_dirs(store, session_id: str, spec: dict, events: list[dict] | None = None) -> list[Path]:
    """Every folder of the session's resume points: where its own `resume_point` events say they were written (the
    cache of the engine or process that ran it) and where this process's cache would hold them, each with the
    point before it (`.old`) and the staging of a write a kill cut short. (A resumed session's copied events name
    the points of the session it resumed: those are not its own.)"""
    from sessions.paths import cache_dir, point_staging, previous_point, resume_point_dirs

    if events is None:
        try:
            events = store.events(session_id)
        except Exception:  # a damaged session: its points, if any, where this process's cache keeps them
            events = []
    default, _ = resume_point_dirs(cache_dir(spec.get("artifacts"), store.home), session_id)
    places = {Path(event["path"]) for event in events if is_point(event) and isinstance(event.get("path"), str)}
    places = {place for place in places if place.name == default.name} | {default}
    return [path for place in sorted(places) for path in
            (place, previous_point(place), *point_staging(place))]


def drop_points_of_finished(spec: dict, session_id: str) -> None:
    """Remove the resume points of a run whose finished state is on disk, and those of the run it resumed: its
    checkpoint covers them now. Called only after the finish is written (engine/execution/queue.py,
    workbench/execute.py): the run used to remove them itself, and an engine killed between that and the finish
    left an interrupted session with nothing to resume from."""
    from sessions.files import remove_tree
    from sessions.paths import cache_dir, point_folders

    cache = cache_dir(spec.get("artifacts"))   # as the run placed them (its process's own environment)
    resumed = spec.get("resumes") if isinstance(spec.get("resumes"), dict) else {}
    for owner in (session_id, resumed.get("session")):
        if isinstance(owner, str) and owner:
            for folder in point_folders(cache, owner):
                if folder.exists():
                    remove_tree(folder)


def resume_hint(store, spec: dict, session_id: str) -> str | None:
    """``mmul-workbench resume S`` goes on ...: said when a stopped run has a point its events reach."""
    events = store.events(session_id)
    reached = reached_points(store, session_id, events)
    for place in point_dirs(store, session_id, spec, events):
        try:
            request = json.loads((place / "state.json").read_text()).get("request")
        except (OSError, ValueError, AttributeError):
            continue
        if request in reached:
            return f"`mmul-workbench resume {session_id}` goes on from its last resume point"
    return None
