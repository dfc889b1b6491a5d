"""A request sequence's resume point: what a run of K requests needs to go on after request j as if it had
never stopped.

After a request has been unlearned, evaluated and scored into the history, the run may write a resume point
(`--resume-every MINUTES`: when that long has passed since the run's start or its last point; 0: after every
request; `off`: never; default 10): the model's weights as they are then, and `state.json` with the rest of
the run's state (the requests done, each one's entry, the history's rows, the judged evaluations, the
hyperparameters after tuning, the cost so far and the original it started from). One point per session, at
`cache/runs/SESSION.resume/`, replaced whole by the next (written beside it, then swapped in), and removed when
the run finishes. Nothing is written after the last request, which the run's own checkpoint covers.

`mmul-workbench resume SESSION` runs the session's spec again with `resumes` naming it: the new session gets
the old one's events up to its point (sessions/resuming.py), the run sets itself up as before (the same
original, the same deletion set and requests, the task prepared the same way) with its events held back, then
loads the point's weights into the model and its state, and goes on from request j + 1. Every request seeds
its RNGs from the run's seed and its own number (engine/seeding.py), so the resumed run's numbers are those of
a run that was never stopped, at the same thread count (the point records it; another count is said in a
warning, as its last digits may differ).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from engine.cache import checkpoint_fingerprint, staged
from engine.errors import SpecError
from sessions.paths import resume_point_dirs

RESUME_VERSION = 1
DEFAULT_MINUTES = 10.0
STATE_FILE = "state.json"
WEIGHTS = "model"
# what may differ between a spec and the spec that resumes it (nothing that changes a number)
NOT_COMPARED = ("name", "resumes", "resume_every")


def point_dir(cache: Path, session_id: str) -> Path:
    return resume_point_dirs(cache, session_id)[0]


def compared(spec: dict) -> dict:
    return {key: value for key, value in spec.items() if key not in NOT_COMPARED}


class Cadence:
    """When a resume point is due: `minutes` after the run's start or its last point (0: after every
    request; "off": never), and never after the last request. A `--devices N` run writes none: its ranks hold
    the model between them (FSDP shards it)."""

    def __init__(self, spec: dict, requests: int):
        given = spec.get("resume_every", DEFAULT_MINUTES)
        off = given == "off" or requests < 2 or spec.get("devices", 1) > 1
        self.seconds = None if off else float(given) * 60.0
        self.last = time.monotonic()

    def due(self, request: int, requests: int) -> bool:
        if self.seconds is None or request >= requests:
            return False
        return time.monotonic() - self.last >= self.seconds

    def written(self) -> None:
        self.last = time.monotonic()


def save_point(model, cache: Path, session_id: str, state: dict) -> Path:
    """Write the weights and the state beside the session's point, then swap them in whole (a crash at any moment
    leaves the last complete point, under its name or under `.old`); returns where it is."""
    directory, previous = resume_point_dirs(cache, session_id)
    with staged(directory) as staging:
        model.save(staging / WEIGHTS)
        (staging / STATE_FILE).write_text(json.dumps({"version": RESUME_VERSION, **state}))
        shutil.rmtree(previous, ignore_errors=True)
        if directory.exists():
            os.replace(directory, previous)
        os.replace(staging, directory)
        shutil.rmtree(previous, ignore_errors=True)
    return directory


def discard(cache: Path, session_id: str) -> None:
    for path in resume_point_dirs(cache, session_id):
        shutil.rmtree(path, ignore_errors=True)


def read_point(cache: Path, session_id: str) -> tuple[dict, Path]:
    """The state of `session_id`'s resume point and the folder of its weights, or SpecError saying why there is
    none."""
    directory, previous = resume_point_dirs(cache, session_id)
    for candidate in (directory, previous):
        state_file = candidate / STATE_FILE
        if state_file.is_file() and (candidate / WEIGHTS).is_dir():
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError) as error:
                raise SpecError(f"session {session_id}'s resume point {state_file} cannot be read ({error}); run "
                                "the session's command again instead", field="resumes") from None
            if not isinstance(state, dict) or state.get("version") != RESUME_VERSION:
                raise SpecError(f"session {session_id}'s resume point {state_file} was written by another version "
                                "of mmul-workbench; run the session's command again instead", field="resumes")
            return state, candidate / WEIGHTS
    raise SpecError(f"session {session_id} has no resume point in {directory.parent} (it stopped before its first "
                    "point was written, ran with --resume-every off or on --devices N, or a run that resumed it has "
                    "finished and removed it); run its command again instead", field="resumes")


def check_resumable(spec: dict, cache: Path) -> dict:
    """The resume point `spec["resumes"]` names, checked against the spec (the same run in every respect that
    changes a number); returns `resumes` with the request it goes on after."""
    resumes = spec["resumes"]
    state, _ = read_point(cache, resumes["session"])
    if compared(state.get("spec", {})) != compared(spec):
        raise SpecError(f"session {resumes['session']}'s resume point was written for another spec than this one; "
                        f"resume it with `mmul-workbench resume {resumes['session']}`", field="resumes")
    return {**resumes, "request": int(state["request"])}


def restore_weights(task, model, weights: Path) -> None:
    """Load the point's weights into `model` in place: every object the setup built around it stays."""
    saved = task.load(str(weights), "cpu")
    model.model.load_state_dict(saved.model.state_dict())
    del saved


def check_original(state: dict, original: Path, given: bool) -> None:
    """The run's original must be the one the point started from: the same cache entry (its name is the digest
    of what it is trained from, so a rebuilt cache trains it again bit for bit), or under --original the same
    checkpoint files."""
    recorded = state["original"]
    if recorded["model"] != str(original) or (given and recorded["fingerprint"] != checkpoint_fingerprint(str(original))):
        raise SpecError(f"the original model {original} is not the one the resume point started from "
                        f"({recorded['model']}, as it was then); run the session's command again instead",
                        field="resumes")
