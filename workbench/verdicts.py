"""The verdict a command prints under its table (sessions.verdict's words), and adds to its `--json` document."""
from __future__ import annotations

import typer

from sessions.verdict import left_out_words, thinned


def verdict_of(spec: dict, result: dict) -> str:
    """The run's verdict (sessions.verdict), held against a Retrain of the same deletion set in this home."""
    from sessions.store import SessionStore
    from sessions.verdict import retrain_reference, verdict_text

    try:
        retrain = retrain_reference(SessionStore(), spec, result.get("session"))
    except Exception:  # a catalog that cannot be read: the verdict without Retrain
        retrain = None
    return verdict_text(result, retrain)


def print_verdict(verdict: str) -> None:
    """The verdict under the table, one line (one per request, a long sequence's thinned: sessions.verdict)."""
    lines, left_out = thinned(verdict.splitlines())
    for line in lines:
        typer.echo(f"verdict: {line}")
    if left_out:
        typer.echo(f"({left_out_words(left_out)}; `--json` has every line)")
