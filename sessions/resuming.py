"""A resumed run's session begins with the events of the session it resumes, up to that run's resume point
(engine/protocols/resume.py writes the point and its `resume_point` artifact event): its replay, curves and
history then read as those of one run. The old session's status and device events stay its own."""
from __future__ import annotations

from sessions.schema import RESERVED

NOT_COPIED = ("status", "device")
RESUMABLE_STATES = ("cancelled", "interrupted", "failed")


def resume_problem(session_id: str, record: dict) -> str | None:
    """Why session `session_id` (its stored record) cannot resume, in one line; None when it can be tried (its
    resume point is the engine's to find)."""
    state, spec = record.get("state"), record.get("spec") or {}
    if state not in RESUMABLE_STATES:
        return (f"session {session_id} is {state}: only a stopped run resumes ({', '.join(RESUMABLE_STATES)})"
                + (f"; `mmul-workbench engine cancel {session_id}` stops it first" if state in ("queued", "running")
                   else ""))
    if spec.get("kind", "run") not in ("run", "pulse") or spec.get("requests", 1) < 2:
        return (f"session {session_id} is not a run of K > 1 requests: only those resume (a single request runs again "
                "with its command; a study goes on with its unfinished cells when its command is given again)")
    return None


def resuming_spec(session_id: str, record: dict) -> dict:
    """The spec that resumes session `session_id`: its own, with `resumes` naming it (still to validate)."""
    return {**(record.get("spec") or {}), "resumes": {"session": session_id}}


def point_events(store, session_id: str, request: int) -> list[dict]:
    """The events of `session_id` through its resume point after `request`, without its status and device
    events; ValueError (one line) when they end before it (the run stopped as the point was being written)."""
    events = store.events(session_id)
    for index, event in enumerate(events):
        if event["kind"] == "artifact" and event.get("name") == "resume_point" and event.get("request") == request:
            return [kept for kept in events[: index + 1] if kept["kind"] not in NOT_COPIED]
    raise ValueError(f"session {session_id}'s events end before its resume point after request {request} (it stopped "
                     "while the point was written); run its command again instead")


def copy_events(writer, events: list[dict]) -> None:
    for event in events:
        writer.emit(event["kind"], **{name: value for name, value in event.items() if name not in RESERVED})
