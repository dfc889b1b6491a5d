"""`mmul-workbench study`: a grid of runs (methods x seeds, one protocol: the options `run` takes), each
cell an ordinary run saved as its own session, and per method the mean, std and n of every metric, with
the Retrain-relative scores (AUC gap, test gap, forget quality) and a ranking by closeness to Retrain.

Headless, the cells run in this process as `run` would run them. With `--engine` (or `--cluster`) the
study is an engine job (engine/daemon/studies.py): the engine queues, runs and records its cells and this
command is a thin client that sends it and follows it (stopping it leaves the study running). Retrain
runs first for each seed, since the others are scored against it. The study record (sessions/study.py)
is keyed by a digest of the arguments, so the same command again resumes: cells whose session finished
are skipped. Nothing heavy at import; torch loads only when a cell runs here.
"""
from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import typer

from engine import spec as specs
from engine.errors import SpecError
from engine.spec.inputs import absolute_paths
from engine.spec.params import EVAL_EVERY_REQUESTS, EVAL_SAMPLE, TUNE_AGAINST
from engine.spec import PAPER_SEEDS, parse_methods, parse_seeds
from sessions.metric_names import flatten
from sessions.schema import ACTIVE_STATES
from sessions.study import (DEFAULT_TOLERANCE, REFERENCE, StudyError, StudyRecord, aggregate, cell_name, cost_grid,
                            STUDY_GOES_ON, grid, grid_caption, original_stats, study_id, study_ranking,
                            with_attacks)
from sessions.summary import format_deletion
from workbench.cli_options import (ARTIFACTS_HELP, CLUSTER_HELP, COMPILE_HELP, DEVICES_HELP, GRANULARITY_HELP, ORIGINAL_HELP,
                               STRATEGY_HELP, deletion_spec, placement, with_compile)
from workbench.cli_plan import GPU_MEMORY_HELP, announce_plan
from workbench.completion import complete_data, complete_device, complete_method_list, complete_model, complete_task
from workbench.output import Exit, Progress, fail, parser_errors, print_json, unwritable_home
from workbench.param_options import with_param_options
from workbench.study_attacks import attack_columns, parse_attacks, run_study_attacks



def timed_order(chosen: list[str], given: dict) -> list[str]:
    """Under --budget matched-time without --budget-seconds, MultiDelete runs right after Retrain for each seed:
    the other methods read its session's seconds (engine/protocols/budget.py)."""
    if given.get("budget") != "matched-time" or given.get("budget_seconds") is not None:
        return chosen
    if "multidelete" not in chosen:
        raise SpecError("--budget matched-time gives every method MultiDelete's seconds: add multidelete to "
                        "--methods, or give --budget-seconds S")
    rest = [m for m in chosen if m not in (REFERENCE, "multidelete")]
    return [m for m in chosen if m == REFERENCE] + ["multidelete"] + rest


def method_params(method: str, given: dict) -> dict:
    """The given method parameters that `method` takes (the common ones, its own, and --tune's criterion; not
    --epochs for a method with its own step count)."""
    takes = {p.name for p in (*specs.COMMON_PARAMS, *specs.METHODS[method].params)} | {TUNE_AGAINST.name}
    if method == REFERENCE:  # Retrain, the reference, keeps the original's recipe: no budget, no tuning, and no
        # guardrail, which would cut the reference short or keep an earlier step of it; it trains in the recipe's
        # batches, so the unlearning methods' --retain-batch-size is not its
        takes -= {"budget", "budget_seconds", "tune", TUNE_AGAINST.name, "retain_batch_size", *specs.GUARDRAILS}
    if specs.METHODS[method].fixed_steps is not None:  # Descent-to-Delete's T = 1: the study's --epochs is not its
        takes -= {"epochs"}
    return {name: value for name, value in given.items() if name in takes}


def tuning_against_retrain(chosen: list[str], given: dict, tolerance: float) -> dict:
    """With --tune and Retrain among the methods, each method's tuning aims where the study ranks: the grid
    point closest to a validation Retrain's Df/Dr AUC with the validation headline within the study's
    --tolerance of Retrain's (engine/protocols/tune.py; --keep-tolerance, when given, is the tuning's)."""
    if not given.get("tune") or REFERENCE not in chosen:
        return given
    return {**given, TUNE_AGAINST.name: "retrain", "keep_tolerance": given.get("keep_tolerance", tolerance)}


def study(
    methods: str = typer.Option(..., "--methods", autocompletion=complete_method_list,
                                help="comma-separated methods (see `mmul-workbench methods`); "
                                "include retrain for the Retrain-relative scores (it runs first for each seed)"),
    seeds: str = typer.Option(PAPER_SEEDS, "--seeds", help="comma-separated seeds, one run per method and seed "
                              "(default: the paper's 42,87,21)"),
    data: str = typer.Option(..., "--data", help="built-in world or FORMAT:PATH", autocompletion=complete_data),
    model: str = typer.Option(..., "--model", help="the base: registered name, checkpoint directory or hub id; an "
                              "original is trained from it and Retrain trains it on Dr", autocompletion=complete_model),
    original: Optional[str] = typer.Option(None, "--original", help=ORIGINAL_HELP, autocompletion=complete_model),
    task: Optional[str] = typer.Option(None, "--task", help="retrieval or classification, for data serving both",
                                       autocompletion=complete_task),
    delete: Optional[int] = typer.Option(None, "--delete", help="N units to delete (random by each seed); with --delete-ids or --delete-query, the first N they select"),
    delete_ids: Optional[Path] = typer.Option(None, "--delete-ids", help="file with one unit id per line (every seed)"),
    delete_query: Optional[str] = typer.Option(None, "--delete-query", help="delete units whose captions match"),
    granularity: str = typer.Option(specs.GRANULARITY.default, "--granularity", metavar="[unit|fact]",
                                    help=GRANULARITY_HELP),
    requests: Optional[int] = typer.Option(None, "--requests", metavar="K",
                                           help=specs.REQUESTS.help + " (Retrain: one request)"),
    every_requests: Optional[int] = typer.Option(None, "--eval-every-requests", metavar="N",
                                                 help=EVAL_EVERY_REQUESTS.help + " (every method but Retrain)"),
    eval_sample: Optional[int] = typer.Option(None, "--eval-sample", metavar="M", help=EVAL_SAMPLE.help),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N", autocompletion=complete_device),
    tolerance: float = typer.Option(DEFAULT_TOLERANCE, "--tolerance", help="the test gap to Retrain, in points, "
                                    "within which methods are ranked by their Df/Dr AUC gap to Retrain"),
    engine: bool = typer.Option(False, "--engine", help="run the study inside the engine daemon (its cells on its "
                                "queues) and follow it; stopping this command leaves it running"),
    cluster: Optional[str] = typer.Option(None, "--cluster", help=CLUSTER_HELP + "; the cells run side by side"),
    artifacts: Optional[Path] = typer.Option(None, "--cache-dir", "--artifacts", help=ARTIFACTS_HELP),
    devices: int = typer.Option(1, "--devices", metavar="N", help=DEVICES_HELP),
    strategy: Optional[str] = typer.Option(None, "--strategy", metavar="[ddp|fsdp|zero3]", help=STRATEGY_HELP),
    compiled: bool = typer.Option(False, "--compile", help=COMPILE_HELP),
    gpu_memory: Optional[str] = typer.Option(None, "--gpu-memory", help=GPU_MEMORY_HELP),
    attacks: Optional[str] = typer.Option(None, "--attacks", metavar="relearn,quantize,rephrase",
                                          help="attack every finished cell (defaults of `mmul-workbench attack`, or "
                                          "settings after the name: relearn:lr=1e-4:units=8,quantize:bits=8) and "
                                          "add each attack's recovery, mean ± std over the seeds"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document on stdout"),
    params: Optional[dict] = None,
) -> None:
    """Run methods x seeds on one protocol (each run a session; re-running resumes) and report per method
    mean +/- std of every metric, with the AUC gap, test gap and forget quality against Retrain."""
    options = {name: value for name, value in locals().items() if name != "params"}
    settings = parse_attacks(attacks)
    kinds = list(settings)
    try:
        plan = plan_study(options, params or {})
    except SpecError as error:
        fail(str(error))
    announce_plan([spec for _, _, spec in plan.cells], gpu_memory)
    if (note := reference_note(plan)) is not None:
        print(note, file=sys.stderr)
    record = StudyRecord(plan.id, plan.spec)
    try:
        record.load()
        if engine or cluster is not None:  # the study runs inside the engine; this process follows it
            failed = run_in_engine(record, plan.cells)
            with record.running():  # the attacks run here, after the engine has let the study go
                found = attack_cells(record, plan.cells, settings)
        else:
            if not record.path.is_file():  # a new study: bad input leaves no record behind (nor its lock)
                try:
                    check_inputs(plan.cells, here=True)
                except SpecError as error:
                    fail(str(error))
            with record.running():
                record.load().save()  # the spec as given now (its --tolerance, which the TUI's grid ranks by)
                failed = run_cells(record, plan.cells)
                found = attack_cells(record, plan.cells, settings)
    except StudyError as error:
        fail(str(error))
    except typer.Exit as stop:   # Ctrl-C, `engine stop` under --engine, or a cell that found bad input while it
        # ran (every other cell would fail on it alike): the one document as far as it got, as a run prints its own
        if as_json and stop.exit_code and record.path.is_file():
            state = ("running" if isinstance(stop, StoppedFollowing) else   # it goes on in the engine
                     "cancelled" if stop.exit_code == Exit.INTERRUPTED else "failed")
            try:
                print_json({**report(record.load(), plan.cells, tolerance), "state": state})
            except StudyError as error:   # the record cannot be read back: its one line, not a traceback
                fail(str(error), stop.exit_code)
        raise
    document = report(record.load(), plan.cells, tolerance, found, kinds)
    document["state"] = "failed" if failed else "finished"   # as a study ended early says its own (the docs: always)
    if any(settings.values()):  # what the attacks ran with, beside the defaults of the others
        document["attack_settings"] = {kind: given for kind, given in settings.items() if given}
    if as_json:
        print_json(document)
    else:
        print_study(document)
    if failed:
        fail(f"{failed} of {len(plan.cells)} runs of study {plan.id} failed (their sessions are kept); run the same "
             "command again to retry them", Exit.RUN_FAILED)


RECIPE_PARAMS = ("lr", "epochs", "weight_decay", "max_grad_norm")   # what a Retrain given them trains by instead


def reference_note(plan: "StudyPlan") -> str | None:
    """A line when the study's flags change how Retrain, the reference, trains (`--epochs 3` took a tiny Retrain's
    test r_mean from 50.4 to 24.9, and the table still labelled it `ref`)."""
    retrain = next((spec for method, _, spec in plan.cells if method == REFERENCE), None)
    given = [name for name in RECIPE_PARAMS if retrain is not None and name in plan.spec["params"]]
    if not given:
        return None
    flags = ", ".join(f"--{specs.dash(name)} {plan.spec['params'][name]}" for name in given)
    return (f"note: Retrain, the reference, trains with {flags} too, not by the original's recipe: every gap to "
            "Retrain is measured against that model")


@dataclass
class StudyPlan:
    """A study as its arguments define it: its id (the digest of its identity), its spec (what the record
    keeps) and its cells ``(method, seed, validated run spec)``, Retrain first for each seed."""

    id: str
    spec: dict
    cells: list[tuple[str, int, dict]]


def plan_study(options: dict, given: dict) -> StudyPlan:
    """The plan of a `study` command's ``options`` (its keyword arguments) and the method parameters given;
    SpecError (one line) on bad input. Nothing runs and nothing is written."""
    chosen, seed_list = parse_methods(options["methods"]), parse_seeds(options["seeds"])
    tolerance, requests = options["tolerance"], options["requests"]
    if not math.isfinite(tolerance) or tolerance < 0:
        raise SpecError(f"--tolerance must be a number of points >= 0, got {tolerance}")
    # a long sequence's evaluation schedule, as `run` takes it, for every method that runs K requests
    schedule = {name: options.get(option) for name, option in (("eval_every_requests", "every_requests"),
                                                               ("eval_sample", "eval_sample"))
                if options.get(option) is not None}
    if schedule and (requests or 1) <= 1:
        raise SpecError(f"--{specs.dash(next(iter(schedule)))} applies to --requests K > 1; add --requests K, or "
                        "drop it")
    unused = [name for name in given if not any(name in method_params(m, given) for m in chosen)]
    if unused:
        owners = specs.param_owners(unused[0])
        why = (f"; it belongs to {', '.join(owners)}" if owners else
               "; Retrain, the reference, runs the original's recipe whole" if REFERENCE in chosen else "")
        raise SpecError(f"none of the study's methods takes --{specs.dash(unused[0])}{why}")

    chosen = timed_order(chosen, given)
    given = tuning_against_retrain(chosen, given, tolerance)
    cells: list[tuple[str, int, dict]] = []
    for seed in seed_list:
        for method in chosen:
            raw = {"method": method, "model": options["model"], "data": options["data"], "device": options["device"],
                   "seed": seed, "deletion": deletion_spec(options["delete"], options["delete_ids"],
                                                           options["delete_query"], seed,
                                                           options.get("granularity", specs.GRANULARITY.default)),
                   "params": with_compile(method_params(method, given), options["compiled"])}
            if requests is not None:
                raw["requests"] = requests if method in specs.SEQUENTIAL_METHODS else 1
                if method in specs.SEQUENTIAL_METHODS:
                    raw.update(schedule)
            if options["task"] is not None:
                raw["task"] = options["task"]
            if options["original"] is not None:
                raw["original"] = options["original"]
            # where and how the cells run is not part of the study's identity
            raw.update(placement(options["cluster"], options["artifacts"], options["devices"], options["strategy"]))
            cells.append((method, seed, specs.validate(absolute_paths(raw))))

    first = cells[0][2]
    protocol = {"model": first["model"], "data": first["data"], "task": first["task"], "device": first["device"],
                "deletion": {k: v for k, v in first["deletion"].items() if k != "seed"},
                "requests": requests or 1, "params": given,
                **({"schedule": schedule} if schedule else {}),   # absent by default: earlier studies keep their ids
                # the deployed model unlearned (absent without --original, so earlier studies keep their ids)
                **({"original": first["original"]} if first.get("original") else {}),
                # a guarded study's Retrain once took the guardrails and was cut short or kept an earlier step: such
                # a study gets a new id, so its cells run again rather than resume that Retrain. Only a guardrail
                # that acted counts (--keep-tolerance alone, as --tune sets it, changed nothing), so every other
                # study keeps its id
                **({"unguarded_reference": True}
                   if REFERENCE in chosen and (given.get("stop_if") or given.get("keep") == "best") else {})}
    identity = {"protocol": protocol, "methods": sorted(chosen), "seeds": sorted(seed_list)}
    sid = study_id(identity)
    for method, seed, spec in cells:
        spec["name"] = cell_name(sid, method, seed)
    # the --tolerance it ranks by travels with the record (not its id): the TUI's grid ranks as this command does
    return StudyPlan(sid, {**protocol, "methods": chosen, "seeds": seed_list, "tolerance": tolerance}, cells)


def plan_from_args(args: list[str]) -> StudyPlan:
    """The plan of `mmul-workbench study ARGS` without running it (the TUI's New-study form submits it to the
    engine); SpecError (one line) on bad input."""
    app = typer.Typer()
    register(app)
    command = typer.main.get_command(app)
    try:
        with command.make_context("study", list(args)) as context:
            options = dict(context.params)
    except parser_errors.ClickException as error:  # "Invalid value for '--lr': ..." names the option
        raise SpecError(" ".join(error.format_message().split())) from None
    generated = {param.name for param in specs.option_params("run")}
    given = {name: value for name, value in options.items() if name in generated and value is not None}
    return plan_study({name: value for name, value in options.items() if name not in generated}, given)


# --- running the cells ------------------------------------------------------------------------------
def stored_state(session: str | None) -> tuple[str | None, dict | None, bool]:
    """A cell's session as stored: (state, summary, live); (None, None, False) when it is gone, ("damaged", None,
    False) when it cannot be read."""
    from sessions.store import SessionStore, UnknownSession

    if not session:
        return None, None, False
    try:
        meta = SessionStore().get(session)
    except UnknownSession:  # deleted since: the cell runs again, and reads "gone" until it has
        return None, None, False
    except Exception:  # damaged (or unreadable): the cell runs again
        return "damaged", None, False
    summary = meta.get("summary") if isinstance(meta.get("summary"), dict) else None
    return meta.get("state"), summary, bool(meta.get("live"))


def run_cells(record: StudyRecord, cells: list[tuple[str, int, dict]]) -> int:
    """Run, in this process, every cell whose session has not finished (Retrain first per seed); returns how
    many failed."""
    pending, originals = [], {}
    for method, seed, spec in cells:
        cell = record.cell(method, seed) or {}
        state, summary, live = stored_state(cell.get("session"))
        if state == "finished" and summary is not None:
            if cell.get("state") != "finished":
                record.set_cell(method, seed, cell["session"], "finished")
            originals.setdefault(seed, flatten(summary.get("original_metrics") or {}))
            continue
        if state in ACTIVE_STATES and live:  # queued or running in the engine (or another process) now
            fail(f"{method} seed {seed} of {record.id} is still running in session {cell['session']}; "
                 "wait for it, or re-run with --engine to follow it")
        pending.append((method, seed, spec))
    if pending:
        try:
            check_inputs(pending, here=True)
        except SpecError as error:
            fail(str(error))
    print(to_go_line(record.id, len(pending), len(cells)), file=sys.stderr, flush=True)
    if not pending:
        return 0
    failed = 0
    for method, seed, spec in pending:
        ok, result = run_local_cell(record, method, seed, spec, f"{method} s{seed}", originals.get(seed))
        if ok:
            originals.setdefault(seed, flatten(result["original_metrics"]))
        failed += not ok
    return failed


def to_go_line(study_id: str, to_go: int, cells: int, following: str = "") -> str:
    """What a study has left to run, and what it reads back: a re-run printed its table in a second with nothing
    saying that its runs had finished before (a review)."""
    if not to_go:
        return (f"study {study_id}: all {cells} runs finished before: their sessions are read back (delete them, or "
                "change an option, to run them again)")
    before = f" ({cells - to_go} finished before, read back)" if to_go < cells else ""
    return f"study {study_id}: {to_go} of {cells} runs to go{before}{following}"


def check_inputs(cells: list[tuple[str, int, dict]], here: bool) -> None:
    """Bad input ends the study before anything runs: each seed's deletion set, and (``here``: the cells run in
    this process) the devices and the data records; the engine checks those itself. SpecError (one line): the
    command fails with it, the TUI's New-study form shows it."""
    from engine.api import preflight, preview_deletion  # torch-free; preflight may load torch to list devices

    for spec in {cell[1]: cell[2] for cell in cells}.values():
        preview_deletion(spec["data"], spec["deletion"])  # built-in worlds; real data is checked by the run
    if here:
        preflight(cells[0][2], alone=False)  # the same for every cell; MultiDelete's seconds come from its cell


def run_local_cell(record: StudyRecord, method: str, seed: int, spec: dict, label: str,
                   original: dict | None) -> tuple[bool, dict | None]:
    """One cell in this process (as `run`): (finished?, result). A failed run is recorded and the study goes
    on; Ctrl-C or bad input ends the study, also bad input a run finds only while running (an image that does not
    decode: every other cell would fail on it alike)."""
    from workbench.execute import FailedOnInput, run_session

    session: list[str] = []

    def created(session_id: str) -> None:
        session.append(session_id)
        record.set_cell(method, seed, session_id, "running")

    try:
        result = run_session(spec, label=label, original_metrics=original, on_session=created)
    except typer.Exit as stop:
        code = getattr(stop, "exit_code", None)
        if session:  # a failed run is kept as its session; Ctrl-C (exit 130) or bad input ends the study
            record.set_cell(method, seed, session[0], "cancelled" if code == Exit.INTERRUPTED else "failed")
        if code == Exit.RUN_FAILED and not isinstance(stop, FailedOnInput):
            return False, None
        raise
    record.set_cell(method, seed, result["session"], "finished")
    return True, result


class StoppedFollowing(typer.Exit):
    """Ctrl-C (or SIGTERM, SIGHUP) while this process followed a study the engine runs: the study goes on."""


def run_in_engine(record: StudyRecord, cells: list[tuple[str, int, dict]]) -> int:
    """The study as an engine job (engine/daemon/studies.py): sent, or attached to when the engine runs it
    already, and followed to its end, each cell's progress on stderr; returns how many cells failed. The
    engine records the cells; stopping this process leaves the study running there."""
    from workbench.client.follow import submit_study_and_follow

    try:
        check_inputs(cells, here=False)
    except SpecError as error:
        fail(str(error))
    progress: dict[str, Progress] = {}

    def accepted(info: dict) -> None:
        following = "; it runs in the engine already: following it" if info.get("attached") and info["to_go"] else ""
        print(to_go_line(record.id, info["to_go"], len(cells), following), file=sys.stderr, flush=True)

    def on_event(cell: dict, event: dict) -> None:
        label = f"{cell.get('method')} s{cell.get('seed')}"
        bar = progress.get(label)
        if bar is None:
            bar = progress[label] = Progress(label).__enter__()
        if event["kind"] != "end":
            bar.event(event["kind"], event)
            return
        progress.pop(label).__exit__(None, None, None)
        if event["state"] not in ("finished", "cancelled"):
            print(f"error: {label} {event['state']} (session {cell.get('session')} kept; {STUDY_GOES_ON})",
                  file=sys.stderr, flush=True)

    from workbench.execute import StopSignals

    sent = [{"method": method, "seed": seed, "spec": spec} for method, seed, spec in cells]
    try:
        # SIGTERM and SIGHUP stop the following as Ctrl-C does (exit 130, not 143), as `run --engine`
        with engine_errors(), StopSignals():
            info = submit_study_and_follow(record.id, record.spec, sent, on_event, accepted)
    except KeyboardInterrupt:  # the study lives in the engine: only the following stops (it said nothing)
        print(f"error: stopped following; study {record.id} goes on in the engine (the same command follows it "
              "again, `mmul-workbench engine stop` stops it)", file=sys.stderr, flush=True)
        raise StoppedFollowing(int(Exit.INTERRUPTED)) from None
    finally:
        for bar in progress.values():
            bar.__exit__(None, None, None)
    if info["state"] == "cancelled":  # `engine stop` or `cancel`: the study stops, as Ctrl-C stops a headless one
        fail(f"study {record.id} stopped: {info.get('message') or 'cancelled'}; run the same command again to go "
             "on", Exit.INTERRUPTED)
    return info["failed"]


@contextmanager
def engine_errors() -> Iterator[None]:
    """The engine's refusals and failures as one line and an exit code (an exit already decided, by a nested
    `engine_errors` or a `fail`, passes through: typer.Exit is a RuntimeError)."""
    from workbench.client.errors import EngineError, SpecRejected

    try:
        yield
    except typer.Exit:
        raise
    except (SpecError, SpecRejected) as error:
        fail(str(error))
    except EngineError as error:
        if error.code in ("damaged", "error", "busy"):  # busy: the study runs in another process already
            fail(str(error), Exit.RUN_FAILED)
        fail(f"engine unavailable: {error}", Exit.RUN_FAILED)
    except (ConnectionError, OSError, RuntimeError) as error:
        if isinstance(error, OSError) and (unwritable := unwritable_home(error)) is not None:
            fail(unwritable)  # a read-only home is bad input (exit 2), as `engine start` says it
        fail(f"engine unavailable: {error}", Exit.RUN_FAILED)


def attack_cells(record: StudyRecord, cells: list[tuple[str, int, dict]], kinds: dict[str, dict]) -> dict:
    """Run (or read back) the attacks `kinds` ({kind: settings}) on every finished cell, under the study's lock, and
    record each cell's attack sessions (the TUI's grid reads them); {cell session: {kind: {recovery, points,
    session}}}."""
    if not kinds:
        return {}
    found = run_study_attacks(finished_cells(record.load(), cells), kinds)
    record.set_attacks({cell: {kind: entry["session"] for kind, entry in by_kind.items()}
                        for cell, by_kind in found.items()})
    return found


def finished_cells(record: StudyRecord, cells: list[tuple[str, int, dict]]) -> list[tuple[str, int, str]]:
    """(method, seed, session) of every cell whose session finished."""
    out = []
    for method, seed, _ in cells:
        session = (record.cell(method, seed) or {}).get("session")
        if stored_state(session)[0] == "finished":
            out.append((method, seed, session))
    return out


# --- what the study reports -------------------------------------------------------------------------
def report(record: StudyRecord, cells: list[tuple[str, int, dict]], tolerance: float,
           attacked: dict | None = None, kinds: list[str] | None = None) -> dict:
    """The study's document: its cells (each attacked cell with {kind: attack session}), per method
    {metric: {mean, std, n}} (with `attack.<kind>.*` when `attacked` holds the cells' attacks,
    workbench/study_attacks.py), and the ranking against Retrain."""
    runs, listed = [], []
    for method, seed, _ in cells:
        cell = record.cell(method, seed) or {}
        state, summary, _ = stored_state(cell.get("session"))
        if state == "finished" and summary is not None:
            runs.append((method, seed, with_attacks(summary, (attacked or {}).get(cell.get("session")))))
        # a session deleted (or moved aside) since it ran is "gone": its recorded state no longer holds
        attacks = {kind: entry["session"] for kind, entry in (attacked or {}).get(cell.get("session"), {}).items()}
        ran_with = ({"lr": (summary.get("hyperparameters") or {}).get("lr"), "tuned": bool(summary.get("tuned"))}
                    if state == "finished" and summary is not None else {})
        listed.append({"method": method, "seed": seed, "session": cell.get("session"),
                       "state": state or ("gone" if cell.get("session") else cell.get("state") or "missing"),
                       **ran_with, **({"attacks": attacks} if attacks else {})})
    methods = record.spec["methods"]
    ks = None
    if REFERENCE in methods:
        from engine.api import forget_quality as ks  # torch-free; scipy loads on first use
    stats = aggregate(runs, ks, order=methods)
    document = {"study": record.id, "spec": record.spec, "cells": listed, "methods": stats,
                **({"attacks": kinds} if kinds else {})}
    if REFERENCE in methods:
        task = specs.TASKS.get(record.spec["task"])
        if original := original_stats(runs):
            document["original"] = original
        document["ranking"] = study_ranking(stats, tolerance, task.columns if task else (), original)
    return document


def deletion_words(deletion: dict) -> str:
    """``10 random units (drawn by each seed)`` (facts at fact granularity), or the fixed set as `sessions list` shows it."""
    if deletion.get("strategy") == "random":
        n, fact = deletion.get("n"), deletion.get("granularity") == "fact"
        return f"{n} random {('fact' if fact else 'unit') + ('' if n == 1 else 's')} (drawn by each seed)"
    return format_deletion(deletion)


def print_study(document: dict) -> None:
    """Rows = methods (Retrain, then the ranking); the task's headline columns as mean ± std, n, and the
    Retrain-relative scores (sessions.study.grid, in the one number format)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=study_title(document))
    headers, rows = grid(document, study_columns(document), method_titles(), cost=False)
    for header in headers:
        table.add_column(header, justify="left" if header == "method" else "right", no_wrap=header == "method")
    for row in rows:
        table.add_row(*row)
    table.caption = grid_caption(document)
    console = Console(width=None if sys.stdout.isatty() else 240)
    console.print(table)
    headers, rows = cost_grid(document, method_titles())
    if rows:  # what each method cost, mean ± std over its seeds (engine/cost.py)
        cost = Table(title="cost per method (mean ± std over the seeds; train time excludes evaluation)")
        for header in headers:
            cost.add_column(header, justify="left" if header == "method" else "right")
        for row in rows:
            cost.add_row(*row)
        console.print(cost)
    for line in learning_rates(document):
        console.print(line, highlight=False)


def learning_rates(document: dict) -> list[str]:
    """What each method's cells ran at, one line per method: ``FT lr 5.6e-05 (s42), 1.7e-04 (s87), tuned on
    validation``: a tuned study's choices were in each session's log only."""
    titles, lines = method_titles(), []
    for method in document["spec"]["methods"]:
        cells = [c for c in document["cells"] if c["method"] == method and c.get("lr") is not None]
        if method == REFERENCE or not cells:
            continue
        tuned = ", tuned on validation" if all(c.get("tuned") for c in cells) else ""
        lines.append(f"{titles.get(method, method)} lr " + ", ".join(f"{c['lr']:.1e} (s{c['seed']})" for c in cells)
                     + tuned)
    return (["learning rates per cell (Retrain keeps the original's recipe):"] + ["  " + line for line in lines]
            if lines else [])


def study_title(document: dict) -> str:
    """What ran: the model, data, deletion, seeds, and how the methods were given their steps and lr."""
    spec = document["spec"]
    requests = spec.get("requests") or 1
    params = spec.get("params") or {}
    budget = params.get("budget")
    how = ([f"budget {budget}"] if budget and budget != "default" else []) + (
        ["lr tuned on validation" + (" (closest to a validation Retrain)" if params.get("tune_against") == "retrain"
                                     else "")] if params.get("tune") else [])
    return (f"study {document['study']}: {spec['model']} on {spec['data']}, deleting "
            f"{deletion_words(spec['deletion'])}" + (f" in {requests} requests" if requests > 1 else "")
            + f", seeds {', '.join(map(str, spec['seeds']))}" + "".join(f"; {words}" for words in how))


def study_columns(document: dict) -> list[tuple[str, str]]:
    """The study table's columns, (header, metric): the task's headlines, then its attacks' recovery."""
    return (headline_columns(document["spec"]["task"], document["methods"])
            + attack_columns(document.get("attacks") or []))


def headline_columns(task: str, stats: dict) -> list[tuple[str, str]]:
    """The task's headline columns as (header, metric), the holdout sets' where the study's runs have them
    (`stats`: per method {metric: ...})."""
    return [(c.header, c.metric) for c in specs.shown_columns(task, stats.values())]


def method_titles() -> dict[str, str]:
    return {name: info.title for name, info in specs.METHODS.items()}


def register(app: typer.Typer) -> None:
    app.command("study")(with_param_options("run")(study))
