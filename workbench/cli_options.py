"""What `run`, `study` and `pulse` share: the deletion-set options, the placement options and the help texts of
the options all three take. Torch-free."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from engine import spec as specs
from engine.errors import SpecError


def deletion_spec(delete: Optional[int], delete_ids: Optional[Path], delete_query: Optional[str], seed: int,
                  granularity: str = specs.GRANULARITY.default) -> dict:
    """The raw deletion set of the --delete* options; --granularity rides in it only when it is not `unit`.
    SpecError (one line, field ``deletion``) when they choose none or two (the TUI's New-study form shows it)."""
    chosen = choose_deletion(delete, delete_ids, delete_query, seed)
    return chosen | ({"granularity": granularity} if granularity != specs.GRANULARITY.default else {})


GRANULARITY_HELP = specs.GRANULARITY.help + "; real FORMAT:PATH data supports unit only"


def choose_deletion(delete: Optional[int], delete_ids: Optional[Path], delete_query: Optional[str], seed: int) -> dict:
    chosen = [name for name, value in (("--delete-ids", delete_ids), ("--delete-query", delete_query)) if value]
    if len(chosen) > 1:
        raise SpecError("give only one of --delete-ids and --delete-query (with --delete N to take the first N)",
                        field="deletion")
    if delete_ids:
        return {"strategy": "ids", "file": str(delete_ids), "n": delete, "seed": seed}
    if delete_query:
        return {"strategy": "query", "query": delete_query, "n": delete, "seed": seed}
    if delete is None:
        raise SpecError("choose a deletion set: --delete N, --delete-ids FILE or --delete-query TEXT", field="deletion")
    return {"strategy": "random", "n": delete, "seed": seed}


CLUSTER_HELP = ("run on a Ray cluster, through the engine: ray (the cluster at $RAY_ADDRESS, else a local Ray "
                "instance the engine starts) or ray://HOST:PORT")
ARTIFACTS_HELP = ("the model cache (original models, checkpoints) for this run, e.g. on another disk (default: "
                  "$MMUL_CACHE, else $MMUL_HOME/cache); with --cluster, a directory every node shares")


DEVICES_HELP = ("run on N devices at once, data-parallel (CPU ranks on gloo; on CUDA, cuda:0 .. cuda:N-1); the "
                "global batch sizes stay those of one device")
STRATEGY_HELP = ("with --devices N: how the ranks hold the model: ddp, whole on each (default); fsdp, weights, "
                 "gradients and AdamW state sharded over them (torch FSDP2); zero3, DeepSpeed ZeRO-3 (not yet "
                 "available: use fsdp)")
PULSE_ORIGINAL_HELP = ("the deployed model to unlearn as it is (a checkpoint directory or hub id of --model's "
                       "family, already trained on --data): nothing is trained for it; --model stays the base it "
                       "came from")
ORIGINAL_HELP = PULSE_ORIGINAL_HELP + ", which Retrain trains on Dr"
COMPILE_HELP = "torch.compile each transformer layer while it trains (the first steps compile; CPU needs g++)"


def placement(cluster: Optional[str], artifacts: Optional[Path], devices: int, strategy: Optional[str] = None) -> dict:
    """The spec's placement fields (validated with the rest of the spec)."""
    placed: dict = {"cluster": cluster} if cluster is not None else {}
    if artifacts is not None:
        placed["artifacts"] = str(artifacts.expanduser().resolve())
    if devices != 1:
        placed["devices"] = devices
    if strategy is not None:
        placed["strategy"] = strategy
    return placed


def with_compile(params: dict, compiled: bool) -> dict:
    """--compile rides in the spec's params (the loop reads it there), only when on."""
    return {**params, "compile": True} if compiled else params


RESUME_EVERY_HELP = ("with --requests K: minutes between resume points (the model and the run's state after a "
                     "request, from which `mmul-workbench resume SESSION` goes on if the run stops); 0: after every "
                     "request; off: none; default 10")


def resume_every_value(given: Optional[str]) -> dict:
    """`--resume-every` as the spec records it (only when given): minutes, or "off"."""
    if given is None:
        return {}
    if given.strip().lower() == "off":
        return {"resume_every": "off"}
    try:
        return {"resume_every": float(given)}
    except ValueError:
        raise SpecError(f"--resume-every {given!r}: give minutes between resume points (0: after every request) "
                        "or off", field="resume_every") from None
