"""`mmul-workbench pulse`: PULSE-style sequential deletion requests on an LMM (LLaVA), as one session.

`register(app)` adds the command to the main typer app; `export_people_command(world, fmt, directory)`
writes a people world as MMBench TSV or MLLMU-Bench parquet (for `data export`). Nothing heavy at import.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from engine import spec as specs
from engine.errors import SpecError
from workbench.output import fail, print_json


def pulse(
    method: str = typer.Option(..., "--method", help="ga, ga_klr, npo or multidelete"),
    data: str = typer.Option("people", "--data", help="people, people-tiny or mllmu:DIR"),
    model: str = typer.Option("llava-tiny", "--model", help="llava-tiny, a LLaVA checkpoint directory or hub id"),
    requests: int = typer.Option(1, "--requests", help="K sequential deletion requests"),
    knowledge: str = typer.Option("pretrained", "--knowledge", help="pretrained or finetuned people"),
    forget: Optional[int] = typer.Option(None, "--forget", help="N people to forget (default: half the set)"),
    general: Optional[str] = typer.Option(None, "--general", help="mmbench:FILE general-capability set"),
    update: Optional[str] = typer.Option(None, "--update", help="llm, proj+llm or full"),
    seed: int = typer.Option(specs.DEFAULT_SEED, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N"),
    name: Optional[str] = typer.Option(None, "--name", help="a name for the session"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="epochs over each request's forget set"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="forget batch size"),
    retain_batch_size: Optional[int] = typer.Option(None, "--retain-batch-size"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay"),
    max_grad_norm: Optional[float] = typer.Option(None, "--max-grad-norm"),
    lora_r: Optional[int] = typer.Option(None, "--lora-r"),
    lora_alpha: Optional[float] = typer.Option(None, "--lora-alpha"),
    lora_dropout: Optional[float] = typer.Option(None, "--lora-dropout"),
    mc_scoring: Optional[str] = typer.Option(None, "--mc-scoring", help="auto, option or letter"),
    kl_weight: Optional[float] = typer.Option(None, "--kl-weight", help="GA+KLR: lambda"),
    npo_beta: Optional[float] = typer.Option(None, "--npo-beta", help="NPO: beta"),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="MultiDelete: weight of L_MD"),
    beta: Optional[float] = typer.Option(None, "--beta", help="MultiDelete: weight of L_MKR"),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="MultiDelete: weight of L_UKR"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document on stdout"),
) -> None:
    """Unlearn people from an LMM in K sequential requests; accuracy after each (image / text-only), MMBench."""
    given = dict(update=update, lr=lr, epochs=epochs, batch_size=batch_size, retain_batch_size=retain_batch_size,
                 weight_decay=weight_decay, max_grad_norm=max_grad_norm, lora_r=lora_r, lora_alpha=lora_alpha,
                 lora_dropout=lora_dropout, mc_scoring=mc_scoring, kl_weight=kl_weight, npo_beta=npo_beta,
                 alpha=alpha, beta=beta, gamma=gamma)
    raw = {"kind": "pulse", "method": method, "model": model, "data": data, "general": general,
           "knowledge": knowledge, "requests": requests, "forget": forget, "device": device, "seed": seed,
           "name": name, "params": {k: v for k, v in given.items() if v is not None}}
    try:
        spec = specs.validate_pulse(raw)
    except SpecError as error:
        fail(str(error))
    from workbench.cli import _execute

    result = _execute(spec, as_json, label=f"pulse {method}")
    if as_json:
        return print_json(result)
    print_requests(result)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def print_requests(result: dict) -> None:
    """Rows = the original and each request; forget / retain accuracy (image, text-only), MMBench."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"PULSE {specs.METHODS[result['method']].title} on {result['data']} "
                        f"({result['knowledge']} people, update {result['update']}, session {result['session']})")
    for column in ("after", "forget img", "forget txt", "retain img", "retain txt", "MMBench", "MMBench ret. %"):
        table.add_column(column, justify="left" if column == "after" else "right")

    def row(label: str, entry: dict) -> None:
        f, r = entry.get("forget") or {}, entry.get("retain") or {}
        retention = entry.get("mmbench_retention")
        table.add_row(label, _pct(f.get("image")), _pct(f.get("text")), _pct(r.get("image")), _pct(r.get("text")),
                      _pct(entry.get("mmbench")), "-" if retention is None else f"{retention:.1f}")

    row("original", result["original"])
    for entry in result["requests"]:
        row(f"request {entry['request']}", entry)
    Console().print(table)


def export_people_command(world: str, fmt: str, directory: Path) -> list[Path]:
    """Write the people world `world` as `fmt` (mmbench or mllmu) into `directory`; SpecError on bad input."""
    if world not in specs.PEOPLE_WORLDS:
        raise SpecError(f"unknown people world {world!r}; choose one of: {', '.join(specs.PEOPLE_WORLDS)}")
    from engine.data.people import EXPORT_FORMATS, build_people_world, export_people

    if fmt not in EXPORT_FORMATS:
        raise SpecError(f"unknown export format {fmt!r} for {world}; choose one of: {', '.join(EXPORT_FORMATS)}")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise SpecError(f"{directory} exists and is not a directory; give a new or empty directory")
    return export_people(build_people_world(world, seed=0), fmt, directory)


def register(app: typer.Typer) -> None:
    app.command("pulse")(pulse)
