"""What Compare does to a curve before it is drawn, as small pure functions: the x axis (by step, by
fraction of the run, by request), EMA smoothing with debiasing, the points a log scale can show, a
colour per session that every plot of the screen shares, and the glob filter over metric names.
Pure Python (tested with hand-checked values in tests/test_tui_compare.py)."""
from __future__ import annotations

import math
from typing import Iterable, Sequence

from sessions.panels import PALETTE as PANEL_PALETTE

X_AXES = ("step", "fraction", "request")
# the panels' palette (sessions.panels: distinct on 256-colour terminals, never the background); the first
# session takes the first
PALETTE = PANEL_PALETTE
SMOOTHING = 0.6  # the EMA weight of the past, as W&B's default slider sits


def ema(ys: Sequence[float], alpha: float = SMOOTHING) -> list[float]:
    """Exponential moving average, debiased as TensorBoard and W&B do: ``e_t = a e_{t-1} + (1 - a) y_t``
    from ``e_0 = 0``, shown as ``e_t / (1 - a^t)`` so the first points are not pulled toward 0. A NaN or
    infinite point is shown as it is and does not enter the average."""
    if not 0 <= alpha < 1:
        raise ValueError(f"EMA weight must be in [0, 1), got {alpha}")
    out: list[float] = []
    average, t = 0.0, 0
    for y in ys:
        if not math.isfinite(y):
            out.append(y)
            continue
        t += 1
        average = alpha * average + (1 - alpha) * y
        out.append(average / (1 - alpha ** t))
    return out


def request_positions(step_requests: Sequence[int | None]) -> list[float]:
    """For each step of a run (its request, None for a single-request run) the position on a request
    axis: request r's steps spread evenly over [r, r + 1); one more entry for "after the last step"."""
    positions: list[float] = []
    start = 0
    while start < len(step_requests):
        request = step_requests[start]
        end = start
        while end < len(step_requests) and step_requests[end] == request:
            end += 1
        length = end - start
        positions.extend((request or 0) + j / length for j in range(length))
        start = end
    last = step_requests[-1] if step_requests else None
    positions.append((last or 0) + 1.0)
    return positions


def map_x(xs: Iterable[float], axis: str, step_requests: Sequence[int | None]) -> list[float]:
    """Step counts (the x of loss and eval series: steps done) on ``axis``: ``step`` as they are,
    ``fraction`` of the run's steps (0 to 1), ``request`` (see ``request_positions``)."""
    if axis not in X_AXES:
        raise ValueError(f"x axis must be one of {', '.join(X_AXES)}, got {axis!r}")
    xs = list(xs)
    if axis == "step":
        return [float(x) for x in xs]
    steps = len(step_requests)
    if axis == "fraction":
        return [float(x) / max(steps, 1) for x in xs]
    table = request_positions(step_requests)
    return [table[min(max(int(x), 0), len(table) - 1)] for x in xs]


def log_points(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """The points a log y axis can show: y > 0 (and finite)."""
    kept = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y) and y > 0]
    return [x for x, _ in kept], [y for _, y in kept]


def session_colours(keys: Iterable[str]) -> dict[str, str]:
    """A colour per session, in the order given (cycling the palette): the same key has the same
    colour in every plot of the screen."""
    return {key: PALETTE[index % len(PALETTE)] for index, key in enumerate(dict.fromkeys(keys))}
