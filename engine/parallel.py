"""What a rank of a ``--devices N`` job does (engine/protocols/parallel_run.py starts the ranks): data-parallel
over the Df and Dr batches, the ranks wired by accelerate (``PartialState``: gloo on CPUs, NCCL on CUDA devices).

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

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

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
