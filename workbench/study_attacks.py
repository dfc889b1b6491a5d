"""`study --attacks relearn,quantize,rephrase`: each attack, with its defaults (or the settings given,
`relearn:lr=1e-4:units=8`) and the cell's seed, on every
finished cell of the study (Retrain's included), each a session linked to its cell's session; their recovery
(the share of the forgotten gap that comes back, and the points) becomes per-method columns, mean ± std over
the seeds, in the study's table and JSON (`attack.<kind>.recovery`, `attack.<kind>.points`).

An attack already made on a cell with the same parameters (a finished attack session linked to it) is read
back, not run again, so re-running the study resumes. The attacks run in this process (also with
--engine, whose cells run in the daemon). A cell's attack is not held against Retrain itself: Retrain's own
row shows the same attack on Retrain, which is the baseline.
"""
from __future__ import annotations

import sys

from sessions.attacks import attacks_of
from workbench.output import fail


# what `study --attacks KIND:NAME=VALUE:...` may set of each attack (`mmul-workbench attack KIND --help`); the
# seed is each cell's own
SETTINGS = {"relearn": ("steps", "on", "units", "lr", "batch_size"), "quantize": ("bits",),
            "rephrase": ("paraphrases",)}


def parse_attacks(text: str | None) -> dict[str, dict]:
    """{attack: its settings}, in the order given, each once: `relearn:lr=1e-4:units=8,quantize` (a study's relearn
    ran only at the defaults, which damage the tiny models); one line and exit 2 on an unknown attack or setting."""
    if text is None:
        return {}
    from engine.api import attack_kinds, check_attack_params
    from engine.errors import SpecError

    known, chosen = attack_kinds(), {}
    for part in (part.strip() for part in text.split(",")):
        if not part:
            continue
        name, *settings = (piece.strip() for piece in part.split(":"))
        if name not in known:
            fail(f"--attacks: unknown attack {name!r}; choose from {', '.join(known)}")
        options = {}
        for setting in settings:
            key, equals, value = setting.partition("=")
            key = key.strip().replace("-", "_")
            if not equals or key not in SETTINGS.get(name, ()):
                fail(f"--attacks {part}: {name} takes {', '.join(f'{k}=VALUE' for k in SETTINGS.get(name, ()))} "
                     f"(e.g. {name}:{SETTINGS[name][0]}=...), got {setting!r}")
            options[key] = setting_value(key, value.strip())
        try:  # the values too, before any cell trains (a bad one was found after the whole study had run)
            check_attack_params(name, options)
        except SpecError as error:
            fail(f"--attacks {part}: {error}")
        if name in chosen and chosen[name] != options:
            fail(f"--attacks names {name} twice with other settings; give it once")
        chosen[name] = options
    if not chosen:
        fail(f"--attacks needs at least one attack, e.g. --attacks {','.join(known)}")
    return chosen


def setting_value(key: str, text: str):
    """A setting as its attack option takes it: a whole number or a number where it reads as one (the attack's
    checks name what is wrong), a path made absolute, a word."""
    if key == "paraphrases":
        import os

        return os.path.abspath(os.path.expanduser(text))
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def stored_attack(store, session: str, spec: dict) -> dict | None:
    """The newest finished attack on `session` with `spec`'s kind and parameters, as `attacks_of` lists it."""
    found = [a for a in attacks_of(store, session) if a["state"] == "finished" and a["kind"] == spec["attack"]["kind"]
             and a["params"] == spec["attack"]["params"]]
    return found[-1] if found else None


def run_study_attacks(sessions: list[tuple[str, int, str]], kinds: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """Run (or read back) each attack, with its settings, on each finished cell `(method, seed, session)`; returns
    {session: {kind: {"recovery": fraction or None, "points": points, "session": the attack's session}}}."""
    from sessions.store import SessionStore
    from workbench.cli_attack import checked_spec, run_attack_session

    store, values = SessionStore(), {}
    todo = []
    for method, seed, session in sessions:
        meta = store.get(session)
        if isinstance((meta.get("summary") or {}).get("stopped_by"), dict):  # attack refuses it (engine.attacks)
            print(f"study attacks: {method} s{seed} ({session}) was stopped by --stop-if before its last request: "
                  "not attacked", file=sys.stderr, flush=True)
            continue
        for kind in kinds:
            spec = checked_spec(kind, meta, kinds[kind])
            done = stored_attack(store, session, spec)
            if done is not None:
                values.setdefault(session, {})[kind] = {"recovery": done["recovery"], "points": done["points"],
                                                        "session": done["id"]}
            else:
                todo.append((method, seed, meta, kind, spec))
    if todo:
        print(f"study attacks: {len(todo)} to go", file=sys.stderr, flush=True)
    for method, seed, meta, kind, spec in todo:
        result = run_attack_session(spec, meta, None)
        values.setdefault(meta["id"], {})[kind] = {"recovery": result["recovery"]["fraction"],
                                                   "points": result["recovery"]["points"], "session": result["session"]}
    return values


def attack_columns(kinds: list[str]) -> list[tuple[str, str]]:
    """The study table's columns of the attacks: (header, metric)."""
    return [(f"{kind} recovery", f"attack.{kind}.recovery") for kind in kinds]
