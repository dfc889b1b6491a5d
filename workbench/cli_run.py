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
from sessions.metric_names import flatten
from workbench.execute import run_session
from workbench.output import Exit, Progress, fail, print_json
from workbench.param_options import with_param_options


def deletion_spec(delete: Optional[int], delete_ids: Optional[Path], delete_query: Optional[str], seed: int) -> dict:
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


def run(
    method: str = typer.Option(..., "--method", help="see `mmul-workbench methods`"),
    data: str = typer.Option(..., "--data", help="built-in world or FORMAT:PATH"),
    model: str = typer.Option(..., "--model", help="registered name, checkpoint directory or hub id"),
    delete: Optional[int] = typer.Option(None, "--delete", help="N units to delete (random by --seed), or the first N"),
    delete_ids: Optional[Path] = typer.Option(None, "--delete-ids", help="file with one unit id per line"),
    delete_query: Optional[str] = typer.Option(None, "--delete-query", help="delete units whose captions match"),
    requests: Optional[int] = typer.Option(None, "--requests", metavar="K", help=specs.REQUESTS.help),
    seed: int = typer.Option(specs.DEFAULT_SEED, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N"),
    name: Optional[str] = typer.Option(None, "--name", help="a name for the session"),
    engine: bool = typer.Option(False, "--engine", help="submit to the engine daemon and follow it"),
    detach: bool = typer.Option(False, "--detach", help="with --engine: print the session id and return"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document on stdout"),
    params: Optional[dict] = None,
) -> None:
    """Unlearn a deletion set with one method and report Df/Dr AUC, test recall, MIA and time."""
    raw = {"method": method, "model": model, "data": data, "device": device, "seed": seed, "name": name,
           "deletion": deletion_spec(delete, delete_ids, delete_query, seed), "params": params or {}}
    if requests is not None:
        raw["requests"] = requests
    try:
        spec = specs.validate(raw)
    except SpecError as error:
        fail(str(error))
    if detach and not engine:
        fail("--detach needs --engine (a detached run lives in the engine daemon)")
    if engine:
        return follow_engine(spec, detach, as_json)
    result = run_session(spec, label=method)
    if as_json:
        return print_json(result)
    print_table([result], original=result.get("original_metrics"))


def follow_engine(spec: dict, detach: bool, as_json: bool) -> None:
    from sessions.store import SessionStore
    from workbench.client.errors import SpecRejected
    from workbench.client.follow import submit_and_follow

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
    record = SessionStore().get(session_id)
    if final != "finished":
        fail(f"run {final}: {record.get('message') or 'see `mmul-workbench sessions show ' + session_id + '`'}",
             Exit.RUN_FAILED)
    result = record.get("summary") or {}
    if as_json:
        return print_json(result)
    print_table([result], original=result.get("original_metrics"))


DEMO_METHODS = ("retrain", "ft", "neggrad", "ga_klr", "npo", "d2d", "multidelete")
# The demo is a retrieval task, so MultiDelete runs ANCHORS' working retrieval variant: L_UKR on Dr.
# (On Df it would hold f_I and f_T of the deleted pairs fixed, and on a dual encoder such as CLIP
# their cosine with them: exactly what L_MD has to move.) And 10 epochs over Df, not 5: the demo's
# 100 units make 32 steps an epoch, where the paper's 1k-5k units make 300-1500.
DEMO_PARAMS = {"multidelete": {"ukr_on": "dr", "epochs": 10}}


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
        result = run_session(spec, label=spec["method"], original_metrics=original)
        original = flatten(result["original_metrics"])
        results.append(result)
    if as_json:
        return print_json({"model": model, "data": data, "deletion": results[0]["deletion"],
                           "original_metrics": results[0]["original_metrics"], "runs": results})
    print_table(results, original=results[0]["original_metrics"])


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


def register(app: typer.Typer) -> None:
    app.command("run")(with_param_options("run")(run))
    app.command("demo")(demo)
