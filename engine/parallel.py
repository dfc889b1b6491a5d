"""One job across several devices (``--devices N``): N rank processes, data-parallel over the Df and Dr
batches, started and wired by accelerate (``PartialState``: gloo on CPUs, NCCL on CUDA devices).

Every rank draws the same global batch from the same seeded order and takes its own contiguous shard
of it (the global batch sizes are those of a single-process run); after each backward pass the
gradients are averaged over the ranks, so with losses that are means over their examples the update
is the single-process update on the global batch. Losses that compare examples within a batch (a
contrastive loss, L_MD's drawn mismatches) see the rank's shard, as under DDP. The reported loss
terms are the ranks' average, stop requests are agreed collectively, and every rank evaluates (the
same weights give the same numbers); only rank 0's events reach the session and only rank 0 writes
checkpoints. The original model is prepared before the ranks start, so they only read the cache.

Gradients are averaged by one all-reduce after ``backward`` rather than by wrapping the model in DDP,
because the adapters call the model's parts (vision tower, text tower, heads), not its ``forward``.
"""
from __future__ import annotations

import json
import os
import queue
import socket
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist

from sessions.files import dumps

_current: "DataParallel | None" = None


@dataclass
class DataParallel:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch's rows."""
        return indices.tensor_split(self.world)[self.rank]

    def average_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for parameter, grad in zip(parameters, grads):
            parameter.grad = flat[offset:offset + grad.numel()].view_as(grad).to(grad.dtype)
            offset += grad.numel()

    def average_terms(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss terms averaged over the ranks (detached: for reporting and the NaN check)."""
        names = list(losses)
        stacked = torch.stack([losses[name].detach().float() for name in names])
        dist.all_reduce(stacked)
        stacked /= self.world
        return dict(zip(names, stacked))

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (so all ranks stop at the same step)."""
        value = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


def current() -> DataParallel | None:
    """The rank this process is, inside a ``--devices N`` job; None in a single-process job."""
    return _current


def is_main() -> bool:
    return _current is None or _current.main


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_parallel(spec: dict, emit: Callable[..., None], should_stop: Callable[[], bool],
                 session_id: str | None) -> dict:
    """Run ``spec`` on ``spec["devices"]`` ranks; rank 0's events go to ``emit``; returns rank 0's result."""
    from engine.errors import Cancelled, RunFailed
    from engine.protocols.requests import prepare_original

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


@contextmanager
def rank_of(rank: int, world: int, port: int, cpu: bool) -> Iterator[DataParallel]:
    """Be rank ``rank`` of ``world`` while inside: the process group joined through accelerate (gloo for
    CPU ranks, NCCL for CUDA ones, rank r on cuda:r), and ``current()`` set for the loop."""
    global _current
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    from accelerate import PartialState

    state = PartialState(cpu=cpu, backend="gloo" if cpu else "nccl")
    _current = DataParallel(rank, world, state.device)
    try:
        yield _current
    finally:
        _current = None
        if dist.is_initialized():
            dist.destroy_process_group()


def rank_main(rank: int, world: int, port: int, spec: dict, session_id: str | None, outbox, stop) -> None:
    """One rank: runs the job; reports through ``outbox`` (rank 0's events and result, any rank's failure)."""
    from engine.errors import Cancelled, RunFailed, SpecError
    from engine.protocols.requests import run_requests

    def emit(kind: str, **fields) -> None:
        if rank == 0:
            outbox.put(("event", (kind, json_safe(fields))))

    cpu = spec["device"] == "cpu"
    try:
        with rank_of(rank, world, port, cpu) as parallel:
            device = "cpu" if cpu else str(parallel.device)
            result = run_requests({**spec, "device": device}, emit, stop.is_set, session_id=session_id)
        if rank == 0:
            outbox.put(("result", json_safe(result)))
    except Cancelled as exc:
        outbox.put(("cancelled", str(exc) or "cancelled"))
    except (RunFailed, SpecError) as exc:
        outbox.put(("failed", f"rank {rank}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"))
    except BaseException as exc:
        traceback.print_exc()
        outbox.put(("failed", f"rank {rank}: internal error: {type(exc).__name__}: {exc}".splitlines()[0]))


def json_safe(document: dict) -> dict:
    """Plain JSON values only (numpy and torch scalars converted), to cross the process boundary."""
    return json.loads(dumps(document))
