"""`mmul-workbench resume SESSION`: go on with a run of K requests that stopped (cancelled, interrupted by a lost
engine, failed) from its last resume point, in a new session that begins with the old one's events up to that
point (engine/protocols/resume.py, sessions/resuming.py). The old session stays as it was."""
from __future__ import annotations

import sys

import typer

from engine import spec as specs
from engine.errors import SpecError
from workbench.completion import complete_session
from sessions.recovery import NotResumable, resume_spec
from sessions.resuming import resumed_words
from workbench.output import fail


def resume(
    session: str = typer.Argument(..., help="the stopped run: its id, name, or a unique prefix of either",
                                  autocompletion=complete_session),
    engine: bool = typer.Option(False, "--engine", help="submit to the engine daemon and follow it"),
    detach: bool = typer.Option(False, "--detach", help="with --engine: print the new session's id and return"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document on stdout"),
) -> None:
    """Go on with a stopped run of K requests after its last resume point, as if it had never stopped."""
    if detach and not engine:
        fail("--detach needs --engine (a detached run lives in the engine daemon)")
    spec = resumed_spec(session)
    from workbench.cli_run import follow_engine, print_result
    from workbench.execute import preflighted

    if engine:  # said once the engine accepts it: a refusal (no resume point) came after it, in two lines
        return follow_engine(spec, detach, as_json, accepted_line="resume: in the engine; its session begins with "
                             "the stopped run's events (shown first, as they were) and goes on after its last resume "
                             "point")
    from workbench.execute import run_session

    preflighted(spec)
    print(f"resume: {resumed_words(spec)} of {spec['requests']}: the run is set up again as it was (a cached "
          "original loads; one gone from the cache trains again first), then goes on", file=sys.stderr, flush=True)
    result = run_session(spec, label=f"resume {spec['method']}", as_json=as_json, checked=True)
    print_result(spec, result, as_json)


def resumed_spec(session: str) -> dict:
    """The stopped session's spec with `resumes` naming it, validated; one line and exit 2 when it cannot
    resume (unknown, still running, finished, a single request, a study)."""
    from sessions.store import SessionStore, UnknownSession

    store = SessionStore()
    try:
        spec = resume_spec(store, store.resolve(session))
    except UnknownSession as error:
        fail(error.message)
    except NotResumable as error:
        fail(str(error))
    try:
        return specs.validate_pulse(spec) if spec.get("kind") == "pulse" else specs.validate(spec)
    except SpecError as error:
        fail(str(error))


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)
