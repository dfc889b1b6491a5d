"""A session row in words: its final metrics, its deletion set and how long it ran.

The sessions home and `sessions list` print these the same way (numbers through sessions.numbers). Pure Python.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sessions.metric_names import flatten
from sessions.schema import ACTIVE_STATES
from sessions.numbers import format_duration


def summary_metrics(summary: Any) -> dict[str, float]:
    """Flat final metrics of a summary (``{"metrics": {...}}`` as run results have, or flat)."""
    if not isinstance(summary, dict):
        return {}
    return flatten(summary["metrics"]) if "metrics" in summary else flatten(summary)


TEST_HEADLINES = ("test.r_mean", "test.accuracy")  # the test metric each run task reports first


def test_headline_name(metrics: dict[str, float]) -> str | None:
    """The test split's headline of flat metrics: ``test.r_mean`` (retrieval) or ``test.accuracy``."""
    return next((name for name in TEST_HEADLINES if name in metrics), None)


def test_headline(metrics: dict[str, float]) -> float | None:
    """The test split's headline value (see ``test_headline_name``), or None."""
    name = test_headline_name(metrics)
    return None if name is None else metrics[name]


def format_deletion(deletion: Any) -> str:
    """``random 8 s0``, ``ids FILE.txt``, ``query 'red circle'``; ``... facts`` at fact granularity."""
    if not isinstance(deletion, dict):
        return "" if deletion is None else str(deletion)
    facts = " facts" if deletion.get("granularity") == "fact" else ""
    strategy = deletion.get("strategy", "")
    if strategy == "random":
        seed = deletion.get("seed")  # a study's protocol has none: each cell draws with its own seed
        return f"random {deletion.get('n')}{'' if seed is None else f' s{seed}'}{facts}"
    if strategy == "ids":
        return f"ids {Path(str(deletion.get('file'))).name}{facts}"
    if strategy == "query":
        return f"query {deletion.get('query')!r}{facts}"
    return str(strategy) + facts


def granularity(spec: Any) -> str:
    """What one deletion unit of a spec is: ``fact`` (a run's ``deletion.granularity``, a PULSE spec's
    ``granularity``) or ``unit``."""
    if not isinstance(spec, dict):
        return "unit"
    deletion = spec.get("deletion")
    return (deletion.get("granularity") if isinstance(deletion, dict) else None) or spec.get("granularity") or "unit"


def deletion_line(spec: Any, summary: Any, shown: int = 6) -> str | None:
    """``random 4 s7 facts: IMG#owner, IMG#mark`` for a fact-granularity session (its result's fact ids once
    it has one), None at unit granularity (the spec says it all)."""
    if granularity(spec) != "fact":
        return None
    deletion = summary.get("deletion") if isinstance(summary, dict) else None
    facts = deletion.get("facts") if isinstance(deletion, dict) else None
    facts = [str(f) for f in facts] if isinstance(facts, list) else []
    what = format_deletion(spec.get("deletion")) if isinstance(spec.get("deletion"), dict) else \
        f"{spec.get('forget')} facts"
    if not facts:
        return what
    more = f" and {len(facts) - shown} more" if len(facts) > shown else ""
    return f"{what}: {', '.join(facts[:shown])}{more}"


def run_seconds(row: dict, now: float | None = None) -> float:
    """How long a catalog row's session has run (until now while it is queued or running; an interrupted one until
    its last event, ``ended``, not until the engine start that noticed it; one still marked running that no process
    writes, ``live`` False as a killed run's row is, until its last write: it grew on until a repair)."""
    start = row.get("created") or 0
    going = row.get("state") in ACTIVE_STATES and row.get("live") is not False
    end = (now or time.time()) if going else (row.get("ended") or row.get("updated") or start)
    return max(0.0, end - start)


def took(meta: dict) -> float:
    """How long a session's run took: its summary's own ``seconds`` when it has one, else ``run_seconds``."""
    seconds = own_seconds(meta)
    return seconds if seconds is not None else run_seconds(meta)


def own_seconds(meta: dict) -> float | None:
    """A finished run's own seconds (its unlearning: no original's training, no evaluation), None without them."""
    summary = meta.get("summary") if isinstance(meta.get("summary"), dict) else {}
    seconds = summary.get("seconds")
    return float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None


def took_words(meta: dict) -> str:
    """``took`` in words that say which it is: ``0.3 s of unlearning (8.0 s in all)`` for a run with its own
    seconds, ``15 s in all`` otherwise (a cancelled or failed run): the one figure read as two things."""
    seconds, wall = own_seconds(meta), format_duration(run_seconds(meta))
    summary = meta.get("summary") if isinstance(meta.get("summary"), dict) else {}
    total = summary.get("total_seconds")
    if isinstance((meta.get("spec") or {}).get("resumes"), dict) and isinstance(total, (int, float)) \
            and not isinstance(total, bool) and seconds is not None:  # its own process ran only the requests after
        return f"{format_duration(seconds)} of unlearning ({format_duration(total)} in all, with the run it resumed)"
    # an attack's own seconds are its attack (a rephrase trains nothing: "4.5 s of unlearning" read as training)
    doing = "the attack" if (meta.get("spec") or {}).get("kind") == "attack" else "unlearning"
    return f"{format_duration(seconds)} of {doing} ({wall} in all)" if seconds is not None else f"{wall} in all"
