"""Plots by question: a run's curves grouped into small panels (forget, keep, privacy, general ability, loss
terms), the one layout that the monitor, Compare, the HTML report and `replay --headless` all draw.

A panel holds at most ``MAX_SERIES`` series, the headline ones first (``GROUP_ORDER``); the rest are left
to the tables. Its reference lines are the original's value and Retrain's of the panel's first series when
they are known, and 100 for a retention metric. Every panel of a run shares one x range, and the step and
request axes get integer ticks. Colours come from one fixed palette (``PALETTE``) whose entries stay
distinct when a terminal folds true colour down to its 256 colours, and none of which is a background.

Pure Python: the screens draw panels with plotext, the report with matplotlib, the headless replay as text.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from sessions.metric_names import flatten
from sessions.numbers import is_rate, shown
from sessions.series import eval_series, final_table, loss_series, unlearning_steps

MAX_SERIES = 4
GROUPS = ("forget", "keep", "privacy", "general", "loss")
TITLES = {"forget": "forget", "keep": "keep", "privacy": "privacy", "general": "general ability",
          "loss": "loss terms"}
# within a panel the headline series come first (these, in this order), then the rest alphabetically
GROUP_ORDER = {
    "forget": ("df_dr_auc", "df.r_mean", "df.accuracy", "forget.image", "forget.text", "forget_all.image",
               "forget_all.text", "auc_gap_to_retrain"),
    "keep": ("test.r_mean", "test.accuracy", "holdout_identity.r_mean", "holdout_identity.accuracy",
             "holdout_association.r_mean", "holdout_association.accuracy", "dr.r_mean", "dr.accuracy",
             "retain.image", "retain.text", "holdout_identity.image", "holdout_identity.text", "test_gap_to_retrain"),
    "privacy": ("mia.df_member_rate", "mia.auc", "mia.attack_auc", "mia.test_member_rate", "privleak"),
    "general": ("mmbench_retention", "mmbench", "other.image", "other.text"),
    "loss": ("total",),
}
# Okabe-Ito's colour-blind-safe set plus two: each folds to its own 256-colour entry, none is near the dark
# or the light theme's background (tests/test_panels.py checks both)
PALETTE: tuple[tuple[int, int, int], ...] = (
    (86, 180, 233),   # sky blue
    (230, 159, 0),    # orange
    (0, 158, 115),    # bluish green
    (204, 121, 167),  # reddish purple
    (240, 228, 66),   # yellow
    (213, 94, 0),     # vermilion
    (0, 114, 178),    # blue
    (170, 170, 170),  # grey
)
REFERENCE_COLOUR = (150, 150, 150)


def hex_colour(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{c:02x}" for c in rgb)


@dataclass
class Line:
    """One drawn series: ``xs``/``ys`` are kept by reference (a live run's arrays keep growing)."""
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    colour: tuple[int, int, int]

    def __len__(self) -> int:
        return len(self.xs)


@dataclass
class Reference:
    """A horizontal line: ``original df_dr_auc``, ``Retrain df_dr_auc`` or ``100%``."""
    label: str
    y: float


@dataclass
class Panel:
    key: str                        # one of GROUPS
    title: str
    lines: list[Line]
    references: list[Reference] = field(default_factory=list)
    x_range: tuple[float, float] = (0.0, 1.0)
    xlabel: str = "step"
    integer_x: bool = True
    left_out: list[str] = field(default_factory=list)   # series over the cap, left to the tables


def metric_group(name: str) -> str | None:
    """Which question metric ``name`` answers: forget, keep, privacy or general; None for a metric no panel
    draws (not a rate or percentage: p-values, counts)."""
    if not is_rate(name):
        return None
    head, last = name.split(".")[0], name.rsplit(".", 1)[-1]
    if head in ("mia", "option_gap") or last.endswith("member_rate") or last == "privleak":  # option_gap: PULSE's attacks
        return "privacy"
    if name == "df_dr_auc" or head in ("df", "forget", "forget_all") or name == "auc_gap_to_retrain":
        return "forget"
    if "mmbench" in last or head in ("other", "general"):
        return "general"
    return "keep"


def series_rank(group: str, name: str) -> tuple[int, int, str]:
    order = GROUP_ORDER.get(group, ())
    return (0, order.index(name), name) if name in order else (1, 0, name)


def integer_ticks(lo: float, hi: float, most: int = 6) -> list[int]:
    """At most ``most`` integer ticks over [lo, hi] at a 1-2-5 spacing (``[0, 5, 10]`` for 0..12)."""
    first, last = math.ceil(lo), math.floor(hi)
    if last < first:
        return [first]
    span, spacing = last - first, 1
    while span / spacing > max(most - 1, 1):
        for factor in (2, 5 / 2, 2):        # 1, 2, 5, 10, 20, 50, ...
            spacing = round(spacing * factor)
            if span / spacing <= max(most - 1, 1):
                break
    start = math.ceil(first / spacing) * spacing
    ticks = list(range(int(start), int(last) + 1, int(spacing)))
    return ticks if len(ticks) > 1 or last == first else [first, last]  # a narrow panel: where the run ends


def x_range(series: Iterable[Mapping[str, object]], steps: int | None = None) -> tuple[float, float]:
    """One x range for every panel of a run: 0 to the run's step count (else to the last x drawn)."""
    last = 0.0
    for group in series:
        for value in group.values():
            xs = value[0] if isinstance(value, tuple) else value.xs
            if len(xs):
                last = max(last, float(xs[-1]))
    end = float(steps) if steps else last
    return 0.0, max(end, last, 1.0)


def _xs_ys(value) -> tuple[Sequence[float], Sequence[float]]:
    return value if isinstance(value, tuple) else (value.xs, value.ys)


def run_panels(losses: Mapping[str, object], metrics: Mapping[str, object], *, steps: int | None = None,
               before: Mapping[str, float] | None = None, retrain: Mapping[str, float] | None = None,
               xlabel: str = "step", before_label: str = "original") -> list[Panel]:
    """A run's panels, in GROUPS order, those with something to draw. ``losses`` and ``metrics`` map a name to
    ``(xs, ys)`` (or an object with ``.xs``/``.ys``); metric values as drawn (``sessions.series``: percent),
    ``before``/``retrain`` flat raw metrics (the original's and a matching Retrain's, as stored); ``before_label``
    names the first (an attack's `before` is the unlearned model, not the original)."""
    span = x_range([losses, metrics], steps)
    grouped: dict[str, list[str]] = {}
    for name in metrics:
        group = metric_group(name)
        if group:
            grouped.setdefault(group, []).append(name)
    if losses:
        grouped["loss"] = list(losses)
    panels = []
    for group in GROUPS:
        names = sorted(grouped.get(group, []), key=lambda n: series_rank(group, n))
        if not names:
            continue
        source = losses if group == "loss" else metrics
        drawn = names[:MAX_SERIES]
        lines = [Line(name, *_xs_ys(source[name]), PALETTE[i]) for i, name in enumerate(drawn)]
        panels.append(Panel(group, TITLES[group], lines, references(group, drawn, before, retrain, before_label), span, xlabel,
                            xlabel in ("step", "request"), names[MAX_SERIES:]))
    return panels


def references(group: str, names: list[str], before: Mapping[str, float] | None,
               retrain: Mapping[str, float] | None, before_label: str = "original") -> list[Reference]:
    """The original's (`before_label`'s) and Retrain's value of the panel's first series (when known), and 100% for
    retention."""
    if group == "loss" or not names:
        return []
    out = []
    first = names[0]
    for label, known in ((before_label, before), ("Retrain", retrain)):
        if known and isinstance(known.get(first), (int, float)):
            out.append(Reference(f"{label} {first}", shown(first, float(known[first]))))
    if any(name.endswith("retention") for name in names):
        out.append(Reference("100%", 100.0))
    return out


def event_panels(events: list[dict], retrain: Mapping[str, float] | None = None) -> list[Panel]:
    """A stored run's panels (the report, `replay --headless`): its unlearning curves, the original's metrics
    (the ``before`` evaluation) and ``retrain`` (a matching Retrain's flat final metrics) as references."""
    columns, rows = final_table(events)
    before = {name: values["before"] for name, values in rows.items() if "before" in values}
    return run_panels(loss_series(events), eval_series(events, split="curve"), steps=unlearning_steps(events),
                      before=before, retrain=retrain, before_label=before_label(events))


ATTACK_BEFORE = "unlearned"


def before_label(events: Iterable[dict]) -> str:
    """What a session's `before` evaluation measured: the original, or (an attack's) the unlearned model it attacks."""
    attack = any(e.get("kind") == "eval" and e.get("phase") == "attack" for e in events)
    return ATTACK_BEFORE if attack else "original"


def retrain_metrics(store, meta: dict) -> dict[str, float] | None:
    """The flat final metrics of a finished Retrain of the session's deletion set in ``store`` (the panels'
    Retrain lines; sessions.verdict.retrain_reference), or None."""
    from sessions.verdict import retrain_reference

    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    try:
        summary = retrain_reference(store, spec, meta.get("id"))
    except Exception:  # a catalog that cannot be read: the panels without Retrain
        return None
    return flatten(summary.get("metrics") or {}) if isinstance(summary, dict) else None


def compare_panels(runs: Sequence[tuple[str, Mapping[str, object], Mapping[str, object]]], *,
                   chosen: Mapping[str, str] | None = None, term: str = "total", xlabel: str = "step",
                   x_span: tuple[float, float] | None = None) -> list[Panel]:
    """Compare's panels: one per question, each drawing one metric (``chosen[group]``, else the group's
    headline that a run has) with one line per run in the run's colour (its index in the palette), at most
    MAX_SERIES runs; and the loss panel drawing ``term``. ``runs`` are ``(label, losses, metrics)``."""
    shown_runs = list(runs)[:MAX_SERIES]
    left_out = [label for label, _, _ in list(runs)[MAX_SERIES:]]
    names = {name for _, _, metrics in runs for name in metrics}
    span = x_span or x_range([s for _, losses, metrics in shown_runs for s in (losses, metrics)])
    panels = []
    for group in GROUPS:
        if group == "loss":
            metric, pick = term, 1
        else:
            candidates = sorted((n for n in names if metric_group(n) == group), key=lambda n: series_rank(group, n))
            if not candidates:
                continue
            metric = (chosen or {}).get(group) if (chosen or {}).get(group) in candidates else candidates[0]
            pick = 2
        lines = [Line(label, *_xs_ys(run[pick][metric]), PALETTE[i % len(PALETTE)])
                 for i, run in enumerate(shown_runs) for label in [run[0]] if metric in run[pick]]
        if lines:
            title = f"{TITLES[group]}: {metric}"
            refs = [Reference("100%", 100.0)] if metric.endswith("retention") else []
            panels.append(Panel(group, title, lines, refs, span, xlabel, xlabel in ("step", "request"), left_out))
    return panels


__all__ = ["GROUPS", "MAX_SERIES", "PALETTE", "Line", "Panel", "Reference", "compare_panels", "event_panels", "hex_colour",
           "integer_ticks", "metric_group", "retrain_metrics", "run_panels"]
