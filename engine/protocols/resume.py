"""A request sequence's resume points: what a run of K requests needs to go on after request j as if it had
never stopped.

After a request has been unlearned, evaluated and scored into the history, the run may write a resume point
(`--resume-every MINUTES`: when that long has passed since the run's start or its last point; 0: after every
request; `off`: never; default 10): the model's weights as they are then, and `state.json` with the rest of
the run's state (the requests done, each one's entry, the history's rows, the judged evaluations, the
hyperparameters after tuning, the cost so far and the original it started from), then a `resume_point`
artifact event naming the request. Two points are kept, at `cache/runs/SESSION.resume/` (the last) and
`SESSION.resume.old` (the one before), each replaced whole (written beside them, then renamed in): the session
writer holds events up to half a second before they reach the disk, so a stop in the moment after a point is
written may leave a session whose events end before that point's event, and the point before it is then the
one to go on from. A run that finishes removes its points; nothing is written after the last request, which
the run's own checkpoint covers. A resumed run removes the points it resumed from as it writes its second point
(its first point's event is on disk by then) or finishes.

`mmul-workbench resume SESSION` runs the session's spec again with `resumes` naming it. The engine's preflight
takes the newest complete point whose event the session holds (`check_resumable`), and the new session begins
with the old one's events up to that event (sessions/resuming.py). The run sets itself up as before (the same
original, the same deletion set and requests, the task prepared the same way) with its events held back, then
loads the point's weights into the model and its state, and goes on from request j + 1. Every request seeds
its RNGs from the run's seed and its own number (engine/seeding.py), so the resumed run's numbers are those of
a run that was never stopped. On the CPU the thread count is part of the arithmetic (and of a cached original's
key), so a resume computes at the count the point records, and it goes on with the original the point started
from while that is cached as it was (`kept_original`). Preflight refuses a point whose data changed
(`data_identity`: the files' names, sizes and annotations) before anything loads.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from engine.cache import checkpoint_fingerprint, staged
from engine.data.fingerprint import data_identity
from engine.errors import SpecError
from engine.spec import resume_minutes
from engine.spec.catalog import PEOPLE_WORLDS, WORLDS
from sessions.paths import point_folders, point_staging, resume_point_dirs

RESUME_VERSION = 1
STATE_FILE = "state.json"
WEIGHTS = "model"
# what may differ between a spec and the spec that resumes it (nothing that changes a number)
NOT_COMPARED = ("name", "resumes", "resume_every")
# the state a point must hold, with its type: a point edited or cut short is refused before a session exists
STATE_FIELDS = {"spec": dict, "request": int, "forgotten": list, "entries": list, "metrics": dict,
                "total_steps": int, "seconds": (int, float), "history": dict, "judged": list, "params": dict,
                "cost": dict, "torch_threads": int, "original": dict, "tuned": (dict, type(None))}


class NoPoint(SpecError):
    """The session has no resume point to go on from (none written, none its events reach, or none complete)."""


def point_dir(cache: Path, session_id: str) -> Path:
    return resume_point_dirs(cache, session_id)[0]


def compared(spec: dict) -> dict:
    """What a point and the run resuming it must agree on. A cluster run's device is the node Ray placed it on
    (`cpu` or `cuda`, engine/execution/cluster_bridge.py), written into its point where the session says `auto`:
    a cluster run was never resumable."""
    ignored = NOT_COMPARED + (("device",) if spec.get("cluster") else ())
    return {key: value for key, value in spec.items() if key not in ignored}


class Cadence:
    """When a resume point is due: `minutes` after the run's start or its last point (0: after every
    request; "off": never), and never after the last request. A `--devices N` run writes none: its ranks hold
    the model between them (FSDP shards it)."""

    def __init__(self, spec: dict, requests: int):
        minutes = resume_minutes({**spec, "requests": requests})
        self.seconds = None if minutes is None else minutes * 60.0
        self.last, self.points = time.monotonic(), 0

    def due(self, request: int, requests: int) -> bool:
        if self.seconds is None or request >= requests:
            return False
        return time.monotonic() - self.last >= self.seconds

    def written(self) -> None:
        self.last, self.points = time.monotonic(), self.points + 1


def save_point(model, cache: Path, session_id: str, state: dict) -> Path:
    """Write the weights and the state beside the session's points, then rename them in whole: the last point
    becomes the one before, and the one before that goes. Returns where the new point is."""
    directory, previous = resume_point_dirs(cache, session_id)
    for stale in point_staging(directory):
        shutil.rmtree(stale, ignore_errors=True)
    with staged(directory) as staging:
        model.save(staging / WEIGHTS)
        (staging / STATE_FILE).write_text(json.dumps({"version": RESUME_VERSION, **state}))
        shutil.rmtree(previous, ignore_errors=True)
        if directory.exists():
            os.replace(directory, previous)
        os.replace(staging, directory)
    return directory


def discard(cache: Path, session_id: str) -> None:
    """Remove the session's points, and the staging of one a kill cut short."""
    for path in point_folders(cache, session_id):
        shutil.rmtree(path, ignore_errors=True)


def point_problem(folder: Path) -> tuple[dict | None, str | None]:
    """(state, None) for a complete point in `folder`; (None, why not) otherwise (None, None: no point there)."""
    from engine.spec.inputs import checkpoint_problem

    state_file, weights = folder / STATE_FILE, folder / WEIGHTS
    if not state_file.exists() and not weights.exists():
        return None, None
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError) as error:
        return None, f"its {STATE_FILE} cannot be read ({error.__class__.__name__})"
    if not isinstance(state, dict) or state.get("version") != RESUME_VERSION:
        return None, f"its {STATE_FILE} is not a resume point of this mmul-workbench"
    for name, kind in STATE_FIELDS.items():
        if not isinstance(state.get(name), kind) or isinstance(state.get(name), bool):
            return None, f"its {STATE_FILE} has no valid {name!r}"
    if not weights.is_dir():
        return None, "its weights are missing"
    if (problem := checkpoint_problem(weights, images=False)) is not None:
        return None, f"its weights are damaged ({problem})"
    return state, None


def points(cache: Path, session_id: str) -> tuple[list[tuple[dict, Path]], list[str]]:
    """The session's complete points, newest first, as (state, weights folder); and why others are not."""
    found, problems = [], []
    for folder in resume_point_dirs(cache, session_id):
        state, problem = point_problem(folder)
        if state is not None:
            found.append((state, folder / WEIGHTS))
        elif problem is not None:
            problems.append(f"{folder}: {problem}")
    return sorted(found, key=lambda point: -point[0]["request"]), problems


def read_point(cache: Path, session_id: str, request: int) -> tuple[dict, Path]:
    """The session's point after `request` (the one preflight chose), or SpecError."""
    for state, weights in points(cache, session_id)[0]:
        if state["request"] == request:
            return state, weights
    raise SpecError(f"session {session_id}'s resume point after request {request} is gone from "
                    f"{point_dir(cache, session_id).parent}; resume it again", field="resumes")


def check_resumable(spec: dict, cache: Path, reached: set[int]) -> dict:
    """The point `spec["resumes"]` goes on from: the newest complete one whose `resume_point` event the session
    holds (`reached`: the requests of those events), written for this spec; returns `resumes` with its request."""
    session = spec["resumes"]["session"]
    found, problems = points(cache, session)
    usable = [state for state, _ in found if state["request"] in reached]
    if not usable:
        why = (f"its points cannot be used ({'; '.join(problems)})" if problems and not found else
               f"its events end before its resume point after request {found[0][0]['request']} (it stopped as the "
               "point was written)" if found else
               f"it has no resume point in {point_dir(cache, session).parent} (it stopped before its first point was "
               "written, or ran with --resume-every off or on --devices N)")
        raise NoPoint(f"session {session} cannot resume: {why}; run its command again instead", field="resumes")
    state = usable[0]
    chosen = next(weights.parent for point, weights in found if point is state)
    newest = resume_point_dirs(cache, session)[0]
    # why the newest point was passed over, when it was (a half-deleted `.old` beside a sound newest one is no news)
    unusable = [problem for problem in problems if problem.startswith(f"{newest}: ")] if chosen != newest else []
    if compared(state["spec"]) != compared(spec):
        differ = sorted(key for key in set(compared(state["spec"])) | set(compared(spec))
                        if state["spec"].get(key) != spec.get(key))
        raise SpecError(f"session {session}'s resume point was written for a spec that differs from the session's in "
                        f"{', '.join(differ)} (by another version of mmul-workbench?); run its command again instead",
                        field="resumes")
    if state.get("data") is None and spec["data"] not in WORLDS and spec["data"] not in PEOPLE_WORLDS:
        raise SpecError(f"session {session}'s resume point was written by an earlier mmul-workbench, which did not "
                        f"record the identity of {spec['data']}, so a change of its files could not be told (and would "
                        "shift its deletion set); run its command again instead", field="resumes")
    if state.get("data") is not None and state["data"] != data_identity(spec["data"]):
        raise SpecError(f"{spec['data']} changed since session {session}'s resume point was written (its files' names, "
                        "sizes or annotations differ), so its deletion set and requests may be others; run its command "
                        "again instead", field="resumes")
    # said by the resumed run (it went on from an older one without a word); recomputed at every check
    resumes = {key: value for key, value in spec["resumes"].items() if key != "unusable"}
    return {**resumes, "request": state["request"], **({"unusable": unusable} if unusable else {})}


def restore_weights(task, model, weights: Path) -> None:
    """Load the point's weights into `model` in place: every object the setup built around it stays."""
    saved = task.load(str(weights), "cpu")
    model.model.load_state_dict(saved.model.state_dict())
    del saved


def kept_original(state: dict) -> Path | None:
    """The cached original the point started from, when it is still there as it was: a resume goes on with it
    rather than with the entry its key would name today (a thread count, or file times, that differ name another)."""
    recorded = state["original"]
    path = Path(recorded["model"])
    return path if path.is_dir() and checkpoint_fingerprint(str(path)) == recorded["fingerprint"] else None


def check_original(state: dict, original: Path, given: bool) -> None:
    """The run's original must be the one the point started from: the same cache entry (its name is the digest
    of what it is trained from, so a rebuilt cache trains it again bit for bit), or under --original the same
    checkpoint files."""
    recorded = state["original"]
    if recorded["model"] != str(original) or (given and recorded["fingerprint"] != checkpoint_fingerprint(str(original))):
        raise SpecError(f"the original model {original} is not the one the resume point started from "
                        f"({recorded['model']}, as it was then); run the session's command again instead",
                        field="resumes")
