"""The history of a run of K sequential requests: how every earlier request's forgetting holds up.

After each request i the engine re-scores every request j's own forget set (the task's Df headline on
request j's units alone: `df.r_mean` recall for retrieval, `df.accuracy` for classification, the four-option
accuracy of the request's people for PULSE). `matrix[i-1][j-1]` is that score after request i for j <= i;
entries above the diagonal are None (request j has not been asked yet). `before[j-1]` is request j's
score on the original model. The summary metrics follow ICU-Bench's (arXiv 2605.05938) names:
historical-forgetting preservation, rebound, stability and the area under the retain curve. No released
ICU-Bench code was read; the definitions below are ours, written so each is checkable by hand:

- forgetting of request j at its own request:  f_j = before_j - H[j][j]
- preservation = mean over past requests j < K with f_j > SAME_SCORE (sessions/numbers.py) of
  (before_j - H[K][j]) / f_j: the share of each past request's forgetting that remains after the last request
  (1 = all of it, 0 = back to the original, above 1 = later requests forgot it further). None when no past
  request forgot anything (K = 1 included). A request whose score did not move can read f_j = 2.5e-7 (a float32
  mean of recalls that round differently), and its share would be about 1e8: that is not forgetting.
- rebound = max over j < i of (H[i][j] - H[j][j]), at least 0: the largest rise, in the headline's points, of
  a past request's Df performance above what its own request left; `rebound_at` = (j, i) of that rise.
- stability = the population standard deviation of the utility curve u_1..u_K (the Dr headline after each
  request: `dr.r_mean`, `dr.accuracy`, PULSE's retain accuracy), in the headline's points; 0 = flat.
- retain_area = the trapezoidal area under u_0..u_K (u_0: the original's), over request index, divided by K:
  a mean utility over the sequence in the headline's units (the original's value when nothing decays).
Pure Python (no numpy): the monitor and `replay` draw the same matrix.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

from sessions.numbers import SAME_SCORE

Matrix = list[list[float | None]]


def history_matrix(rows: Sequence[Sequence[float | None]]) -> Matrix:
    """K x K lower-triangular matrix from K rows, row i holding request 1..i's scores (None above)."""
    k = len(rows)
    return [[(row[j] if j < len(row) else None) if j <= i else None for j in range(k)] for i, row in enumerate(rows)]


def preservation(before: Sequence[float], matrix: Matrix) -> float | None:
    k = len(matrix)
    shares = []
    for j in range(k - 1):
        own, last = matrix[j][j], matrix[k - 1][j]
        if own is None or last is None or before[j] is None:
            continue
        forgotten = before[j] - own
        if forgotten > SAME_SCORE:
            shares.append((before[j] - last) / forgotten)
    return sum(shares) / len(shares) if shares else None


def rebound(matrix: Matrix) -> tuple[float | None, tuple[int, int] | None]:
    """(largest rise, (request j, after request i)), both 1-based; (None, None) with fewer than two requests."""
    if len(matrix) < 2:
        return None, None
    best, where = 0.0, None
    for i in range(1, len(matrix)):
        for j in range(i):
            own, now = matrix[j][j], matrix[i][j]
            if own is not None and now is not None and now - own > best:
                best, where = now - own, (j + 1, i + 1)
    return best, where


def stability(utility: Sequence[float]) -> float | None:
    if not utility:
        return None
    mean = sum(utility) / len(utility)
    return math.sqrt(sum((u - mean) ** 2 for u in utility) / len(utility))


def retain_area(original: float | None, utility: Sequence[float]) -> float | None:
    if original is None or not utility:
        return None
    curve = [original, *utility]
    return sum((a + b) / 2 for a, b in zip(curve, curve[1:])) / len(utility)


def history_summary(before: Sequence[float], matrix: Matrix, original_utility: float | None,
                    utility: Sequence[float]) -> dict:
    rise, where = rebound(matrix)
    return {"preservation": preservation(before, matrix), "rebound": rise,
            "rebound_at": list(where) if where else None, "stability": stability(utility),
            "retain_area": retain_area(original_utility, utility)}


def history_from_events(events: Iterable[dict]) -> tuple[list[float | None], Matrix]:
    """(before, matrix) from a session's `eval` events of split "history" (request 0: the original; request i:
    the row after request i, metrics `r1`..`ri`): what the monitor and `replay --headless` draw."""
    before: list[float | None] = []
    rows: dict[int, list[float | None]] = {}
    for event in events:
        if event.get("kind") != "eval" or event.get("split") != "history" or event.get("request") is None:
            continue
        metrics = event.get("metrics") or {}
        values = [metrics.get(f"r{j}") for j in range(1, len(metrics) + 1)]
        if event["request"] == 0:
            before = values
        else:
            rows[int(event["request"])] = values[: int(event["request"])]
    if not rows:
        return before, []
    return before, history_matrix([rows.get(i, []) for i in range(1, max(rows) + 1)])


def history_metric(events: Iterable[dict]) -> str:
    """The metric a session's history rows score (`df.r_mean`, `forget`, ...), as its `eval` events of split
    "history" name it; "" for a session written before they did."""
    return next((event.get("metric") or "" for event in events
                 if event.get("kind") == "eval" and event.get("split") == "history"), "")


def binned(before: Sequence[float | None], matrix: Matrix, cells: int
           ) -> tuple[list[str], list[float | None], Matrix]:
    """The matrix in at most `cells` x `cells` blocks of consecutive requests (each the mean of its known
    entries), with the blocks' labels ("r3", "r1-4"): how a 100-request history fits a terminal."""
    k = len(matrix)
    size = max(1, math.ceil(k / max(1, cells)))
    groups = [list(range(start, min(start + size, k))) for start in range(0, k, size)]

    def mean(values: Iterable[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return sum(known) / len(known) if known else None

    labels = [f"r{g[0] + 1}" if len(g) == 1 else f"r{g[0] + 1}-{g[-1] + 1}" for g in groups]
    blocks = [[mean(matrix[i][j] for i in rows for j in cols) if cols[0] <= rows[-1] else None for cols in groups]
              for rows in groups]
    return labels, [mean(before[j] for j in cols if j < len(before)) for cols in groups], blocks


def heat_colour(value: float | None, low: float, high: float) -> str:
    """A hex colour from blue (low: forgotten) through yellow to red (high: still known) for `value`
    within [low, high]; grey for None."""
    if value is None:
        return "#444444"
    t = 0.5 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
    stops = ((0.0, (49, 54, 149)), (0.5, (254, 224, 144)), (1.0, (165, 0, 38)))
    for (t0, c0), (t1, c1) in zip(stops, stops[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            return "#" + "".join(f"{round(a + (b - a) * f):02x}" for a, b in zip(c0, c1))
    return "#a50026"


def value_range(before: Sequence[float | None], matrix: Matrix) -> tuple[float, float]:
    values = [v for v in [*before, *(v for row in matrix for v in row)] if v is not None]
    return (min(values), max(values)) if values else (0.0, 1.0)


def summary_words(document: dict, fmt) -> str:
    """`preservation 0.83, rebound 4.2 (r3 at r7), stability 1.3, retain area 61.0`: the summary in one line,
    the points through `fmt(value, metric)` (sessions.numbers), preservation as a share."""
    summary, metric = document.get("summary") or {}, document.get("metric", "")
    words = [f"preservation {'-' if summary.get('preservation') is None else format(summary['preservation'], '.2f')}"]
    where = summary.get("rebound_at")
    words.append(f"rebound {fmt(summary.get('rebound'), metric)}" + (f" (r{where[0]} at r{where[1]})" if where else ""))
    words.append(f"stability {fmt(summary.get('stability'), metric)}")
    words.append(f"retain area {fmt(summary.get('retain_area'), document.get('utility_metric', ''))}")
    return ", ".join(words)
