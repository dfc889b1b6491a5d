"""Attacks that try to bring forgotten data back, on a finished session (ANCHORS.md s. 9). Each attack is one
file (relearn.py, quantize.py, rephrase.py) with one function `attack(task, model, params, seed, emit,
should_stop) -> (evaluator, record)`: it changes the model in place (relearning, quantisation) or gives a
view of the task whose Df is changed (rephrasing); run.py evaluates before and after, on the session's
unlearned model and, when the home holds one, on a Retrain of the same deletion set, and reports recovery
(recovery.py). An attack is a session of its own whose spec names its parent session.

This module is torch-free: the spec of an attack (`attack_spec`) is checked here, before any session exists.
"""
from __future__ import annotations

import os

from pathlib import Path

from engine.cpu_kernels import check_setting
from engine.errors import SpecError
from engine.spec import ATTACK_KINDS, data_kind
from engine.spec.inputs import MAX_SEED

ATTACKS = {kind: f"engine.attacks.{kind}:{kind}" for kind in ATTACK_KINDS}  # kind -> "module:function"
TASKS = ("retrieval", "classification", "multiple_choice")  # multiple choice: a pulse run on people (people.py)
ON = ("df-sample", "neighbours")
BITS = (8, 4)
MAX_STEPS = 100_000


def method_name(kind: str) -> str:
    """The `method` an attack session lists under (`sessions list`: `attack:relearn / clip-tiny / shapes-tiny`)."""
    return f"attack:{kind}"


def check_parent(meta: dict, kind: str) -> dict:
    """The parent's spec when session `meta` can be attacked by `kind`; SpecError (one line) otherwise."""
    sid, state = meta.get("id"), meta.get("state")
    if state != "finished":
        raise SpecError(f"session {sid} is {state}; an attack needs a finished session (its unlearned model)",
                        field="session")
    spec, summary = meta.get("spec"), meta.get("summary")
    if not isinstance(spec, dict) or not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
        raise SpecError(f"session {sid} has no result document to attack; give a finished run's session",
                        field="session")
    if spec.get("kind") == "attack":
        raise SpecError(f"session {sid} is itself an attack; give the run it attacked ({spec.get('parent')})",
                        field="session")
    task = spec.get("task") or data_kind(str(spec.get("data")))
    if task not in TASKS:
        raise SpecError(f"session {sid} is a {task or 'unknown'} run ({spec.get('data')}); attack {kind} is built for "
                        f"{', '.join(TASKS)} runs", field="session")
    if stopped_early(summary):
        stop = summary["stopped_by"]
        raise SpecError(f"session {sid} was stopped by --stop-if {stop.get('rule')} after request {stop.get('request')} "
                        f"of {spec.get('requests') or 1}: its model forgot part of the deletion set, and an attack "
                        "scores Df against the original on all of it; attack a run that finished its requests",
                        field="session")
    check_checkpoint(sid, summary.get("checkpoint"))
    return spec


def stopped_early(summary: dict) -> bool:
    """A run a --stop-if rule ended (`stopped_by`): the attacks' Df and the original's would be other units."""
    return isinstance(summary.get("stopped_by"), dict)


def check_checkpoint(sid, path) -> None:
    """The session's unlearned weights, where they still are, read from their headers (a gone directory is
    re-derived by the attack): a cut or damaged file is bad input, named before an attack session exists."""
    from engine.spec.inputs import safetensors_problem

    directory = Path(path) if isinstance(path, str) and path else None
    if directory is None or not directory.is_dir():
        return
    for weights in sorted(directory.glob("*.safetensors")):
        if (problem := safetensors_problem(weights)) is not None:
            raise SpecError(f"session {sid}'s checkpoint {directory} is damaged: {problem}; delete that directory and "
                            "the attack re-derives the model from the session's spec and seed", field="session")


def forgotten_count(meta: dict) -> int | None:
    """How many units the session deleted: its deletion's units (a fact run's facts), or a pulse run's forget people."""
    summary = meta.get("summary") or {}
    deleted = (summary.get("deletion") or {}).get("units")
    if isinstance(deleted, int):
        return deleted
    people = summary.get("forget_people")
    return len(people) if isinstance(people, list) else None


def retain_count(meta: dict) -> int | None:
    """How many units the session kept (Dr), as its document records them; None for one written before that
    (`relearn --on neighbours` then takes all of Dr past it, with a warning)."""
    kept = ((meta.get("summary") or {}).get("deletion") or {}).get("retain_units")
    return kept if isinstance(kept, int) else None


def check_params(kind: str, options: dict) -> dict:
    """The attack's parameters, defaults filled; SpecError (one line, with the field) for a bad one."""
    if kind not in ATTACKS:
        raise SpecError(f"unknown attack {kind!r}; choose one of: {', '.join(ATTACKS)}", field="attack")
    seed = options.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise SpecError(f"--seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}", field="seed")
    params = {"seed": seed}
    if kind == "relearn":
        steps, on, units = options.get("steps", 10), options.get("on", "df-sample"), options.get("units")
        lr, batch = options.get("lr"), options.get("batch_size", 8)
        if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise SpecError(f"--steps must be a whole number from 1 to {MAX_STEPS}, got {steps!r}", field="steps")
        if on not in ON:
            raise SpecError(f"--on {on!r} is not known; choose {' or '.join(ON)}", field="on")
        if units is not None and (not isinstance(units, int) or units < 1):
            raise SpecError(f"--units must be a whole number >= 1, got {units!r}", field="units")
        if lr is not None and not (isinstance(lr, (int, float)) and 0 < lr < 1):
            raise SpecError(f"--lr must be a learning rate between 0 and 1, got {lr!r}", field="lr")
        if not isinstance(batch, int) or batch < 1:
            raise SpecError(f"--batch-size must be a whole number >= 1, got {batch!r}", field="batch_size")
        params |= {"steps": steps, "on": on, "units": units, "lr": lr, "batch_size": batch}
    elif kind == "quantize":
        bits = options.get("bits", 4)
        if bits not in BITS:
            raise SpecError(f"--bits {bits!r} is not offered; choose 8 or 4", field="bits")
        params |= {"bits": bits}
    else:
        path = options.get("paraphrases")
        if path is not None:
            from engine.attacks.rephrase import read_paraphrases

            read_paraphrases(str(path))  # a bad file is refused before a session exists
        # absolute: the record names the file read, whatever directory the attack ran from (it kept `nomatch.txt`)
        params |= {"paraphrases": None if path is None else os.path.abspath(os.path.expanduser(str(path)))}
    return params


def attack_spec(kind: str, parent: dict, options: dict) -> dict:
    """The spec of attack `kind` on the session whose meta (`store.get`) is `parent`: the attack with its
    parameters, the parent's id, and the parent's model, data, task, deletion and seed (what the attack is
    measured on); SpecError (one line) when it cannot run."""
    check_setting()
    params = check_params(kind, options)
    base = check_parent(parent, kind)
    if params["seed"] is None:
        params["seed"] = int(base.get("seed", 0))
    if kind == "relearn" and params["on"] == "neighbours" and base.get("kind") == "pulse":
        raise SpecError(f"session {parent['id']} is a pulse run on people: relearn --on neighbours (an embedding "
                        "search over units) is not offered there; use --on df-sample", field="on")
    if kind == "relearn":
        deleted = forgotten_count(parent)
        if params["units"] is None:
            params["units"] = max(1, deleted // 4) if deleted is not None else 1
        elif params["on"] == "df-sample" and deleted is not None and params["units"] > deleted:
            raise SpecError(f"--units {params['units']}: session {parent['id']} deleted {deleted} units, the most "
                            f"--on df-sample can draw; give --units {deleted} or fewer", field="units")
        elif params["on"] == "neighbours" and (kept := retain_count(parent)) is not None and params["units"] > kept:
            raise SpecError(f"--units {params['units']}: session {parent['id']} kept {kept} units, the most "
                            f"--on neighbours can draw; give --units {kept} or fewer", field="units")
    return {"kind": "attack", "attack": {"kind": kind, "params": params}, "parent": parent["id"],
            "method": method_name(kind), "parent_method": base.get("method"),
            **{key: base.get(key) for key in ("model", "data", "task", "seed", "deletion", "device", "artifacts")
               if key in base}}
