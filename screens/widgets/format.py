"""Numbers as the screens' tables show them: four significant digits, ``-`` for nothing."""
from __future__ import annotations

import math


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def fmt_delta(before, after) -> str:
    if before is None or after is None:
        return "-"
    return f"{after - before:+.4g}"
