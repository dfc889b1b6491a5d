"""`mmul-workbench attack relearn|quantize|rephrase SESSION`: try to bring a finished session's forgotten data
back (engine/attacks/), as a new session linked to it (`parent`), and report how much of the forgotten gap
returns, next to the same attack on a Retrain of the same deletion set when the home holds one.

Runs in this process, like `run` without `--engine`. Bad input (an unknown, unfinished, damaged or
unattackable session, a bad option) is one line and exit 2, before any session exists. Nothing heavy at
import: torch loads only when the attack runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from engine import spec as specs
from engine.errors import SpecError
from sessions.catalog import session_label
from sessions.errors import SessionDamaged, UnknownSession
from sessions.schema import SchemaMismatch
from sessions.study import without_study_id
from workbench.completion import complete_session
from workbench.output import fail, print_json

SESSION_HELP = "the finished run to attack: session id, name, or a unique prefix of either"
SEED_HELP = "seed of the attack's draws and evaluations (default: the session's seed)"
JSON_HELP = "print the attack's document (one JSON object) on stdout"

attack_app = typer.Typer(name="attack", no_args_is_help=True, add_completion=False,
                         help="Probe whether forgotten data comes back: relearn, quantize, rephrase a finished session.")


def attack_session(kind: str, session: str, options: dict, as_json: bool) -> dict:
    """Check, run and store attack `kind` on `session`, held against a finished Retrain of the same deletion set
    when the home has one; prints its verdict (or document) and returns it."""
    from sessions.store import SessionStore
    from sessions.verdict import retrain_session

    store = SessionStore()
    try:
        meta = store.get(store.resolve(session))
    except (UnknownSession, SessionDamaged, SchemaMismatch) as error:
        fail(str(error))
    spec = checked_spec(kind, meta, options)
    retrain = retrain_session(store, meta["spec"], meta["id"])
    result = run_attack_session(spec, meta, retrain, as_json)
    if as_json:
        print_json(result)
    else:
        print(f"session {result['session']} ({kind} attack on {meta['id']})")
        print(result["verdict"])
        if meta["spec"].get("kind") == "pulse":  # pulse offers no Retrain: no baseline to look for
            print("no Retrain baseline: pulse runs have none (pulse --method offers no retrain)")
        elif retrain is None and meta["spec"].get("method") != "retrain":
            print("no finished Retrain of this deletion set in the home: `run --method retrain` with the same "
                  "--model, --data, --delete and --seed gives the baseline")
    return result


def checked_spec(kind: str, meta: dict, options: dict) -> dict:
    """The attack's spec on the session whose meta is `meta`, or one line and exit 2."""
    from engine.api import attack_spec

    try:
        spec = attack_spec(kind, meta, options)
    except SpecError as error:
        fail(str(error))
    data = spec.get("data")
    info = specs.data_info(data) if isinstance(data, str) and ":" in data else None
    if info is not None and (problem := info.path_problem(data.partition(":")[2])) is not None:
        # the run's data moved or went since: refused before an attack session exists (one was left failed)
        fail(f"session {meta['id']}'s data {problem}")
    # a study cell's name loses its study id: `quantize on npo s42 e1ed` fits the home's name column, and the
    # parent (with its study) is linked in the attack's document
    parent = session_label(meta["id"], without_study_id(meta.get("name")), str(meta["spec"].get("method")))
    spec["name"] = f"{kind} on {parent}"
    return spec


def run_attack_session(spec: dict, meta: dict, retrain: dict | None, as_json: bool = False) -> dict:
    """Run a checked attack spec in this process as a new session (the exits of `run`, and under --json its
    {session, state, error} when it fails); its document."""
    from engine.api import run_attack
    from workbench.execute import run_in_session

    kind = spec["attack"]["kind"]
    # labelled by its name (`quantize on npo s42 e1ed`): a study's attacks printed "quantize attack: prepare" for
    # every cell, none saying which
    return run_in_session(spec, spec.get("name") or f"{kind} attack", lambda emitter: run_attack(spec, meta, retrain, emitter.emit,
                                                                              lambda: False), as_json=as_json)


@attack_app.command("relearn")
def relearn(
    session: str = typer.Argument(..., help=SESSION_HELP, autocompletion=complete_session),
    steps: int = typer.Option(10, "--steps", help="fine-tuning steps on the attack's set"),
    on: str = typer.Option("df-sample", "--on", metavar="[df-sample|neighbours]",
                           help="df-sample: a seeded sample of Df; neighbours: the retain units nearest to Df"),
    units: Optional[int] = typer.Option(None, "--units", help="units to fine-tune on (default: a quarter of Df, "
                                        "at least 1)"),
    lr: Optional[float] = typer.Option(None, "--lr", help="learning rate (default: the original's training rate)"),
    batch_size: int = typer.Option(8, "--batch-size", help="texts per step"),
    seed: Optional[int] = typer.Option(None, "--seed", help=SEED_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Fine-tune the unlearned model briefly on part of Df (or related retain data) with the task's training
    loss, and report how much of the forgotten gap returns."""
    attack_session("relearn", session, {"steps": steps, "on": on, "units": units, "lr": lr,
                                        "batch_size": batch_size, "seed": seed}, as_json)


@attack_app.command("quantize")
def quantize(
    session: str = typer.Argument(..., help=SESSION_HELP, autocompletion=complete_session),
    bits: int = typer.Option(4, "--bits", metavar="[8|4]", help="bits per weight (every Linear weight, per "
                             "output channel, round to nearest); 4, where the literature finds recovery, by default"),
    seed: Optional[int] = typer.Option(None, "--seed", help=SEED_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Quantise the unlearned weights to 8 or 4 bits (torch's own quantisation) and report how much of the
    forgotten gap returns."""
    attack_session("quantize", session, {"bits": bits, "seed": seed}, as_json)


@attack_app.command("rephrase")
def rephrase(
    session: str = typer.Argument(..., help=SESSION_HELP, autocompletion=complete_session),
    paraphrases: Optional[Path] = typer.Option(None, "--paraphrases", help="a file of original<TAB>paraphrase "
                                               "lines (default: the built-in worlds' paraphrase set)"),
    seed: Optional[int] = typer.Option(None, "--seed", help=SEED_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Score the unlearned model on Df with its texts paraphrased and its images cropped, flipped and
    colour-jittered, and report how much of the forgotten gap returns."""
    attack_session("rephrase", session, {"paraphrases": paraphrases, "seed": seed}, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(attack_app, name="attack")
