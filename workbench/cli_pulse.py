"""`mmul-workbench pulse`: PULSE-style sequential deletion requests on an LMM (LLaVA, Qwen2-VL), as one session.

Its method-hyperparameter flags (and the LMM ones: --update, --lora-r, ...) are generated from the
catalogue (workbench.param_options); `register(app)` adds the command. Nothing heavy at import.
"""
from __future__ import annotations

import re

from pathlib import Path
from typing import Optional

import typer

from engine import spec as specs
from engine.errors import SpecError
from engine.spec.inputs import absolute_paths
from engine.spec.params import EVAL_EVERY_REQUESTS, EVAL_SAMPLE
from sessions.numbers import fmt
from workbench.cli_options import ARTIFACTS_HELP, PULSE_ORIGINAL_HELP, RESUME_EVERY_HELP, resume_every_value
from workbench.cli_plan import GPU_MEMORY_HELP
from workbench.completion import complete_data, complete_device, complete_model, complete_pulse_method
from workbench.execute import run_session
from workbench.output import fail, print_json
from workbench.param_options import with_param_options
from workbench.verdicts import print_verdict, verdict_of


PULSE_ALIASES = [alias for method in specs.PULSE_METHODS for alias in specs.METHODS[method].aliases]


def pulse(
    method: str = typer.Option(..., "--method", autocompletion=complete_pulse_method,
                               help=", ".join(specs.PULSE_METHODS)
                               + (f" (or an alias: {', '.join(PULSE_ALIASES)})" if PULSE_ALIASES else "")),
    data: str = typer.Option("people", "--data", help="people, people-small, people-tiny or mllmu:DIR", autocompletion=complete_data),
    model: str = typer.Option("llava-tiny", "--model", autocompletion=complete_model, help=", ".join(
        m.name for m in specs.MODELS.values() if "multiple_choice" in specs.FAMILIES[m.family].tasks)
        + ", a checkpoint directory or hub id of an LMM family ("
        + ", ".join(f.name for f in specs.FAMILIES.values() if "multiple_choice" in f.tasks) + ")"),
    original: Optional[str] = typer.Option(None, "--original", help=PULSE_ORIGINAL_HELP, autocompletion=complete_model),
    requests: int = typer.Option(1, "--requests", metavar="K", help="K sequential deletion requests"),
    every_requests: Optional[int] = typer.Option(None, "--eval-every-requests", metavar="N", help=EVAL_EVERY_REQUESTS.help),
    eval_sample: Optional[int] = typer.Option(None, "--eval-sample", metavar="M", help=EVAL_SAMPLE.help),
    resume_every: Optional[str] = typer.Option(None, "--resume-every", metavar="MINUTES|off", help=RESUME_EVERY_HELP),
    knowledge: str = typer.Option("pretrained", "--knowledge", help="pretrained or finetuned people"),
    forget: Optional[int] = typer.Option(None, "--forget", help="N people to forget (default: half the set); with "
                                         "--granularity fact, N facts of them"),
    granularity: str = typer.Option(specs.GRANULARITY.default, "--granularity", metavar="[unit|fact]",
                                    help=specs.GRANULARITY.help),
    general: Optional[str] = typer.Option(None, "--general", help="mmbench:FILE general-capability set"),
    seed: int = typer.Option(specs.DEFAULT_SEED, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N", autocompletion=complete_device),
    name: Optional[str] = typer.Option(None, "--name", help="a name for the session"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=ARTIFACTS_HELP.split("; with --cluster")[0]),
    gpu_memory: Optional[str] = typer.Option(None, "--gpu-memory", help=GPU_MEMORY_HELP),
    as_json: bool = typer.Option(False, "--json", help="one JSON document on stdout"),
    params: Optional[dict] = None,
) -> None:
    """Unlearn people from an LMM in K sequential requests; accuracy after each (image / text-only), MMBench."""
    raw = {"kind": "pulse", "method": method, "model": model, "data": data, "general": general,
           "knowledge": knowledge, "requests": requests, "forget": forget, "device": device, "seed": seed,
           "name": name, "params": params or {}, "eval_every_requests": every_requests, "eval_sample": eval_sample}
    run_pulse(with_options(raw, granularity, original, resume_every,
                           str(cache_dir.expanduser().resolve()) if cache_dir is not None else None), as_json, gpu_memory)


def with_options(raw: dict, granularity: str, original: Optional[str], resume_every: Optional[str],
                 artifacts: Optional[str]) -> dict:
    """A raw PULSE spec with the options `pulse` and `run` on people data share, each only when given."""
    if granularity != specs.GRANULARITY.default:
        raw["granularity"] = granularity
    if original is not None:
        raw["original"] = original
    if artifacts is not None:
        raw["artifacts"] = artifacts
    try:
        raw.update(resume_every_value(resume_every))
    except SpecError as error:
        fail(str(error))
    return raw


def run_people(*, method: str, model: str, data: str, delete: Optional[int], other, granularity: str,
               requests: Optional[int], seed: int, device: str, name: Optional[str], params: dict,
               through_engine: bool, as_json: bool, resume_every: Optional[str] = None,
               gpu_memory: Optional[str] = None, artifacts: Optional[str] = None,
               original: Optional[str] = None) -> None:
    """`run --data people|people-tiny`: the PULSE run `pulse --forget N` makes (pretrained people, K requests),
    with `--delete N` as N people or, with --granularity fact, N facts of them."""
    if other:
        fail("people data takes --delete N (people, or facts with --granularity fact), drawn by --seed; "
             "--delete-ids and --delete-query select units of the image and graph worlds")
    if delete is None:
        fail("choose how many people (or facts, with --granularity fact) to forget: --delete N")
    if through_engine:
        fail("people data runs headless (as `mmul-workbench pulse` does); drop --engine and --cluster")
    raw = {"kind": "pulse", "method": method, "model": model, "data": data, "knowledge": "pretrained",
           "requests": requests or 1, "forget": delete, "device": device, "seed": seed, "name": name,
           "params": params}
    run_pulse(with_options(raw, granularity, original, resume_every, artifacts), as_json, gpu_memory,
              said=as_run_says)


def as_run_says(line: str) -> str:
    """A pulse spec's refusal in `run`'s words: `run` takes the people (or facts) to forget as --delete N and
    names the command `run` (it said "choose --forget 1..4", an option `run` does not have)."""
    named = re.sub(r"--forget(?![\w-])", "--delete", line)   # not --forget-rows, --forget-weight
    return named.replace("pulse runs one of", "run on people data takes one of").replace("pulse --method", "run --method")


def run_pulse(raw: dict, as_json: bool, gpu_memory: Optional[str] = None, said=str) -> None:
    """Validate a raw PULSE spec (paths made absolute: the engine's directory is $MMUL_HOME), check it and its
    memory plan (a real LMM's: --gpu-memory, or the CUDA device's own), run it headless and print its table or
    its JSON document. `said`: a refusal in the words of the command that was typed."""
    from workbench.cli_plan import announce_plan
    from workbench.execute import preflighted

    try:
        spec = specs.validate_pulse(absolute_paths(raw))
    except SpecError as error:
        fail(said(str(error)))
    preflighted(spec, said)
    announce_plan([spec], gpu_memory)
    result = run_session(spec, label=f"pulse {raw['method']}", as_json=as_json, checked=True)
    print_pulse(spec, result, as_json)


def print_pulse(spec: dict, result: dict, as_json: bool) -> None:
    """A finished PULSE run's table and verdict, or its JSON document with the verdict (as `run` prints its own:
    a pulse run printed none, where `sessions show` and `replay` of it did)."""
    verdict = verdict_of(spec, result)
    if as_json:
        return print_json({**result, "verdict": verdict})
    print_requests(result)
    print_verdict(verdict)


def print_requests(result: dict) -> None:
    """Rows = the original and each request; forget / retain accuracy (image, text-only), MMBench; with
    --granularity fact the forget people's other facts too (kept)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    facts = (result.get("deletion") or {}).get("facts")
    forgetting = f"{len(facts)} facts of {result['knowledge']} people" if facts else f"{result['knowledge']} people"
    model = f"{result['model']} " if result.get("model") else ""   # llava-tiny's and qwen2-vl-tiny's looked alike
    # no lines between the columns, one space of padding between two: at 80 columns the fact run's nine were cut to
    # `origi…`, `reta…`, `MMBen…`
    table = Table(title=f"PULSE {specs.METHODS[result['method']].title} on {model}{result['data']} "
                        f"({forgetting}, update {result['update']}, session {result['session']})",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    # --granularity fact: the forget people's other facts (holdout_identity), beside what is forgotten
    kept = ("kept img", "kept txt") if facts else ()
    for column in ("after", "forget img", "forget txt", *kept, "retain img", "retain txt", "MMBench", "MMBench ret %"):
        # a header on two lines, its group over its kind: the table's natural width is then its numbers', which fit
        table.add_column(column.replace(" ", "\n", 1), justify="left" if column == "after" else "right",
                         no_wrap=column == "after")

    def row(label: str, entry: dict) -> None:
        f, r, h = entry.get("forget") or {}, entry.get("retain") or {}, entry.get("holdout_identity") or {}
        retention = entry.get("mmbench_retention")
        holdout = (fmt(h.get("image"), "holdout_identity.image"), fmt(h.get("text"), "holdout_identity.text"))
        table.add_row(label, fmt(f.get("image"), "forget.image"), fmt(f.get("text"), "forget.text"),
                      *(holdout if facts else ()), fmt(r.get("image"), "retain.image"), fmt(r.get("text"), "retain.text"),
                      fmt(entry.get("mmbench"), "mmbench"), fmt(retention, "mmbench_retention"))

    row("original", result["original_metrics"])
    for entry in result["requests"]:
        row(f"request {entry['request']}" + (" (sample)" if entry.get("evaluation") == "sample" else ""), entry)
    Console().print(table)
    if result.get("history"):
        print_history(result["history"])
    stopped = result.get("stopped_by")
    if isinstance(stopped, dict):  # the table ends early: say why, as the verdict does
        asked = len((result.get("seeds") or {}).get("requests") or []) or len(result["requests"])
        print(f"stopped by --stop-if {stopped.get('rule')} in request {stopped.get('request')} of {asked}: the "
              "later requests did not run")


def print_history(history: dict) -> None:
    """The history's summary metrics on one line (sessions/history.py defines them)."""
    from sessions.history import summary_words

    print("history: " + summary_words(history, fmt))


def register(app: typer.Typer) -> None:
    app.command("pulse")(with_param_options("pulse")(pulse))
