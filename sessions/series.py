"""From an event list to what replay, monitor and export draw: loss and metric series, the final
metric table, tidy rows for CSV, and downsampling. Pure Python (the stored data stays whole; only
what is drawn is downsampled)."""
from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

from sessions.metric_names import flatten
from sessions.numbers import fmt, shown
from sessions.summary import summary_metrics

Series = dict[str, tuple[list[float], list[float]]]


RECALL_AT_K = re.compile(r"(txt|img)_r\d+|r\d+_(i2t|t2i)")  # txt_r1 ... img_r10 (and the paper's spelling)


def is_headline_metric(name: str) -> bool:
    """AUC, recall means, MIA, accuracies: what plots draw and summaries list first (recall at single
    k values would only clutter a plot; the tables keep them)."""
    return not RECALL_AT_K.fullmatch(name.rsplit(".", 1)[-1])


def plotted_metric(name: str, value: float) -> tuple[str, float] | None:
    """How an eval metric is drawn on a plot shared with the others, or None (left to the tables).

    Plots share one percent axis, as every table shows rates (sessions.numbers): AUCs and other
    fractions are drawn x100; recall means, accuracies and retention as they are stored."""
    if not is_headline_metric(name):
        return None
    return name, shown(name, value)


TRAINING_PHASES = ("original", "pretrain")  # the original's training (engine/protocols/originals.py, tasks)


def is_training_step(event: dict) -> bool:
    """A step of the original's training (phase ``original``, ``original:<stage>`` or ``pretrain``), which a run
    does only when its original was not cached: its curves and step counts are kept apart from unlearning."""
    phase = str(event.get("phase") or "")
    return phase in TRAINING_PHASES or phase.startswith("original:")


# an attack's relearning of Retrain, its baseline (engine/attacks/run.py): steps of another model than the attacked one
BASELINE_PHASE = "attack:retrain"


def is_baseline_step(event: dict) -> bool:
    return event.get("kind") == "step" and event.get("phase") == BASELINE_PHASE


def is_unlearning_step(event: dict) -> bool:
    """A step of the session's own run: neither the original's training nor a baseline's (an attack session that
    relearned Retrain too counted 20 steps for its 10)."""
    return event.get("kind") == "step" and not is_training_step(event) and not is_baseline_step(event)


def unlearning_steps(events: Iterable[dict]) -> int:
    return sum(is_unlearning_step(e) for e in events)


def training_steps(events: Iterable[dict]) -> int:
    """Steps of the original's training in this session (0 when the original came from the cache)."""
    return sum(e.get("kind") == "step" and is_training_step(e) for e in events)


def loss_series(events: Iterable[dict], training: bool = False) -> Series:
    """Every loss term over the run; x counts unlearning steps across requests. The original's training, when
    it ran in the session, is left out (``training=True``: its losses alone, x its own steps)."""
    out: Series = {}
    x = 0
    for event in events:
        if event.get("kind") != "step" or is_baseline_step(event) or is_training_step(event) != training:
            continue
        for term, value in (event.get("losses") or {}).items():
            if isinstance(value, (int, float)):
                xs, ys = out.setdefault(term, ([], []))
                xs.append(x)
                ys.append(float(value))
        x += 1
    return out


def eval_series(events: Iterable[dict], split: str | None = "step") -> Series:
    """Eval metrics over the run (x as in loss_series: unlearning steps done); ``split=None`` takes every split
    but the history rows, ``split="curve"`` the evaluations during the run and after it (and after each request):
    what panels draw."""
    out: Series = {}
    x = 0
    wanted = ("step", "after") if split == "curve" else (split,)
    for event in events:
        kind = event.get("kind")
        if kind == "step":
            x += is_unlearning_step(event)
        elif kind == "eval" and (event.get("split") in wanted or split is None and event.get("split") != "history"):
            for label, value in plotted_metrics(flatten(event.get("metrics") or {})):
                xs, ys = out.setdefault(label, ([], []))
                xs.append(x)
                ys.append(value)
    return out


def request_series(events: Iterable[dict], split: str = "after") -> Series:
    """Eval metrics per deletion request (x = request index), for sequential (PULSE-style) runs."""
    out: Series = {}
    for event in events:
        if event.get("kind") == "eval" and event.get("split") == split and event.get("request") is not None:
            for label, value in plotted_metrics(flatten(event.get("metrics") or {})):
                xs, ys = out.setdefault(label, ([], []))
                xs.append(float(event["request"]))
                ys.append(value)
    return out


def plotted_metrics(metrics: dict[str, float]) -> list[tuple[str, float]]:
    """The (label, value) points of flat metrics that are drawn (see ``plotted_metric``)."""
    points = (plotted_metric(name, value) for name, value in metrics.items())
    return [point for point in points if point is not None]


def column_label(event: dict) -> str:
    """``before``, ``after``, ``after r3``, or ``after r6 (sample)`` where request 6's Df was a sample."""
    request = event.get("request")
    label = f"{event.get('split')} r{request}" if request is not None else str(event.get("split"))
    return label + " (sample)" if event.get("evaluation") == "sample" else label


def delta_columns(columns: list[str]) -> tuple[str, str] | None:
    """The two columns a final-metrics table's delta is taken between: ``before`` and the last full ``after`` (``after
    r3`` of a 3-request run, an attack's own ``after``, not Retrain's), or None. A run's final column is named ``after
    r1``, so the tables looked for ``after`` and showed no delta for any run."""
    after = [c for c in columns if c.startswith("after") and not c.endswith("(sample)")]
    return ("before", after[-1]) if "before" in columns and after else None


DELTA = "delta"


def with_delta(columns: list[str]) -> list[str]:
    """The table's columns with ``delta`` right after the column it is taken to (an attack's own ``after``, before
    Retrain's columns, which it read as theirs when it came last)."""
    delta = delta_columns(columns)
    if delta is None:
        return list(columns)
    at = columns.index(delta[1]) + 1
    return [*columns[:at], DELTA, *columns[at:]]


def final_table(events: Iterable[dict]) -> tuple[list[str], dict[str, dict[str, float]]]:
    """(columns, {metric: {column: value}}) from the eval events other than per-step ones; columns
    are splits in order of appearance ("before", "after", "after r1", ...); the last value wins."""
    columns: list[str] = []
    rows: dict[str, dict[str, float]] = {}
    for event in events:
        if event.get("kind") != "eval" or event.get("split") in ("step", "history"):  # history: sessions/history.py
            continue
        label = column_label(event)
        if label not in columns:
            columns.append(label)
        for name, value in flatten(event.get("metrics") or {}).items():
            rows.setdefault(name, {})[label] = value
    return columns, rows


def downsample(xs: Sequence[float], ys: Sequence[float], points: int) -> tuple[list[float], list[float]]:
    """At most ~``points`` points: min and max of each bucket, in x order (spikes survive).

    Takes lists or ``array("d")``; the builtin min/max/index over each bucket's slice take about 7 ms
    per 100,000 points, so the monitor can call it on every redraw."""
    n = len(xs)
    if points <= 0 or n <= points:
        return list(xs), list(ys)
    buckets = max(1, points // 2)
    size = math.ceil(n / buckets)
    out_x: list[float] = []
    out_y: list[float] = []
    for start in range(0, n, size):
        chunk = list(ys[start:start + size])  # list.index finds the very object min returned, NaN too
        lo = start + chunk.index(min(chunk))
        hi = start + chunk.index(max(chunk))
        for i in sorted({lo, hi}):
            out_x.append(xs[i])
            out_y.append(ys[i])
    return out_x, out_y


CSV_COLUMNS = ("seq", "ts", "kind", "phase", "request", "split", "step", "name", "value")


def tidy_rows(events: Iterable[dict]) -> Iterable[tuple]:
    """One row per number: step losses (``loss.<term>``, ``lr``) and eval metrics, in seq order."""
    for event in events:
        kind = event.get("kind")
        if kind == "step":
            base = (event["seq"], event["ts"], kind, event.get("phase"), event.get("request"), "",
                    event.get("step"))
            for term, value in (event.get("losses") or {}).items():
                yield (*base, f"loss.{term}", value)
            if "lr" in event:
                yield (*base, "lr", event["lr"])
        elif kind == "eval":
            base = (event["seq"], event["ts"], kind, event.get("phase"), event.get("request"),
                    event.get("split"), event.get("step"))
            for name, value in flatten(event.get("metrics") or {}).items():
                yield (*base, name, value)


def final_metrics(events: list[dict], summary) -> dict[str, float]:
    """The last "after" value of each metric, else the summary's metrics."""
    columns, rows = final_table(events)
    after = next((c for c in reversed(columns) if c.startswith("after")), columns[-1] if columns else None)
    out = {name: values[after] for name, values in rows.items() if after in values}
    return out or summary_metrics(summary)


COMPARED_FIELDS = ("state", "method", "model", "data")   # what Compare's table says of each session under its numbers


def compare_rows(sessions: list[tuple[dict, dict]], names: list[str]) -> list[tuple[str, ...]]:
    """Compare's table (the screen's and `sessions compare`'s): for each metric of `names`, every session's final value
    as shown; then each session's state, method, model and data. `sessions`: (meta, final metrics) each."""
    rows = [(name, *(fmt(final.get(name), name) for _, final in sessions)) for name in names]
    return rows + [(key, *(str(meta.get("state") if key == "state" else (meta.get("spec") or {}).get(key))
                          for meta, _ in sessions)) for key in COMPARED_FIELDS]
