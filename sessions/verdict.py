"""The verdict of a finished run in one line: did it forget, what did it keep, what did it cost.

    forget: Df/Dr AUC 91.0 -> 52.0 (Retrain 50.0, +2.0), Df r_mean 48.0 -> 12.0; keep: test r_mean 52.0 -> 50.5,
    Dr r_mean 60.0 -> 59.0; cost 1.5 s, 120 steps

The same words everywhere a run's result is shown (`run`, `replay --headless`, the monitor, the home's
detail, the HTML report), built here from the run's result document (its session summary): ``metrics``
(after), ``original_metrics`` (before), ``seconds`` and ``steps`` (unlearning only: the original's
training and the evaluations are left out), and for a request run its ``requests`` (one line each,
before = the original, after = that request's model). Numbers go through ``sessions.numbers.fmt``;
a gap to Retrain is computed from the two values as shown, so it agrees with them.

Retrain, when a finished Retrain session of the same deletion set is in the home (``same_deletion``: the
torch-free counterpart of ``engine.protocols.budget.same_protocol``, over the keys that fix what is
forgotten and what it is measured on), is the reference the forget numbers are held against.
Pure Python; ``retrain_reference`` reads a store handed in.
"""
from __future__ import annotations

import re

from typing import Any

from sessions.metric_names import flatten
from sessions.numbers import FRACTION, PERCENT, fmt, shown, unit

RETRAIN = "retrain"
# what fixes the deletion set and what it is measured on (engine/protocols/budget.py SAME_PROTOCOL, less the
# keys of how the run was made: requests, device)
SAME_DELETION = ("model", "data", "task", "seed", "deletion", "knowledge", "forget", "general", "granularity")
HEADLINES = ("r_mean", "accuracy")  # a split's headline: recall mean (retrieval) or accuracy


def same_deletion(spec: dict, other: dict) -> bool:
    """True when two run specs forget the same set of the same data from the same model, under the same seed."""
    return all(spec.get(key) == other.get(key) for key in SAME_DELETION)


def retrain_reference(store, spec: dict, session_id: str | None = None) -> dict | None:
    """The summary of the newest finished Retrain session whose spec has ``spec``'s deletion set, or None (also for
    a Retrain run itself: it is the reference). ``store`` is a SessionStore (read only)."""
    meta = retrain_session(store, spec, session_id)
    return None if meta is None else meta["summary"]


def retrain_session(store, spec: dict, session_id: str | None = None) -> dict | None:
    """The meta (``store.get``) of that Retrain session (``retrain_reference``), or None; an attack reads its
    checkpoint too."""
    if spec.get("method") == RETRAIN:
        return None
    for row in store.list(state="finished"):  # newest first; the catalog names the method
        if row.get("method") != RETRAIN or row.get("id") == session_id:
            continue
        try:
            meta = store.get(row["id"])
        except Exception:  # damaged or deleted meanwhile: not a reference
            continue
        if isinstance(meta.get("summary"), dict) and same_deletion(spec, meta.get("spec") or {}):
            return meta
    return None


def _headline(metrics: dict[str, float], split: str) -> str | None:
    return next((f"{split}.{key}" for key in HEADLINES if f"{split}.{key}" in metrics), None)


def _gap(reference: float, value: float, name: str) -> str:
    """``value - reference`` from the two as shown (one decimal in percent), signed."""
    if unit(name) in (FRACTION, PERCENT):
        diff = round(shown(name, value), 1) - round(shown(name, reference), 1)
        text = f"{diff:+.1f}"
        return "+0.0" if text == "-0.0" else text
    return f"{value - reference:+.4g}"


def _change(label: str, name: str, before: dict, after: dict, retrain: dict | None = None) -> str | None:
    """``label before -> after`` (``(Retrain x, +gap)`` when Retrain has it); None when the run lacks it."""
    if name not in after:
        return None
    text = f"{label} {fmt(before[name], name)} -> {fmt(after[name], name)}" if name in before else \
        f"{label} {fmt(after[name], name)}"
    if retrain is not None and name in retrain:
        text += f" (Retrain {fmt(retrain[name], name)}, {_gap(retrain[name], after[name], name)})"
    return text


def _parts(before: dict, after: dict, retrain: dict | None) -> tuple[list[str], list[str]]:
    """The forgot and kept clauses of one result (flat metrics)."""
    forgot, kept = [], []
    forgot.append(_change("Df/Dr AUC", "df_dr_auc", before, after, retrain))
    df = _headline(after, "df")
    if df:
        forgot.append(_change(f"Df {df.split('.')[1]}", df, before, after, retrain))
    for group in ("forget.image", "forget.text"):  # people data: four-option accuracy on the forget questions
        forgot.append(_change(group, group, before, after, retrain))
    for split, label in (("test", "test"), ("dr", "Dr"), ("holdout_identity", "holdout id"),
                         ("holdout_association", "holdout assoc")):
        name = _headline(after, split)
        if name:
            kept.append(_change(f"{label} {name.split('.')[1]}", name, before, after))
    # people data: the forget people's other facts (--granularity fact)
    for name in ("retain.image", "retain.text", "holdout_identity.image", "holdout_identity.text", "mmbench_retention"):
        kept.append(_change(name, name, before, after))
    return [p for p in forgot if p], [p for p in kept if p]


def _cost(seconds: Any, steps: Any) -> str | None:
    parts = []
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        parts.append(fmt(float(seconds), "seconds"))
    if isinstance(steps, int) and not isinstance(steps, bool):
        parts.append(f"{steps} step" + ("" if steps == 1 else "s"))
    return ", ".join(parts) or None


def _line(forgot: list[str], kept: list[str], cost: str | None) -> str:
    # headings, not a judgement: "forgot" headed the numbers of a run that forgot nothing (FT: AUC 53.0 -> 52.5,
    # Retrain 80.1), and the numbers say how far each side moved
    clauses = [f"forget: {', '.join(forgot)}" if forgot else "", f"keep: {', '.join(kept)}" if kept else "",
               f"cost {cost}" if cost else ""]
    return "; ".join(c for c in clauses if c)


def _request_metrics(entry: dict) -> dict[str, float]:
    """A request entry's metrics, flat: nested under ``metrics`` (tasks over units) or beside its other
    fields (people data: ``forget``, ``retain``, ``mmbench_retention``, ...)."""
    if isinstance(entry.get("metrics"), dict):
        return flatten(entry["metrics"])
    return flatten({k: v for k, v in entry.items() if k not in ("request", "steps", "seconds", "kept_step", "people")
                    and not k.startswith("method_")})


def verdict_lines(summary: Any, retrain: dict | None = None) -> list[str]:
    """The verdict of a finished run's result document (its session summary): one line, or one per request
    for a run of several requests (``request 2/3: ...``); [] when there is nothing to judge. ``retrain`` is a
    matching Retrain's summary (``retrain_reference``), or None."""
    if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
        return []
    before = flatten(summary.get("original_metrics") or {})
    final_reference = flatten(retrain.get("metrics") or {}) if isinstance(retrain, dict) else None
    requests = [e for e in summary.get("requests") or [] if isinstance(e, dict)]
    # the requests asked for (a --stop-if rule may end the run before them all: it read "request 3/3" of 20)
    asked = max(len((summary.get("seeds") or {}).get("requests") or []), len(requests))
    if len(requests) <= 1 and asked <= 1:  # a rule that ended request 1 of K > 1 is said as the K-request lines
        forgot, kept = _parts(before, flatten(summary["metrics"]), final_reference)
        line = _line(forgot, kept, _cost(summary.get("seconds"), summary.get("steps")))
        return ([line] if line else []) + caveat_lines(requests)
    theirs = [e for e in (retrain or {}).get("requests") or [] if isinstance(e, dict)]
    sizes = [_size(entry) for entry in requests]
    whole = (summary.get("deletion") or {}).get("units")
    if not isinstance(whole, int):   # a PULSE run's: its requests' people (or facts) together
        whole = sum(sizes) if None not in sizes else None
    so_far: int | None = 0
    lines = []
    stopped = summary.get("stopped_by") if isinstance(summary.get("stopped_by"), dict) else None
    for number, entry in enumerate(requests, start=1):
        last = number == len(requests)
        if last:  # the whole deletion set is forgotten: the Retrain of that set is the reference
            reference = final_reference
        else:  # an earlier request: Retrain's own request of that number, when it ran the same requests
            reference = _request_metrics(theirs[number - 1]) if len(theirs) == len(requests) else None
        size = sizes[number - 1]
        so_far = so_far + size if size is not None and so_far is not None else None
        if stopped and last and isinstance(entry.get("evaluated_units"), int):
            # the run reports the part it forgot as its deletion set, and the original's Df is the whole set asked
            part, reference = _stopped_part(entry, summary), None
        else:
            part = _part_of_df(entry, so_far, whole, deletion_nouns(summary))
        # the original was scored on the whole deletion set: against a part of it its Df numbers would compare
        # other units (20 units' 89.3 against the one forgotten unit's 0.0)
        forgot, kept = _parts(before if part is None else _without_df(before), _request_metrics(entry), reference)
        if part is not None and forgot:
            forgot[-1] += f" ({part})"
        line = _line(forgot, kept, _cost(entry.get("seconds"), entry.get("steps")))
        if line:
            ended = f" (stopped by --stop-if {stopped.get('rule')})" if stopped and last else ""
            lines.append(f"request {entry.get('request', number)}/{asked}: {line}{ended}")
    return lines + caveat_lines(requests)


def caveat_lines(requests: list[dict]) -> list[str]:
    """``caveat: ...`` for what a method warned of while it ran (a request's `caveats`), once each with the requests
    it held for: a MultiDelete run of one person per request reported 100/100 as if L_MD had worked, and only its
    log said that L_MD had nothing to decouple."""
    held: dict[str, list[int]] = {}
    for number, entry in enumerate(requests, start=1):
        for caveat in entry.get("caveats") or []:
            held.setdefault(str(caveat), []).append(entry.get("request", number))
    lines = []
    for caveat, numbers in held.items():
        where = "" if len(requests) <= 1 else f" (request{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))})"
        lines.append(f"caveat{where}: {caveat}")
    return lines


def _stopped_part(entry: dict, summary: dict) -> str:
    """The last request of a run a --stop-if rule ended: its Df is the units forgotten so far, not the set the
    original was scored on."""
    one, noun = deletion_nouns(summary)
    units = entry["evaluated_units"]
    return f"the {units} {noun if units != 1 else one} requested so far"


def _size(entry: dict) -> int | None:
    """How many units (people, on people data) a request forgot; None when its entry does not say."""
    if isinstance(entry.get("units"), int):
        return entry["units"]
    return len(entry["people"]) if isinstance(entry.get("people"), list) else None


def deletion_nouns(summary: dict) -> tuple[str, str]:
    """What one deletion unit of a result is called, singular and plural: a fact (--granularity fact), a person
    (people data), or a unit."""
    if (summary.get("deletion") or {}).get("granularity") == "fact":
        return "fact", "facts"
    if summary.get("kind") == "pulse" or any(isinstance(e, dict) and isinstance(e.get("people"), list)
                                             for e in summary.get("requests") or []):
        return "person", "people"
    return "unit", "units"


def _part_of_df(entry: dict, so_far: int | None, whole: int | None, nouns: tuple[str, str]) -> str | None:
    """What a request's Df evaluation scored when it is not the whole deletion set (None when it is, or when that
    cannot be told): ``the 3 units requested so far``, or ``a sample of 5 of the 12 units requested so far``
    (`--eval-sample`; its entry says `evaluation: sample`). "Requested", not "forgotten": the numbers beside it
    say whether they were."""
    units = entry.get("evaluated_units")
    if not isinstance(units, int) or units == whole:
        return None
    one, noun = nouns
    if entry.get("evaluation") == "sample" and (so_far is None or units < so_far):
        return f"a sample of {units} of the {so_far} {noun} requested so far" if so_far is not None else \
            f"a sample of {units} of the {noun} requested"
    if whole is None:
        return None
    return f"the {units} {noun if units != 1 else one} requested so far"


def _without_df(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics without those measured on Df (its AUC against Dr, its headline, the people's forget questions)."""
    return {k: v for k, v in metrics.items() if not (k == "df_dr_auc" or k.startswith(("df.", "forget.")))}


TERMINAL_REQUEST_LINES = 12   # a request run's verdict lines a terminal shows (the --json verdict keeps them all)


ROUND_STEPS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000)
REQUEST_LINE = re.compile(r"request (\d+)/")


def thinned(lines: list[str], limit: int = TERMINAL_REQUEST_LINES) -> tuple[list[str], int]:
    """A request run's verdict for a terminal, and how many request lines it leaves out: at most `limit` of them
    (a 100-request run printed 100 lines under its table), the first, the last and the multiples of the smallest
    round step that fits (1, 10, 20, ... 100: under `--eval-every-requests 10`, its full evaluations; spaced
    evenly, 1, 10, 19, 28 read as an evaluation every 9); the other lines as they are."""
    requests = {i: int(match.group(1)) for i, line in enumerate(lines) if (match := REQUEST_LINE.match(line))}
    if len(requests) <= limit:
        return lines, 0
    numbers = list(requests.values())
    ends = (numbers[0], numbers[-1])
    for step in ROUND_STEPS:
        kept = {i for i, number in requests.items() if number in ends or number % step == 0}
        if len(kept) <= limit:
            break
    return [line for i, line in enumerate(lines) if i not in requests or i in kept], len(requests) - len(kept)


def left_out_words(left_out: int) -> str:
    """What a thinned verdict says of the request lines it left out."""
    return f"{left_out} more request{'s' if left_out > 1 else ''} between these"


SCREEN_REQUEST_LINES = 3  # a screen's verdict box (the home's detail, the monitor's) above 80x24


def last_request_only(lines: list[str]) -> list[str]:
    """A verdict where room is short (80x24): of a request run's lines ``request i/K: ...`` only the last (the
    state the run ended in), so no line is cut mid-sentence; the others as they are."""
    requests = [line for line in lines if line.startswith("request ")]
    if len(requests) < 2:
        return lines
    others, caveats = _others(lines)
    return others + [requests[-1]] + caveats


def _others(lines: list[str]) -> tuple[list[str], list[str]]:
    """A verdict's lines that are not ``request i/K`` lines: (those said before the requests, the caveats said after
    them: a box too short for all cuts the caveats, never the run's last request)."""
    rest = [line for line in lines if not line.startswith("request ")]
    return [line for line in rest if not line.startswith("caveat")], [line for line in rest if line.startswith("caveat")]


COST_CLAUSE = re.compile(r"; cost [^;]*$")


def without_cost(lines: list[str]) -> list[str]:
    """A verdict without its cost clauses, for a box with room for what was forgotten and kept only (at 80x24 the
    monitor's box cut a request's line before its cost, mid-sentence)."""
    return [COST_CLAUSE.sub("", line) for line in lines]


def last_requests(lines: list[str], keep: int = SCREEN_REQUEST_LINES) -> list[str]:
    """A verdict for a screen's box: of a request run's lines the last `keep`, newest first (the run ended there,
    and a box too short for them all cuts the older ones), then one line counting those left out. A 30-request
    run's box showed requests 1 to 4, cut, and never the end; a 2-request run's showed request 1, cut before 2."""
    requests = [line for line in lines if line.startswith("request ")]
    others, caveats = _others(lines)
    if len(requests) <= keep:
        return others + requests[::-1] + caveats
    left_out = len(requests) - keep
    return others + requests[:-keep - 1:-1] + [
        f"({left_out} earlier request{'s' if left_out > 1 else ''} left out: `mmul-workbench sessions show` has each)"] \
        + caveats


def verdict_text(summary: Any, retrain: dict | None = None) -> str:
    """``verdict_lines`` joined by line breaks ("" when there is nothing to judge)."""
    return "\n".join(verdict_lines(summary, retrain))


def session_verdict(store, meta: dict) -> list[str]:
    """The verdict lines of a stored session (its meta, as ``store.get`` gives it): [] unless it finished."""
    if meta.get("state") != "finished":
        return []
    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    if spec.get("kind") == "attack":  # an attack's document says its own verdict (engine/attacks/run.py)
        verdict = (meta.get("summary") or {}).get("verdict") if isinstance(meta.get("summary"), dict) else None
        return [verdict] if isinstance(verdict, str) else []
    try:
        retrain = retrain_reference(store, spec, meta.get("id"))
    except Exception:  # a catalog that cannot be read: the verdict without Retrain
        retrain = None
    return verdict_lines(meta.get("summary"), retrain)
