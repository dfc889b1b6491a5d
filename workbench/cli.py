"""`mmul-workbench`: the TUI by default, and every action as a headless subcommand.

Nothing heavy at import: torch and transformers load inside the commands that run a model, so
`--help`, `methods`, `models`, `data list` and `sessions` start instantly.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from engine import spec as specs
from engine.errors import Cancelled, RunFailed, SpecError
from workbench.output import Exit, Progress, fail, print_json

app = typer.Typer(
    name="mmul-workbench",
    help="Multimodal machine unlearning workbench: MultiDelete, PULSE-style requests, baselines, sessions.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Built-in worlds and real-format data.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _register_subcommands() -> None:
    from workbench.cli_engine import engine_app
    from workbench.cli_pulse import register as register_pulse
    from workbench.cli_sessions import sessions_app

    register_pulse(app)

    app.add_typer(sessions_app, name="sessions", help="List, show, export and delete sessions.")
    app.add_typer(engine_app, name="engine", help="Start, stop and inspect the engine daemon.")


_register_subcommands()


@app.callback(invoke_without_command=True)
def default(ctx: typer.Context) -> None:
    """Open the workbench TUI (starts the engine if needed)."""
    if ctx.invoked_subcommand is None:
        from workbench.tui import run_tui

        raise typer.Exit(run_tui())


# --- catalogue ------------------------------------------------------------------------------------
@app.command()
def methods(as_json: bool = typer.Option(False, "--json", help="one JSON document on stdout")) -> None:
    """List the unlearning methods and their parameters."""
    rows = specs.method_rows()
    if as_json:
        return print_json({"methods": rows})
    for row in rows:
        params = " ".join(f"--{specs.dash(p['name'])}={p['default']}" for p in row["params"])
        print(f"{row['name']:<12} {row['summary']}" + (f"  [{params}]" if params else ""))


@app.command()
def models(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the registered models (a checkpoint directory or a hub id works too)."""
    rows = [{"name": m.name, "family": m.family, "summary": m.summary} for m in specs.MODELS.values()]
    if as_json:
        return print_json({"models": rows})
    for row in rows:
        print(f"{row['name']:<12} {row['family']:<6} {row['summary']}")


@data_app.command("list")
def data_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the built-in worlds and the real formats accepted as FORMAT:PATH."""
    rows = [{"name": d.name, "kind": d.kind, "summary": d.summary, "builtin": True} for d in specs.WORLDS.values()]
    rows += [{"name": d.name, "kind": d.kind, "summary": d.summary, "builtin": True}
             for d in specs.PEOPLE_WORLDS.values()]
    rows += [{"name": f"{d.name}:PATH", "kind": d.kind, "summary": d.summary, "builtin": False}
             for d in specs.DATA_FORMATS.values()]
    if as_json:
        return print_json({"data": rows})
    for row in rows:
        print(f"{row['name']:<16} {row['kind']:<11} {row['summary']}")


EXPORT_FORMATS = ("flickr30k",)


@data_app.command("export")
def data_export(
    world: str = typer.Argument(..., help="built-in world: shapes (flickr30k) or people (mmbench, mllmu)"),
    directory: Path = typer.Argument(..., help="output directory"),
    fmt: str = typer.Option(..., "--format", help="flickr30k for image-text worlds; mmbench or mllmu for people"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write a built-in world in a real file format."""
    if world in specs.PEOPLE_WORLDS:
        from workbench.cli_pulse import export_people_command

        try:
            written = export_people_command(world, fmt, directory)
        except SpecError as error:
            fail(str(error))
        if as_json:
            return print_json({"world": world, "format": fmt, "directory": str(directory),
                               "files": [str(p) for p in written]})
        print(f"wrote {world} as {fmt} to {directory} ({', '.join(p.name for p in written)})")
        return
    if world not in specs.WORLDS:
        fail(f"unknown world {world!r}; choose one of: {', '.join([*specs.WORLDS, *specs.PEOPLE_WORLDS])}")
    if fmt not in EXPORT_FORMATS:
        fail(f"unknown export format {fmt!r} for {world}; choose one of: {', '.join(EXPORT_FORMATS)}")
    if directory.exists() and not directory.is_dir():
        fail(f"{directory} exists and is not a directory; give a new or empty directory")
    from engine.data.flickr30k import write_flickr30k
    from engine.data.registry import load_world

    written = write_flickr30k(load_world(world), directory)
    if as_json:
        return print_json({"world": world, "format": fmt, "directory": str(directory), "files": [str(p) for p in written]})
    print(f"wrote {world} as {fmt} to {directory} ({', '.join(p.name for p in written)})")


# --- runs -----------------------------------------------------------------------------------------
def _deletion(delete: Optional[int], delete_ids: Optional[Path], delete_query: Optional[str], seed: int) -> dict:
    chosen = [name for name, value in (("--delete-ids", delete_ids), ("--delete-query", delete_query)) if value]
    if len(chosen) > 1:
        fail("give only one of --delete-ids and --delete-query (with --delete N to take the first N)")
    if delete_ids:
        return {"strategy": "ids", "file": str(delete_ids), "n": delete, "seed": seed}
    if delete_query:
        return {"strategy": "query", "query": delete_query, "n": delete, "seed": seed}
    if delete is None:
        fail("choose a deletion set: --delete N, --delete-ids FILE or --delete-query TEXT")
    return {"strategy": "random", "n": delete, "seed": seed}


def _execute(spec: dict, as_json: bool, label: str, original_metrics: dict | None = None) -> dict:
    """Run a validated spec in this process as a session; returns the result document."""
    from engine.jobs import run_job
    from sessions.store import SessionStore

    writer = SessionStore().create(spec, name=spec.get("name"))
    with Progress(label, quiet=False) as progress:

        class Tee:
            session_id = writer.session_id

            @staticmethod
            def emit(kind, **fields):
                writer.emit(kind, **fields)
                progress.event(kind, fields)

        try:
            result = run_job(spec, Tee, lambda: False, original_metrics=original_metrics)
        except SpecError as error:
            writer.finish("failed", message=str(error))
            fail(str(error))
        except RunFailed as error:
            writer.finish("failed", message=str(error))
            fail(f"{error} (session {writer.session_id} kept)", Exit.RUN_FAILED)
        except (Cancelled, KeyboardInterrupt):
            writer.finish("cancelled", message="interrupted from the terminal")
            fail(f"cancelled (session {writer.session_id} kept)", Exit.INTERRUPTED)
        except Exception as error:  # an engine bug: keep the session, say where, exit 1
            writer.finish("failed", message=f"{type(error).__name__}: {error}")
            fail(f"run failed: {type(error).__name__}: {error} (session {writer.session_id}; MMUL_DEBUG=1 for a traceback)",
                 Exit.RUN_FAILED)
    result["session"] = writer.session_id
    writer.finish("finished", summary=result)
    return result


@app.command()
def run(
    method: str = typer.Option(..., "--method", help="see `mmul-workbench methods`"),
    data: str = typer.Option(..., "--data", help="built-in world or FORMAT:PATH"),
    model: str = typer.Option(..., "--model", help="registered name, checkpoint directory or hub id"),
    delete: Optional[int] = typer.Option(None, "--delete", help="N units to delete (random by --seed), or the first N"),
    delete_ids: Optional[Path] = typer.Option(None, "--delete-ids", help="file with one unit id per line"),
    delete_query: Optional[str] = typer.Option(None, "--delete-query", help="delete units whose captions match"),
    seed: int = typer.Option(specs.DEFAULT_SEED, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N"),
    name: Optional[str] = typer.Option(None, "--name", help="a name for the session"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Df batch size"),
    retain_batch_size: Optional[int] = typer.Option(None, "--retain-batch-size", help="Dr batch size"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay"),
    max_grad_norm: Optional[float] = typer.Option(None, "--max-grad-norm"),
    eval_every: Optional[int] = typer.Option(None, "--eval-every"),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="MultiDelete: weight of L_MD"),
    beta: Optional[float] = typer.Option(None, "--beta", help="MultiDelete: weight of L_MKR"),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="MultiDelete: weight of L_UKR"),
    md_on: Optional[str] = typer.Option(None, "--md-on", help="MultiDelete: similarity, fused or both"),
    ukr_on: Optional[str] = typer.Option(None, "--ukr-on", help="MultiDelete: df or dr"),
    ukr_modalities: Optional[str] = typer.Option(None, "--ukr-modalities", help="MultiDelete: both, image, text"),
    train: Optional[str] = typer.Option(None, "--train", help="MultiDelete: all, vision, text"),
    kl_weight: Optional[float] = typer.Option(None, "--kl-weight", help="GA+KLR: lambda"),
    npo_beta: Optional[float] = typer.Option(None, "--npo-beta", help="NPO: beta"),
    eps: Optional[float] = typer.Option(None, "--eps", help="Descent-to-Delete: epsilon"),
    engine: bool = typer.Option(False, "--engine", help="submit to the engine daemon and follow it"),
    detach: bool = typer.Option(False, "--detach", help="with --engine: print the session id and return"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document on stdout"),
) -> None:
    """Unlearn a deletion set with one method and report Df/Dr AUC, test recall, MIA and time."""
    given = dict(lr=lr, epochs=epochs, batch_size=batch_size, retain_batch_size=retain_batch_size,
                 weight_decay=weight_decay, max_grad_norm=max_grad_norm, eval_every=eval_every, alpha=alpha,
                 beta=beta, gamma=gamma, md_on=md_on, ukr_on=ukr_on, ukr_modalities=ukr_modalities, train=train,
                 kl_weight=kl_weight, npo_beta=npo_beta, eps=eps)
    raw = {"method": method, "model": model, "data": data, "device": device, "seed": seed, "name": name,
           "deletion": _deletion(delete, delete_ids, delete_query, seed),
           "params": {k: v for k, v in given.items() if v is not None}}
    try:
        spec = specs.validate(raw)
    except SpecError as error:
        fail(str(error))
    if detach and not engine:
        fail("--detach needs --engine (a detached run lives in the engine daemon)")
    if engine:
        return _follow_engine(spec, detach, as_json)
    result = _execute(spec, as_json, label=method)
    if as_json:
        return print_json(result)
    print_table([result], original=result.get("original_metrics"))


def _follow_engine(spec: dict, detach: bool, as_json: bool) -> None:
    from workbench.client import SpecRejected, submit_and_follow

    progress = Progress(spec["method"], quiet=detach)
    with progress:
        try:
            session_id, final = submit_and_follow(spec, lambda event: progress.event(event["kind"], event), detach=detach)
        except (SpecError, SpecRejected) as error:
            fail(str(error))
        except (ConnectionError, OSError, RuntimeError) as error:
            fail(f"engine unavailable: {error}", Exit.RUN_FAILED)
    if detach:
        return print_json({"session": session_id}) if as_json else print(session_id)
    from sessions.store import SessionStore

    record = SessionStore().get(session_id)
    if final != "finished":
        fail(f"run {final}: {record.get('message') or 'see `mmul-workbench sessions show ' + session_id + '`'}",
             Exit.RUN_FAILED)
    result = record.get("summary") or {}
    if as_json:
        return print_json(result)
    print_table([result], original=result.get("original_metrics"))


# --- demo -----------------------------------------------------------------------------------------
DEMO_METHODS = ("retrain", "ft", "neggrad", "ga_klr", "npo", "d2d", "multidelete")
# The demo is a retrieval task, so MultiDelete runs ANCHORS' working retrieval variant: L_UKR on Dr.
# (On Df it would hold f_I and f_T of the deleted pairs fixed, and on a dual encoder such as CLIP
# their cosine with them: exactly what L_MD has to move.) And 10 epochs over Df, not 5: the demo's
# 100 units make 32 steps an epoch, where the paper's 1k-5k units make 300-1500.
DEMO_PARAMS = {"multidelete": {"ukr_on": "dr", "epochs": 10}}


@app.command()
def demo(
    model: str = typer.Option("clip-tiny", "--model"),
    data: str = typer.Option("shapes", "--data"),
    delete: int = typer.Option(100, "--delete", help="units in the deletion set"),
    seed: int = typer.Option(specs.DEFAULT_SEED, "--seed"),
    device: str = typer.Option("auto", "--device"),
    only: Optional[str] = typer.Option(None, "--methods", help="comma-separated subset of methods"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The main job: train (or reuse) the original, then Retrain and every method on one deletion set."""
    chosen = DEMO_METHODS if not only else tuple(m.strip() for m in only.split(",") if m.strip())
    try:
        runs = [specs.validate({"method": m, "model": model, "data": data, "device": device, "seed": seed,
                                "deletion": {"strategy": "random", "n": delete, "seed": seed},
                                "params": DEMO_PARAMS.get(m, {})}) for m in chosen]
    except SpecError as error:
        fail(str(error))
    results, original = [], None
    for spec in runs:
        result = _execute(spec, as_json, label=spec["method"], original_metrics=original)
        original = _flatten(result["original_metrics"])
        results.append(result)
    if as_json:
        return print_json({"model": model, "data": data, "deletion": results[0]["deletion"],
                           "original_metrics": results[0]["original_metrics"], "runs": results})
    print_table(results, original=results[0]["original_metrics"])


@app.command()
def replay(
    session: str = typer.Argument(..., help="session id (or a unique prefix)"),
    headless: bool = typer.Option(False, "--headless", help="draw the curves and the final table to stdout"),
) -> None:
    """Play a stored session back: in the TUI's monitor, or drawn to stdout with --headless."""
    if headless:
        from workbench.cli_sessions import replay_headless

        raise typer.Exit(replay_headless(session))
    from workbench.tui import run_tui

    raise typer.Exit(run_tui(replay=session))


def _flatten(nested: dict) -> dict:
    flat = {}
    for key, value in nested.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def print_table(results: list[dict], original: dict | None = None) -> None:
    """Rows = methods; Df/Dr AUC, test/Df/Dr r_mean, MIA, seconds (the paper's comparison table)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="unlearning results" + (f" ({results[0]['deletion']['units']} units deleted)" if results else ""))
    for column in ("method", "Df/Dr AUC", "test r_mean", "Df r_mean", "Dr r_mean", "MIA Df member", "MIA AUC", "seconds"):
        table.add_column(column, justify="left" if column == "method" else "right")

    def row(label, metrics, seconds):
        test, df, dr, mia = (metrics.get(k, {}) for k in ("test", "df", "dr", "mia"))
        table.add_row(label, f"{100 * metrics.get('df_dr_auc', float('nan')):.1f}", f"{test.get('r_mean', float('nan')):.1f}",
                      f"{df.get('r_mean', float('nan')):.1f}", f"{dr.get('r_mean', float('nan')):.1f}",
                      f"{100 * mia.get('df_member_rate', float('nan')):.1f}", f"{100 * mia.get('auc', float('nan')):.1f}",
                      seconds)

    if original:
        row("original", original, "-")
    for result in results:
        row(specs.METHODS[result["method"]].title, result["metrics"], f"{result['seconds']:.1f}")
    # piped output keeps whole numbers and names rather than squeezing to 80 columns
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(int(Exit.INTERRUPTED))


if __name__ == "__main__":
    main()
