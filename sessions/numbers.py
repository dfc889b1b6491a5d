"""One number format for everything a person reads: the screens, `sessions list/show`, `replay --headless`,
the demo, study and PULSE tables, the HTML reports and the plots' axes.

- Rates and AUCs in percent with one decimal: ``70.3``. Which metrics are stored as 0-1 fractions is
  decided here, by name: AUCs (``df_dr_auc``, ``mia.auc``, ``mia.attack_auc``), rates
  (``mia.df_member_rate``), the four-option accuracies of people data (``forget.image``,
  ``retain.text``, ``mmbench``, ...) and the AUC gap to Retrain; they are shown x100. Recall
  (``test.r_mean``, ``df.txt_r1``), classification accuracy and MMBench retention are stored in percent
  and shown as they are.
- Deltas signed, one decimal, in the same units, from the values as shown: ``+1.2``, ``-0.4``.
- Seconds humanised: ``45 s``, ``3 m 20 s``, ``1 h 05 m`` (``seconds`` and any ``*_seconds``: a run's cost).
- Memory (``*_mb``) in MB below a GB, else in GB with one decimal: ``510 MB``, ``12.3 GB``.
- A p-value (``forget_quality``) with two significant digits; any other number with four.

Stored events and every ``--json`` keep the raw values; only what is printed goes through here.
Pure Python.
"""
from __future__ import annotations

import math
import re
from typing import Any

FRACTION = "fraction"  # stored 0-1, shown in percent
PERCENT = "percent"    # stored and shown in percent
# Two stored scores closer than this are one score: the same outcome in float32 can differ from itself by a few
# ulp (2.5e-7 measured, a one-unit recall mean whose six recalls round differently), while a real change is at
# least one row of 1,000 (1e-3 as a fraction, 0.1 points). What divides by a difference of scores checks it.
SAME_SCORE = 1e-4
P_VALUE = "p-value"
SECONDS = "seconds"
MEGABYTES = "megabytes"
NUMBER = "number"

PEOPLE_GROUPS = ("forget", "forget_all", "retain", "other")  # four-option QA groups, each .image and .text
FRACTION_NAMES = {"mmbench", "auc_gap_to_retrain", "recovery"}  # recovery: an attack's share of the forgotten gap
PERCENT_NAMES = {"r_mean", "accuracy", "test_gap_to_retrain", "privleak", "points"}  # points: an attack's, any task
RECALL = re.compile(r"(txt|img)_r\d+|r\d+_(i2t|t2i)")  # recall at k, in percent
P_VALUE_NAMES = {"forget_quality"}
SECONDS_NAMES = {"seconds"}


def unit(name: str | None) -> str:
    """How metric ``name`` (flat, dotted) is stored: FRACTION, PERCENT, P_VALUE, SECONDS or NUMBER."""
    if not name:
        return NUMBER
    parts = name.split(".")
    last = parts[-1]
    if last in SECONDS_NAMES or last.endswith("_seconds"):
        return SECONDS
    if last.endswith("_mb"):
        return MEGABYTES
    if last in P_VALUE_NAMES:
        return P_VALUE
    if last in FRACTION_NAMES or last.endswith("auc") or last.endswith("_rate"):
        return FRACTION
    if len(parts) == 2 and parts[0] in PEOPLE_GROUPS and last in ("image", "text", "accuracy"):  # accuracy: both
        return FRACTION
    if name in PEOPLE_GROUPS:  # a group's accuracy pooled over its questions (a pulse run's history metrics)
        return FRACTION
    if len(parts) == 2 and parts[0] == "holdout_identity" and last in ("image", "text"):  # people data's kept facts
        return FRACTION
    if last in PERCENT_NAMES or last.endswith("retention") or RECALL.fullmatch(last):
        return PERCENT
    return NUMBER


def is_fraction(name: str | None) -> bool:
    return unit(name) == FRACTION


def is_rate(name: str | None) -> bool:
    """Shown in percent (stored as a fraction or in percent)."""
    return unit(name) in (FRACTION, PERCENT)


def shown(name: str | None, value: float) -> float:
    """The value as a person reads it: fractions x100, everything else as stored."""
    return 100.0 * value if is_fraction(name) else value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def fmt(value: Any, name: str | None = None) -> str:
    """``value`` of metric ``name`` for a person: ``70.3``, ``3 m 20 s``, ``0.042``; ``-`` for nothing,
    text as it is."""
    if value is None:
        return "-"
    number = _number(value)
    if number is None:
        return str(value)
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    kind = unit(name)
    if kind in (FRACTION, PERCENT):
        return f"{shown(name, number):.1f}"
    if kind == SECONDS:
        return format_duration(number)
    if kind == MEGABYTES:
        return format_megabytes(number)
    if kind == P_VALUE:
        return f"{number:.2g}"
    if isinstance(value, int):
        return str(value)
    return f"{number:.4g}"


def fmt_delta(before: Any, after: Any, name: str | None = None) -> str:
    """``after - before`` signed, in the units ``fmt`` shows: ``+1.2``, ``-0.4``, ``+2 m 05 s``."""
    b, a = _number(before), _number(after)
    if b is None or a is None:
        return "-"
    diff = a - b
    if math.isnan(diff):
        return "nan"
    kind = unit(name)
    if kind in (FRACTION, PERCENT):  # from the two values as shown, so the delta agrees with them
        text = f"{round(shown(name, a), 1) - round(shown(name, b), 1):+.1f}"
        return "+0.0" if text == "-0.0" else text
    if kind == SECONDS:
        return ("-" if diff < 0 else "+") + format_duration(abs(diff))
    return f"{diff:+.2g}" if kind == P_VALUE else f"{diff:+.4g}"


def fmt_over(stats: dict | None, name: str | None, runs: int) -> str:
    """``fmt_mean_std``, and ``(n 2)`` after it when fewer than the row's ``runs`` seeds gave it (a seed where Retrain
    did not finish has no gap to it, a NaN is left out): a row's columns can rest on different seeds."""
    text = fmt_mean_std(stats, name)
    n = (stats or {}).get("n")
    return f"{text} (n {n})" if isinstance(n, int) and 0 < n < runs else text


def fmt_mean_std(stats: dict | None, name: str | None = None) -> str:
    """``{"mean", "std", "n"}`` as ``70.3 ± 1.2`` (the std in the mean's units; ``70.3`` for n = 1); a p-value's
    ``{"median", "per_seed", "n"}`` as ``0.012 (median of 0.004, 0.012, 0.5)`` (``lower median of`` two or four
    seeds, which is what it takes); ``-`` for nothing."""
    if not stats:
        return "-"
    if "median" in stats:
        seeds = [fmt(v, name) for v in (stats.get("per_seed") or {}).values()]
        which = "lower median" if len(seeds) % 2 == 0 else "median"   # of an even count: the lower middle one
        return f"{fmt(stats['median'], name)} ({which} of {', '.join(seeds)})" if len(seeds) > 1 else \
            fmt(stats["median"], name)
    mean, std = _number(stats.get("mean")), _number(stats.get("std"))
    if mean is None:
        return "-"
    if stats.get("n") == 1:  # one seed has no spread to show
        return fmt(mean, name)
    if unit(name) == SECONDS:
        return f"{format_duration(mean)} ± {format_duration(std or 0.0)}"
    if unit(name) == MEGABYTES:
        return f"{format_megabytes(mean)} ± {format_megabytes(std or 0.0)}"
    return f"{fmt(mean, name)} ± {fmt(std or 0.0, name)}"


def format_duration(seconds: float) -> str:
    """``45 s``, ``3 m 20 s``, ``1 h 05 m``; under ten seconds with a tenth when there is one (``1.5 s``)."""
    seconds = max(0.0, float(seconds))
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} m {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} m"


def format_megabytes(megabytes: float) -> str:
    """``510 MB``; from a GB on, ``12.3 GB``."""
    return f"{megabytes / 1024:.1f} GB" if abs(megabytes) >= 1024 else f"{megabytes:.0f} MB"


__all__ = ["FRACTION", "MEGABYTES", "NUMBER", "PERCENT", "P_VALUE", "SECONDS", "fmt", "fmt_delta", "fmt_mean_std",
           "format_duration", "format_megabytes", "is_fraction", "is_rate", "shown", "unit"]
