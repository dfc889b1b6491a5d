"""`--budget matched-time`: every unlearning method gets MultiDelete's training seconds on each request.

The seconds come from `--budget-seconds S` (the same S for every request), or else from the newest
finished MultiDelete session of the same protocol in this home (same model, data, task, seed, deletion
set, requests, device, knowledge scenario, batch sizes and update target; under any budget MultiDelete runs
its own steps unless --epochs changed them):
its per-request `seconds`, training time with evaluation left out, as the loop measures it. MultiDelete
itself runs its default epochs (its seconds are the budget). The loop stops at the first step boundary
past the seconds, so a timed run is not bit-reproducible: the number of steps depends on the machine and
its load. The result document records the seconds and where they came from (`time_budget`).
"""
from __future__ import annotations

from engine.errors import SpecError

REFERENCE = "multidelete"
SAME_PROTOCOL = ("model", "data", "task", "seed", "deletion", "requests", "device", "knowledge", "forget", "general",
                 "granularity")  # a PULSE spec's granularity; a run's rides in its deletion
SAME_PARAMS = ("batch_size", "retain_batch_size", "update")


def same_protocol(spec: dict, other: dict) -> bool:
    mine, theirs = spec.get("params") or {}, other.get("params") or {}
    return (all(spec.get(key) == other.get(key) for key in SAME_PROTOCOL)
            and all(mine.get(key) == theirs.get(key) for key in SAME_PARAMS))


def stored_reference_seconds(spec: dict, store=None) -> tuple[list[float], str] | None:
    """(per-request seconds, session id) of the newest finished MultiDelete run of this protocol, if any."""
    from sessions.store import SessionStore

    store = store or SessionStore()
    for row in store.list(state="finished"):  # newest first
        if row.get("method") != REFERENCE:
            continue
        try:
            meta = store.get(row["id"])
        except Exception:  # damaged or deleted meanwhile: not a source
            continue
        summary = meta.get("summary") or {}
        if same_protocol(spec, meta.get("spec") or {}) and summary.get("requests"):
            return [float(entry["seconds"]) for entry in summary["requests"]], row["id"]
    return None


def time_budget(spec: dict, store=None) -> dict | None:
    """{"seconds": [per request], "source": ...} for a matched-time run of an unlearning method; None otherwise.
    SpecError (before anything trains) when MultiDelete's seconds are nowhere to be read."""
    params = spec["params"]
    if params.get("budget") != "matched-time" or spec["method"] == REFERENCE:
        return None
    requests = spec.get("requests", 1)
    if params.get("budget_seconds"):
        return {"seconds": [float(params["budget_seconds"])] * requests, "source": "--budget-seconds"}
    found = stored_reference_seconds(spec, store)
    if found is None:
        raise SpecError("--budget matched-time needs MultiDelete's seconds: run --method multidelete with the same "
                        "protocol first (its session is read), or give --budget-seconds S", field="budget")
    seconds, session = found
    if len(seconds) < requests:  # MultiDelete stopped early (a guardrail): later requests get its last
        seconds = seconds + [seconds[-1]] * (requests - len(seconds))
    return {"seconds": seconds[:requests], "source": f"multidelete session {session}"}
