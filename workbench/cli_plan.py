"""`mmul-workbench plan`: the memory a run needs per device, before anything loads (engine/plan.py through
engine.api): parameters, gradients, AdamW state, the frozen copies the method keeps, estimated activations,
and whether it fits --gpu-memory. Nothing heavy at import; the model is built on torch's meta device. Also what a
run through the engine is told before it is sent: the thread count the engine's jobs run at, where it differs."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from engine import spec as specs
from engine.errors import SpecError
from engine.spec.params import LMM_PARAMS, MAX_BATCH, UPDATE_TARGETS
from engine.spec.placement import MAX_DEVICES

MAX_SEQ_LEN = 1_048_576  # tokens a row holds in a plan: past any context a supported model has
from sessions.numbers import format_megabytes
from workbench.completion import complete_method, complete_model
from workbench.output import fail, print_json

PARTS = (("parameters", "parameters"), ("gradients", "gradients"), ("optimizer", "AdamW moments"),
         ("optimizer_step", "AdamW step temporaries"), ("frozen_copies", "frozen copies (the method's original)"),
         ("activations", "activations (estimated)"))


def plan(
    model: str = typer.Option(..., "--model", help="a checkpoint or config directory (config.json), or a hub id "
                              "in the local cache", autocompletion=complete_model),
    method: str = typer.Option(..., "--method", help="see `mmul-workbench methods`", autocompletion=complete_method),
    update: str = typer.Option("full", "--update", help="what trains: full, llm (LoRA on the language model) or "
                               "proj+llm"),
    batch_size: int = typer.Option(16, "--batch-size", help="Df batch size"),
    retain_batch_size: int = typer.Option(64, "--retain-batch-size", help="Dr batch size"),
    dtype: str = typer.Option("fp32", "--dtype", help="the weights' dtype: fp32 (the loop's master weights) or bf16"),
    activation_dtype: Optional[str] = typer.Option(None, "--activation-dtype", help="fp32 or bf16 (CUDA's "
                                                   "autocast); default: --dtype"),
    strategy: str = typer.Option("ddp", "--strategy", help="ddp (whole model per device) or fsdp (weights, "
                                 "gradients and AdamW state sharded)"),
    devices: int = typer.Option(1, "--devices", metavar="N", help="devices the run uses"),
    seq_len: int = typer.Option(32, "--seq-len", help="text tokens per example (image tokens come from the config)"),
    lora_r: int = typer.Option(16, "--lora-r", help="LoRA rank (--update llm, proj+llm)"),
    grad_checkpointing: bool = typer.Option(False, "--grad-checkpointing", help="layers keep only their inputs"),
    gpu_memory: Optional[str] = typer.Option(None, "--gpu-memory", help="the device's memory, e.g. 80GB: say "
                                             "whether the run fits"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document on stdout"),
) -> None:
    """The memory a run needs per device, part by part, before anything loads."""
    choices = {"--update": (update, UPDATE_TARGETS), "--dtype": (dtype, ("fp32", "bf16")),
               "--activation-dtype": (activation_dtype or dtype, ("fp32", "bf16")),
               "--strategy": (strategy, ("ddp", "fsdp"))}
    for flag, (value, allowed) in choices.items():
        if value not in allowed:
            fail(f"{flag} must be one of {', '.join(allowed)}, got {value!r}")
    # the bounds a run takes (engine/spec): a plan for 10^11 devices or rows printed 10^20 GB
    lora_rank_max = next(p.maximum for p in LMM_PARAMS if p.name == "lora_r")
    for flag, value, most in (("--batch-size", batch_size, MAX_BATCH),
                              ("--retain-batch-size", retain_batch_size, MAX_BATCH),
                              ("--devices", devices, MAX_DEVICES), ("--seq-len", seq_len, MAX_SEQ_LEN),
                              ("--lora-r", lora_r, lora_rank_max)):
        if not 1 <= value <= most:
            fail(f"{flag} must be from 1 to {most}, got {value}")
    from engine.api import memory_plan

    try:
        specs.method_info(method)
        document = memory_plan(model, method, update=update, batch_size=batch_size,
                               retain_batch_size=retain_batch_size, dtype=dtype, activation_dtype=activation_dtype,
                               strategy=strategy, devices=devices, seq_len=seq_len, lora_r=lora_r,
                               grad_checkpointing=grad_checkpointing, gpu_memory=gpu_memory)
    except SpecError as error:
        fail(str(error))
    if as_json:
        return print_json(document)
    typer.echo(f"{document['model']} ({document['model_type']}), {document['method']}, update {document['update']}: "
               f"{document['parameters']:,} parameters, {document['trainable']:,} trained; per device "
               f"({document['devices']} x, {document['strategy']}):")
    for key, label in PARTS:
        typer.echo(f"  {label:<40} {format_megabytes(document['bytes'][key] / 2**20):>10}")
    verdict = ""
    if "fits" in document:
        verdict = (f"; fits {format_megabytes(document['gpu_memory_bytes'] / 2**20)}" if document["fits"] else
                   f"; does NOT fit {format_megabytes(document['gpu_memory_bytes'] / 2**20)}")
    typer.echo(f"  {'total':<40} {format_megabytes(document['total_bytes'] / 2**20):>10}{verdict}")


GPU_MEMORY_HELP = ("the memory of each GPU the run will have, e.g. 80GB: a run whose memory plan (`mmul-workbench "
                   "plan`) does not fit is refused before it starts (default: the CUDA device's own memory; none on "
                   "the CPU)")


def announce_plan(specs_to_run: list[dict], gpu_memory: Optional[str]) -> None:
    """Before anything loads: the plan's total per device as one stderr line (the largest of the methods' when
    a study runs several), or exit 2 in one line when it cannot fit --gpu-memory (or the CUDA device's memory).
    Registered tiny models have no plan line: their config is built from the data when the run starts."""
    from engine.api import run_plan

    planned = []
    for spec in {spec["method"]: spec for spec in specs_to_run}.values():
        try:
            document = run_plan(spec, gpu_memory)
        except SpecError as error:
            fail(str(error))
        if document is not None:
            planned.append(document)
    if not planned:
        if gpu_memory is not None:  # said, not silently ignored
            print(f"memory plan: none for {specs_to_run[0]['model']} (a registered tiny model's config is built from "
                  f"the data when the run starts), so --gpu-memory {gpu_memory} is not checked", file=sys.stderr)
        return
    largest = max(planned, key=lambda document: document["total_bytes"])
    total = format_megabytes(largest["total_bytes"] / 2**20)
    where = f"{largest['devices']} x {largest['strategy']}, update {largest['update']}"
    if "fits" in largest:
        limit = format_megabytes(largest["gpu_memory_bytes"] / 2**20)
        named = f"--gpu-memory {gpu_memory}" if gpu_memory is not None else "the CUDA device's memory"
        if not largest["fits"]:
            lora = "--update llm, " if largest["update"] == "full" and largest.get("lora") else ""
            fail(f"{largest['method']} on {largest['model']} needs {total} per device by its memory plan ({where}), "
                 f"more than the {limit} of {named}; try {lora}--grad-checkpointing, a smaller --batch-size "
                 f"or --retain-batch-size, or --devices N --strategy fsdp (`{plan_command(largest, gpu_memory)}` shows each "
                 "part)")
        where += f"; fits {limit}"
    method = f" ({largest['method']}, the largest)" if len(planned) > 1 else ""
    print(f"memory plan: {total} per device{method} ({where})", file=sys.stderr)


def plan_command(document: dict, gpu_memory: Optional[str] = None) -> str:
    """The `mmul-workbench plan` command that gives the same plan part by part (the run's batches, update,
    activation dtype: bf16 where the run has a GPU, which `plan` takes only when told)."""
    batch = document["batch_sizes"]
    flags = [f"--model {document['model']}", f"--method {document['method']}", f"--update {document['update']}",
             f"--batch-size {batch['forget']}", f"--retain-batch-size {batch['retain']}",
             f"--activation-dtype {document['activation_dtype']}"]
    if document["update"] != "full":
        flags.append(f"--lora-r {document['lora_r']}")
    if document["devices"] > 1:
        flags += [f"--devices {document['devices']}", f"--strategy {document['strategy']}"]
    if document["grad_checkpointing"]:
        flags.append("--grad-checkpointing")
    if "gpu_memory_bytes" in document:  # as given, or the device's own in bytes: a rounded size can flip the verdict
        flags.append(f"--gpu-memory {gpu_memory or str(document['gpu_memory_bytes']) + 'B'}")
    return "mmul-workbench plan " + " ".join(flags)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
