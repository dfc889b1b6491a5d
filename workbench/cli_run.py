"""`mmul-workbench run` and `demo`: unlearn a deletion set with one method (or every method, for the
demo) and print the paper's comparison table.

`run`'s method-hyperparameter flags are generated from the catalogue (workbench.param_options);
`register(app)` adds both commands. Nothing heavy at import: the job code loads inside the commands.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from engine import spec as specs
from engine.errors import SpecError
from engine.spec.inputs import absolute_paths
from engine.spec.params import EVAL_EVERY_REQUESTS, EVAL_SAMPLE
from sessions.metric_names import flatten
from sessions.numbers import fmt
from sessions.verdict import deletion_nouns
from workbench.completion import complete_data, complete_device, complete_method, complete_model, complete_task
from workbench.execute import StopSignals, preflighted, run_session
from workbench.output import Exit, Progress, fail, print_json, unwritable_home
from workbench.verdicts import print_verdict, verdict_of
from workbench.cli_plan import GPU_MEMORY_HELP, announce_plan
from workbench.cli_options import (ARTIFACTS_HELP, CLUSTER_HELP, COMPILE_HELP, DEVICES_HELP, GRANULARITY_HELP,
                                   ORIGINAL_HELP, RESUME_EVERY_HELP, STRATEGY_HELP, deletion_spec, placement,
                                   resume_every_value, with_compile)
from workbench.param_options import with_param_options


def run(
    method: str = typer.Option(..., "--method", help="see `mmul-workbench methods`", autocompletion=complete_method),
    data: str = typer.Option(..., "--data", help="built-in world or FORMAT:PATH", autocompletion=complete_data),
    model: str = typer.Option(..., "--model", help="the base: registered name, checkpoint directory or hub id; an "
                              "original is trained from it and Retrain trains it on Dr", autocompletion=complete_model),
    original: Optional[str] = typer.Option(None, "--original", help=ORIGINAL_HELP, autocompletion=complete_model),
    task: Optional[str] = typer.Option(None, "--task", help="retrieval or classification, for data serving both "
                                       "(graph, graph-text:FILE); default: the data's own (`data list`)",
                                       autocompletion=complete_task),
    delete: Optional[int] = typer.Option(None, "--delete", help="N units to delete (random by --seed); with --delete-ids or --delete-query, the first N they select"),
    delete_ids: Optional[Path] = typer.Option(None, "--delete-ids", help="file with one unit id per line"),
    delete_query: Optional[str] = typer.Option(None, "--delete-query", help="delete units whose captions match"),
    granularity: str = typer.Option(specs.GRANULARITY.default, "--granularity", metavar="[unit|fact]",
                                    help=GRANULARITY_HELP),
    requests: Optional[int] = typer.Option(None, "--requests", metavar="K", help=specs.REQUESTS.help),
    every_requests: Optional[int] = typer.Option(None, "--eval-every-requests", metavar="N", help=EVAL_EVERY_REQUESTS.help),
    eval_sample: Optional[int] = typer.Option(None, "--eval-sample", metavar="M", help=EVAL_SAMPLE.help),
    resume_every: Optional[str] = typer.Option(None, "--resume-every", metavar="MINUTES|off", help=RESUME_EVERY_HELP),
    seed: int = typer.Option(specs.DEFAULT_SEED, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N", autocompletion=complete_device),
    name: Optional[str] = typer.Option(None, "--name", help="a name for the session"),
    engine: bool = typer.Option(False, "--engine", help="submit to the engine daemon and follow it"),
    cluster: Optional[str] = typer.Option(None, "--cluster", help=CLUSTER_HELP),
    artifacts: Optional[Path] = typer.Option(None, "--cache-dir", "--artifacts", help=ARTIFACTS_HELP),
    devices: int = typer.Option(1, "--devices", metavar="N", help=DEVICES_HELP),
    strategy: Optional[str] = typer.Option(None, "--strategy", metavar="[ddp|fsdp|zero3]", help=STRATEGY_HELP),
    compiled: bool = typer.Option(False, "--compile", help=COMPILE_HELP),
    gpu_memory: Optional[str] = typer.Option(None, "--gpu-memory", help=GPU_MEMORY_HELP),
    detach: bool = typer.Option(False, "--detach", help="with --engine: print the session id and return"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document on stdout"),
    params: Optional[dict] = None,
) -> None:
    """Unlearn a deletion set with one method and report Df/Dr AUC, test recall, MIA and time."""
    if data in specs.PEOPLE_WORLDS:  # a PULSE run of one request: --delete N people (or facts)
        from workbench.cli_pulse import run_people

        ignored = [flag for flag, given in (("--devices", devices != 1), ("--strategy", strategy),
                                            ("--compile", compiled)) if given]
        if ignored:  # they were dropped without a word
            fail(f"people data runs as `mmul-workbench pulse` does, which takes no {', '.join(ignored)}; drop "
                 + ("them" if len(ignored) > 1 else "it"))
        return run_people(method=method, model=model, data=data, delete=delete, other=delete_ids or delete_query,
                          granularity=granularity, requests=requests, seed=seed, device=device, name=name,
                          params=params or {}, through_engine=engine or cluster is not None, as_json=as_json,
                          resume_every=resume_every, gpu_memory=gpu_memory, original=original,
                          artifacts=str(artifacts.expanduser().resolve()) if artifacts else None)
    try:
        deletion = deletion_spec(delete, delete_ids, delete_query, seed, granularity)
        resume_points = resume_every_value(resume_every)
    except SpecError as error:
        fail(str(error))
    raw = {"method": method, "model": model, "data": data, "device": device, "seed": seed, "name": name,
           "deletion": deletion, "params": with_compile(params or {}, compiled), **resume_points}
    if requests is not None:
        raw["requests"] = requests
    raw.update({key: value for key, value in (("eval_every_requests", every_requests), ("eval_sample", eval_sample))
                if value is not None})
    if task is not None:
        raw["task"] = task
    if original is not None:
        raw["original"] = original
    raw.update(placement(cluster, artifacts, devices, strategy))
    engine = engine or cluster is not None  # a cluster's runs go through the engine, which writes their sessions
    try:
        spec = specs.validate(absolute_paths(raw))  # the engine's directory is $MMUL_HOME, not the caller's
    except SpecError as error:
        fail(str(error))
    if detach and not engine:
        fail("--detach needs --engine (a detached run lives in the engine daemon)")
    if engine:
        announce_plan([spec], gpu_memory)
        return follow_engine(spec, detach, as_json)
    preflighted(spec)  # bad input is the only line: the plan's is for a run that goes ahead
    announce_plan([spec], gpu_memory)
    result = run_session(spec, label=method, as_json=as_json, checked=True)
    print_result(spec, result, as_json)


def print_result(spec: dict, result: dict, as_json: bool) -> None:
    """A finished run's table, verdict, budget and cost (or its JSON document with the verdict); a PULSE run's
    as `pulse` prints it."""
    if spec.get("kind") == "pulse":
        from workbench.cli_pulse import print_pulse

        return print_pulse(spec, result, as_json)
    verdict = verdict_of(spec, result)
    if as_json:
        return print_json({**result, "verdict": verdict})
    print_table([result], original=result.get("original_metrics"))
    print_verdict(verdict)
    print_budget(result)
    print_cost(result)


def follow_engine(spec: dict, detach: bool, as_json: bool, accepted_line: str | None = None) -> None:
    """Submit `spec` to the engine and follow it; `accepted_line` is said on stderr once the engine has accepted
    the run (a refusal is then the only line)."""
    from sessions.store import SessionDamaged, SessionStore, UnknownSession
    from workbench.client.errors import EngineError, SpecRejected
    from workbench.client.follow import submit_and_follow

    progress = Progress(spec["method"], quiet=detach, requests=spec.get("requests") or 1)
    submitted: list[str] = []
    said_at_end: list[str | None] = []   # the engine's word on how it ended (a full disk kept it out of the session)

    def ended_without_result(state: str, message: str | None) -> None:
        """The document a run prints when it ends without a result, once the engine has its session."""
        if as_json and submitted:
            print_json({"session": submitted[0], "state": state, "error": message})

    def on_submitted(session: str) -> None:
        submitted.append(session)
        if accepted_line:
            print(accepted_line, file=sys.stderr, flush=True)

    with progress, StopSignals():  # SIGTERM and SIGHUP stop the following as Ctrl-C does (exit 130, not 143)
        try:
            session_id, final = submit_and_follow(spec, lambda event: progress.event(event["kind"], event),
                                                  detach=detach, on_submitted=on_submitted,
                                                  on_end=lambda state, message: said_at_end.append(message))
        except (SpecError, SpecRejected) as error:
            fail(str(error))
        except KeyboardInterrupt:  # the run lives in the engine: only the following stops
            if not submitted:
                fail("interrupted before the engine answered; `mmul-workbench engine status` says whether it queued "
                     "the run", Exit.INTERRUPTED)
            ended_without_result(session_state_now(submitted), "no longer followed: the run goes on in the engine")
            fail(f"stopped following; session {submitted[0]} goes on in the engine (`mmul-workbench replay "
                 f"{submitted[0]}` follows it, `mmul-workbench engine cancel {submitted[0]}` stops it)", Exit.INTERRUPTED)
        except UnknownSession as error:  # its folder deleted while it ran: it was a traceback
            fail(f"session {submitted[0] if submitted else '?'} is gone from the store while it ran ({error}); the "
                 "engine has ended it", Exit.RUN_FAILED)
        except EngineError as error:
            ended_without_result(session_state_now(submitted), str(error))
            if error.code in ("damaged", "error"):  # the run's own session could not be read back
                fail(str(error), Exit.RUN_FAILED)
            fail(f"engine unavailable: {error}", Exit.RUN_FAILED)
        except (ConnectionError, OSError, RuntimeError) as error:
            if isinstance(error, OSError) and (unwritable := unwritable_home(error)) is not None:
                fail(unwritable)  # a read-only home is bad input, as `engine start` and a headless run say it
            ended_without_result(session_state_now(submitted), str(error))
            fail(f"engine unavailable: {error}", Exit.RUN_FAILED)
    if detach:
        return print_json({"session": session_id}) if as_json else print(session_id)
    try:
        record = SessionStore().get(session_id)
    except (SessionDamaged, UnknownSession) as error:
        fail(str(error), Exit.RUN_FAILED)
    if final != "finished":
        why = record.get("message") or next((m for m in said_at_end if m), None)
        if as_json:  # the document a headless run prints when it ends so (workbench/execute.py)
            print_json({"session": session_id, "state": final, "error": why})
        if final == "failed" and why:  # as a headless run says it (a full disk: the same line)
            fail(f"{why} (session {session_id} kept)", Exit.RUN_FAILED)
        # a run the engine cancelled (`engine cancel`, `engine stop`) exits as a cancelled headless run does
        fail(f"run {final}: {why or 'see `mmul-workbench sessions show ' + session_id + '`'}",
             Exit.INTERRUPTED if final == "cancelled" else Exit.RUN_FAILED)
    result = record.get("summary") or {}
    print_result(spec, result, as_json)


def session_state_now(submitted: list[str]) -> str:
    """The state the store holds for the session the engine accepted (a lost engine leaves it running until the
    next `engine start` marks it interrupted), or "unknown"."""
    from workbench.cli_study import stored_state   # a study cell's reading of its session

    return (stored_state(submitted[0])[0] if submitted else None) or "unknown"


def print_budget(result: dict) -> None:
    """What --tune chose (on validation data) and what --budget matched-time gave, when they applied."""
    tuned, timed = result.get("tuned"), result.get("time_budget")
    if tuned:
        typer.echo(f"tuned on a validation deletion set and the validation split: lr {tuned['lr']:.3g}, epochs "
                   f"{tuned['epochs']} (of {len(tuned['grid'])} grid points; {tuned['criterion']})")
    if timed:
        typer.echo(f"time budget: {', '.join(f'{s:.2f}' for s in timed['seconds'])} s per request ({timed['source']})")


def print_cost(result: dict) -> None:
    """The run's cost in one line: where its seconds went, its throughput, peak memory and device."""
    cost = result.get("cost")
    if not cost:
        return
    original = fmt(cost["original_seconds"], "seconds") if cost["original_seconds"] else "0 (cached or given)"
    typer.echo(f"cost: original training {original}, unlearning {fmt(cost['unlearning_seconds'], 'seconds')}, "
               f"evaluation {fmt(cost['evaluation_seconds'], 'seconds')}, wall {fmt(cost['wall_seconds'], 'seconds')}; "
               f"{cost['steps']} step{'' if cost['steps'] == 1 else 's'}, {cost['examples_per_second']:.4g} examples/s; "
               f"peak {fmt(cost['peak_memory_mb'], 'peak_memory_mb')} ({cost['memory']}) on {cost['device_count']} x "
               f"{cost['device']}, {cost['torch_threads']} torch thread{'' if cost['torch_threads'] == 1 else 's'}"
               + (f", {cost['cpu_kernels']} CPU kernels" if cost.get("cpu_kernels") else ""))


DEMO_METHODS = ("retrain", "ft", "neggrad", "ga_klr", "npo", "d2d", "multidelete")
# MultiDelete's demo settings per task. Retrieval runs ANCHORS' working retrieval variant, L_UKR on Dr (on
# Df it would hold f_I and f_T of the deleted pairs fixed, and on a dual encoder such as CLIP their cosine
# with them: exactly what L_MD has to move); classification keeps the released classification code's L_UKR
# on Df. Both take 10 epochs over Df, not 5: the demo's 100 units make 32-38 steps an epoch, where the
# paper's 1k-5k units make 300-1500.
DEMO_PARAMS = {
    "retrieval": {"multidelete": {"ukr_on": "dr", "epochs": 10}},
    "classification": {"multidelete": {"epochs": 10}},
}


def demo(
    model: Optional[str] = typer.Option(None, "--model", help="default: the task's demo model (clip-tiny for "
                                        "retrieval, blip-tiny for image-text classification)"),
    data: str = typer.Option("shapes", "--data"),
    task: Optional[str] = typer.Option(None, "--task", help="for data serving several tasks; default: the data's own"),
    delete: int = typer.Option(100, "--delete", help="units in the deletion set"),
    seed: int = typer.Option(specs.DEFAULT_SEED, "--seed"),
    device: str = typer.Option("auto", "--device"),
    only: Optional[str] = typer.Option(None, "--methods", help="comma-separated subset of methods"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The main job: train (or reuse) the original, then Retrain and every method on one deletion set."""
    chosen = DEMO_METHODS if only is None else tuple(dict.fromkeys(m.strip() for m in only.split(",") if m.strip()))
    if not chosen:  # each method once, in the order given
        fail(f"--methods {only!r} names no method; give some of {', '.join(DEMO_METHODS)}")
    model = model or specs.demo_model(data, task) or "clip-tiny"  # unknown data: validation names the problem
    extra = DEMO_PARAMS.get(task or specs.data_kind(data) or "", {})
    try:
        runs = [specs.validate(absolute_paths({"method": m, "model": model, "data": data, "device": device, "seed": seed,
                                "deletion": {"strategy": "random", "n": delete, "seed": seed},
                                "params": extra.get(m, {}), **({"task": task} if task else {})})) for m in chosen]
    except SpecError as error:
        fail(str(error))
    results, original = [], None
    for spec in runs:  # a run that fails ends the demo; under --json with its {session, state, error}, as `run`
        result = run_session(spec, label=spec["method"], original_metrics=original, as_json=as_json)
        original = flatten(result["original_metrics"])
        results.append(result)
    if as_json:
        return print_json({"model": model, "data": data, "deletion": results[0]["deletion"],
                           "original_metrics": results[0]["original_metrics"], "runs": results})
    print_table(results, original=results[0]["original_metrics"])
    for line in demo_settings(extra, chosen):
        typer.echo(line)
    typer.echo(f"one seed, a quick look; the 3-seed table scored against Retrain: {study_command(runs)}")


def demo_settings(extra: dict[str, dict], chosen) -> list[str]:
    """The lines saying which methods the demo runs away from their defaults (DEMO_PARAMS): its MultiDelete ran
    10 epochs with L_UKR on Dr while `methods` lists 5 and Df, and the same seed in the suggested study (the
    defaults) read another Df/Dr AUC with nothing saying why (a review)."""
    return [f"{specs.METHODS[method].title} here: " + " ".join(f"--{name.replace('_', '-')} {value}"
                                                              for name, value in params.items())
            + " (the demo's settings, not its defaults: the study below runs every method at its defaults)"
            for method, params in extra.items() if method in chosen and params]


def study_command(runs: list[dict]) -> str:
    """The `study` that gives this demo's grid as the README's fair 3-seed table: every method at its released
    defaults, each unlearning method given MultiDelete's steps (`--budget matched-steps`) and its lr picked on a
    validation deletion set scored on the validation split (`--tune`). The demo's own MultiDelete settings
    (DEMO_PARAMS) were chosen by looking at the split the demo reports, so the study does not carry them."""
    first = runs[0]
    task = f" --task {first['task']}" if first.get("task") and first["task"] != specs.data_kind(first["data"]) else ""
    # Retrain first, always: the table is "scored against Retrain", and `demo --methods ga,multidelete` left it out
    methods = ["retrain", *(r["method"] for r in runs if r["method"] != "retrain")]
    return (f"mmul-workbench study --methods {','.join(methods)} --model {first['model']} "
            f"--data {first['data']}{task} --delete {first['deletion']['n']} --budget matched-steps --tune")


# a run's cost (engine/cost.py): training seconds (evaluation excluded), evaluation seconds, examples per
# training second, the peak memory (CUDA's max allocated, or the process's peak RSS on the CPU)
COST_HEADERS = ("train time", "eval time", "ex/s", "peak mem")
COST_FIELDS = ("unlearning_seconds", "evaluation_seconds", "examples_per_second", "peak_memory_mb")


def cost_cells(result: dict | None) -> list[str]:
    """The cost columns of one result (a result from before `cost` shows its `seconds` as the training time)."""
    cost = (result or {}).get("cost") or ({"unlearning_seconds": result.get("seconds")} if result else {})
    return [fmt(cost.get(name), name) for name in COST_FIELDS]


def print_table(results: list[dict], original: dict | None = None) -> None:
    """Rows = methods; the task's headline metrics (engine.spec TaskInfo.columns: Df/Dr AUC, test/Df/Dr
    performance, MIA), the test gap to Retrain when Retrain ran, and the cost (the paper's comparison table
    with its time column split: training, evaluation, throughput, peak memory), in the workbench's one number format (sessions.numbers: rates and AUCs in percent)."""
    from rich.console import Console
    from rich.table import Table

    first = results[0] if results else {}
    task = first.get("task") or specs.data_kind(str(first.get("data", ""))) or "retrieval"
    columns = specs.shown_columns(task, (flatten(r["metrics"]) for r in results))
    test = next((c for c in columns if c.metric == specs.TASKS[task].test_metric), None)
    retrain = next((flatten(r["metrics"]) for r in results if r["method"] == "retrain"), None)
    gap = test is not None and retrain is not None and test.metric in retrain

    if results:
        count, (one, many) = first["deletion"]["units"], deletion_nouns(first)
        title = f"unlearning results ({count} {one if count == 1 else many} deleted)"
    else:
        title = "unlearning results"
    # "test gap", as `study` names it: |test headline - Retrain's| in points ("Retrain gap" read as the AUC's too)
    table = Table(title=title, caption=f"test gap: |{test.header} - Retrain's| in points" if gap else None)
    headers = ["method", *(c.header for c in columns), *(["test gap"] if gap else []), *COST_HEADERS]
    for header in headers:
        table.add_column(header, justify="left" if header == "method" else "right", no_wrap=header == "method")

    def row(label, metrics, result):
        flat = flatten(metrics)
        cells = [fmt(flat.get(c.metric), c.metric) for c in columns]
        if gap:
            value = flat.get(test.metric)
            cells.append(fmt(None if value is None else abs(value - retrain[test.metric]), test.metric))
        table.add_row(label, *cells, *cost_cells(result))

    if original:
        row("original", original, None)
    for result in results:
        row(specs.METHODS[result["method"]].title, result["metrics"], result)
    # piped output keeps whole numbers and names rather than squeezing to 80 columns
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def register(app: typer.Typer) -> None:
    app.command("run")(with_param_options("run")(run))
    app.command("demo")(demo)
