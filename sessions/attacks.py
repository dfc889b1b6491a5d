"""Attack sessions beside the runs they attacked: which attacks a session has (from the catalog, whose rows
of attack sessions name their `parent`) and an attack in one line.
An attack's document (engine/attacks/run.py) holds `attack` {kind, params}, `parent`, `headline`, the
`original`, `unlearned` and `attacked` numbers, `recovery` {points, fraction, gap} and `retrain` (the same
attack on a Retrain of the same deletion set, or null; sessions.verdict.retrain_session finds that Retrain).
Pure Python.
"""
from __future__ import annotations

from sessions.numbers import fmt, shown


def attacks_of(store, session_id: str) -> list[dict]:
    """The attack sessions of `session_id`, oldest first: {id, name, state, kind, params, recovery, points,
    retrain_recovery, verdict} (numbers None until the attack finished)."""
    rows = [row for row in store.list() if row.get("parent") == session_id]
    return [attack_entry(row) for row in sorted(rows, key=lambda r: (r.get("created") or 0, r["id"]))]


def attack_entry(row: dict) -> dict:
    """An attack session's catalog row as `attacks_of` lists it."""
    summary = row.get("summary") if isinstance(row.get("summary"), dict) else {}
    back = summary.get("recovery") if isinstance(summary.get("recovery"), dict) else {}
    theirs = summary.get("retrain") if isinstance(summary.get("retrain"), dict) else {}
    attack = summary.get("attack") if isinstance(summary.get("attack"), dict) else {}
    return {"id": row["id"], "name": row.get("name"), "state": row.get("state"),
            "kind": attack.get("kind") or str(row.get("method") or "").partition(":")[2] or None,
            "params": attack.get("params"), "recovery": back.get("fraction"),
            "points": points_as_shown(summary),
            "retrain_recovery": (theirs.get("recovery") or {}).get("fraction"),
            "verdict": summary.get("verdict"), "headline": summary.get("headline")}


def recorded_attacks(catalog: dict[str, dict], cell: dict) -> dict[str, dict]:
    """The recovery of each attack `study --attacks` made on a study's cell (its record names their sessions):
    {kind: {"recovery", "points", "session"}}, as the command's table reads them, from catalog rows (`catalog`:
    id -> row; the TUI's grid has read them anyway, the report reads them once); an attack gone, unfinished or not on
    the cell's session (a cell run again) is left out."""
    found = {}
    for kind, session in (cell.get("attacks") or {}).items():
        row = catalog.get(session)
        if row is not None and row.get("state") == "finished" and row.get("parent") == cell.get("session"):
            entry = attack_entry(row)
            found[kind] = {"recovery": entry["recovery"], "points": entry["points"], "session": session}
    return found


def percentage_points(recovery: dict, headline) -> float | None:
    """An attack's recovered points in percentage points: as stored, or (a document from before `unit` was
    recorded, whose people-data points were 0-1 fractions) through the headline's unit."""
    points = recovery.get("points")
    if not isinstance(points, (int, float)) or recovery.get("unit") == "points":
        return points
    return shown(headline if isinstance(headline, str) else None, points)


def shown_score(headline: str | None, value) -> float | None:
    """A score as an attack's line shows it (percentage points, one decimal): what its arithmetic is done on, so
    that the reader's subtraction is the line's (76.2 - 26.3 read "50.0" from the raw 76.24999 and 26.25000)."""
    return round(shown(headline, value), 1) if isinstance(value, (int, float)) else None


def shown_points(headline: str | None, unlearned, attacked, original=None, original_attacked=None) -> float | None:
    """The points an attack brought back, from the scores as shown: attacked - unlearned; read against the original's
    score on rephrased inputs (`original_attacked`), the forgotten points that do not hold there:
    (original - unlearned) - (original_attacked - attacked). None when a score it needs is missing."""
    scores = [shown_score(headline, v) for v in (unlearned, attacked, original, original_attacked)]
    u, a, o, oa = scores
    if original_attacked is not None:
        return None if None in scores else round((o - u) - (oa - a), 1)
    return None if None in (u, a) else round(a - u, 1)


def points_as_shown(summary: dict) -> float | None:
    """The points an attack brought back as its verdict shows them (the parent's detail read "-3.7 points" where the
    attack's own line read "54.2 -> 50.4, 3.8 points lower"; a review); a document without its scores: its stored
    points (percentage_points)."""
    headline = summary.get("headline") if isinstance(summary.get("headline"), str) else None
    back = summary.get("recovery") if isinstance(summary.get("recovery"), dict) else {}

    def df(key: str):
        return (summary.get(key) or {}).get("df") if isinstance(summary.get(key), dict) else None

    against = df("original_attacked") if back.get("against") else None
    if back.get("against") and against is None:
        return percentage_points(back, headline)
    points = shown_points(headline, df("unlearned"), df("attacked"), df("original"), against)
    return points if points is not None else percentage_points(back, headline)


def attack_line(entry: dict) -> str:
    """`20261206-080345-bddb quantize (bits 4) finished: recovered 61% of the forgotten gap (39.6 points); Retrain
    under the same attack 55%`."""
    shown = {k: v for k, v in (entry.get("params") or {}).items() if v is not None and k not in ("seed", "paraphrases")}
    options = f" ({', '.join(f'{k} {v}' for k, v in shown.items())})" if shown else ""
    text = f"{entry['id']} {entry.get('kind') or '?'}{options} {entry.get('state')}"
    if entry.get("points") is not None:
        points = f"{fmt(entry['points'], 'points')} points"
        text += (f": {points} back, no forgotten gap to recover" if entry.get("recovery") is None else
                 f": recovered {100 * entry['recovery']:.0f}% of the forgotten gap ({points})")
        if entry.get("retrain_recovery") is not None:
            text += f"; Retrain under the same attack {100 * entry['retrain_recovery']:.0f}%"
    return text


def attacks_brief(entries: list[dict]) -> str | None:
    """Every attack of a session in one line, where room is short (80x24): ``attacks: relearn 61% back,
    quantize no gap (1.2 points), rephrase running``; None without attacks."""
    if not entries:
        return None
    words = []
    for entry in entries:
        kind = entry.get("kind") or "?"
        if entry.get("points") is None:
            words.append(f"{kind} {entry.get('state')}")
        elif entry.get("recovery") is None:
            words.append(f"{kind} no gap ({fmt(entry['points'], 'points')} points)")
        else:
            words.append(f"{kind} {100 * entry['recovery']:.0f}% back")
    return "attacks: " + ", ".join(words)
