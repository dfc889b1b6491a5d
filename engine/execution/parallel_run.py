"""Running one job on ``spec["devices"]`` rank processes (``--devices N``): the original model prepared
first, the ranks started (spawn) and joined (``engine.parallel.rank_of``, with the spec's ``--strategy``),
rank 0's events and result handed back, a dead rank reported. What a rank does inside the loop is
``engine.parallel``'s."""
from __future__ import annotations

import queue
import traceback
from typing import Callable

import torch

from engine.devices import resolve_device
from engine.errors import Cancelled, RunFailed, SpecError
from engine.parallel import free_port, leave_rank, rank_of
from engine.protocols.requests import prepare_original, run_requests
from sessions.files import plain


def run_parallel(spec: dict, emit: Callable[..., None], should_stop: Callable[[], bool],
                 session_id: str | None) -> dict:
    """Run ``spec`` on ``spec["devices"]`` ranks; rank 0's events go to ``emit``; returns rank 0's result."""
    prepare_original(spec, emit, should_stop)
    context = torch.multiprocessing.get_context("spawn")
    outbox, stop = context.Queue(), context.Event()
    port, world = free_port(), spec["devices"]
    ranks = [context.Process(target=rank_main, args=(rank, world, port, spec, session_id, outbox, stop),
                             name=f"rank-{rank}") for rank in range(world)]
    for process in ranks:
        process.start()
    try:
        while True:
            try:
                kind, payload = outbox.get(timeout=0.2)
            except queue.Empty:
                if should_stop():
                    stop.set()
                dead = [(r, p.exitcode) for r, p in enumerate(ranks) if p.exitcode not in (None, 0)]
                if dead:
                    rank, code = dead[0]
                    raise RunFailed(f"rank {rank} of {world} died (exit status {code}) before the run ended")
                continue
            if kind == "event":
                emit(payload[0], **payload[1])
            elif kind == "result":
                return payload
            elif kind == "cancelled":
                raise Cancelled(payload)
            else:
                raise RunFailed(payload)
    finally:
        stop.set()
        for process in ranks:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


def rank_main(rank: int, world: int, port: int, spec: dict, session_id: str | None, outbox, stop) -> None:
    """One rank: runs the job; reports through ``outbox`` (rank 0's events and result, any rank's failure)."""
    def emit(kind: str, **fields) -> None:
        if rank == 0:
            outbox.put(("event", (kind, plain(fields))))

    try:
        cpu = resolve_device(spec["device"]).type == "cpu"  # --device auto on a machine without CUDA: gloo ranks
        with rank_of(rank, world, port, cpu, spec.get("strategy", "ddp")) as parallel:
            device = "cpu" if cpu else str(parallel.device)
            result = run_requests({**spec, "device": device}, emit, stop.is_set, session_id=session_id)
        if rank == 0:
            outbox.put(("result", plain(result)))
    except Cancelled as exc:
        outbox.put(("cancelled", str(exc) or "cancelled"))
    except (RunFailed, SpecError) as exc:
        outbox.put(("failed", f"rank {rank}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"))
    except BaseException as exc:
        traceback.print_exc()
        outbox.put(("failed", f"rank {rank}: internal error: {type(exc).__name__}: {exc}".splitlines()[0]))
    leave_rank(outbox)
