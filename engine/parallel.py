"""What a rank of a ``--devices N`` job does (engine/execution/parallel_run.py starts the ranks): data-parallel
over the Df and Dr batches, the ranks wired by accelerate (``PartialState``: gloo on CPUs, NCCL on CUDA devices).

Every rank draws the same global batch from the same seeded order and takes its own contiguous shard
of it (the global batch sizes are those of a single-process run); after each backward pass the
gradients are averaged over the ranks, so with losses that are means over their examples the update
is the single-process update on the global batch. Losses that compare examples within a batch (a
contrastive loss, L_MD's drawn mismatches) see the rank's shard, as under DDP. The reported loss
terms are the ranks' average, stop requests are agreed collectively, and every rank evaluates (the
same weights give the same numbers); only rank 0's events reach the session and only rank 0 writes
checkpoints. The original model is prepared before the ranks start, so they only read the cache.

``--strategy ddp`` (the default) keeps the whole model on every rank and averages the gradients by one
all-reduce after ``backward`` rather than by wrapping the model in DDP, because the adapters call the
model's parts (vision tower, text tower, heads), not its ``forward``. ``--strategy fsdp`` shards the
weights, gradients and AdamW state over the ranks with FSDP2 while the loop trains (``ShardedModel``).
"""
from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from engine.errors import RunFailed

_current: "DataParallel | None" = None


@dataclass
class DataParallel:
    rank: int
    world: int
    device: torch.device
    strategy: str = "ddp"  # or "fsdp" (engine.spec.placement.STRATEGIES)
    # --strategy fsdp: (parameter values this rank holds, the model's), as the loop last sharded it
    held: tuple[int, int] | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch's rows."""
        return indices.tensor_split(self.world)[self.rank]

    def average_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        if not parameters:
            return
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
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)  # NCCL reduces only CUDA tensors
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def shard_model(self, model: torch.nn.Module, trainable: list[torch.nn.Parameter]) -> "ShardedModel":
        sharded = ShardedModel(model, trainable, self)
        self.held = sharded.held()
        return sharded


def current() -> DataParallel | None:
    """The rank this process is, inside a ``--devices N`` job; None in a single-process job."""
    return _current


def is_main() -> bool:
    return _current is None or _current.main


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def leave_rank(outbox=None) -> None:
    """End a rank process once what it reports is out: ``outbox`` (a multiprocessing queue) flushed, then
    ``os._exit``, skipping the interpreter's teardown. torch's C++ side now and then aborted a finished gloo rank
    there ("terminate called without an active exception", exit -6: a thread still joinable when its owner was
    destroyed), after the work and its results were done. How the work went is in what the rank reported."""
    if outbox is not None:
        outbox.close()
        outbox.join_thread()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def rank_threads(world: int) -> int:
    """The torch threads each of ``world`` CPU ranks computes with: the machine's cores shared out."""
    return max(1, (os.cpu_count() or 1) // world)


@contextmanager
def rank_of(rank: int, world: int, port: int, cpu: bool, strategy: str = "ddp") -> Iterator[DataParallel]:
    """Be rank ``rank`` of ``world`` while inside: the process group joined through accelerate (gloo for
    CPU ranks, NCCL for CUDA ones, rank r on cuda:r), and ``current()`` set for the loop."""
    global _current
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(rank_threads(world))
    from accelerate import PartialState

    state = PartialState(cpu=cpu, backend="gloo" if cpu else "nccl")
    _current = DataParallel(rank, world, state.device, strategy)
    try:
        yield _current
    finally:
        _current = None
        if dist.is_initialized():
            dist.destroy_process_group()


# --- --strategy fsdp ---------------------------------------------------------------------------------
def is_sharded(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a DTensor (an FSDP shard); False where torch has no DTensor."""
    if not dist.is_available() or not dist.is_initialized():  # no process group, no shards (and no import)
        return False
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:
        return False
    return isinstance(tensor, DTensor)


def repeated_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The elements of the model's outermost ModuleLists that hold parameters, none of them also registered
    outside the element (a tied weight): its transformer layers, GCN layers, fusion layers, in module order."""
    blocks: list[torch.nn.Module] = []

    def visit(module: torch.nn.Module) -> None:
        for child in module.children():
            if isinstance(child, torch.nn.ModuleList):
                blocks.extend(block for block in child if next(block.parameters(), None) is not None)
            else:
                visit(child)

    visit(model)
    everywhere = registrations(model)
    return [block for block in blocks if all(everywhere[i] == n for i, n in registrations(block).items())]


def registrations(module: torch.nn.Module) -> dict[int, int]:
    """How many times each parameter (by id) is registered in ``module``'s tree."""
    counts: dict[int, int] = {}
    for part in module.modules():
        for parameter in part._parameters.values():
            if parameter is not None:
                counts[id(parameter)] = counts.get(id(parameter), 0) + 1
    return counts


class StepModule(torch.nn.Module):
    """The root FSDP module: its forward is one whole loss computation (``compute``), so the parameters outside
    the repeated blocks (embeddings, projections, heads) are gathered for the whole of it, whichever of the
    model's parts and parameters the adapter reaches for. The batches reach it inside ``compute``, not as
    arguments: on CUDA, FSDP's root moves its tensor arguments to the device, the batches' host-side example
    indices too."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return compute()


def fully_shard_api():
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:
        raise RunFailed(f"--strategy fsdp needs torch 2.6 or newer (FSDP2); this engine has torch "
                        f"{torch.__version__}: upgrade torch, or use --strategy ddp") from None
    return fully_shard


class ShardedModel:
    """``--strategy fsdp``: the model's parameters sharded over the ranks with FSDP2 while the loop trains, so
    each rank holds about 1/N of the weights, of their gradients and of the AdamW state.

    Each repeated block (a transformer layer) is one FSDP group, gathered only while its own forward and
    backward run; the rest of the model is the group of ``StepModule``, gathered for the whole step. Scalars
    (CLIP's logit_scale), which FSDP2 cannot shard, stay whole on every rank and have their gradients
    averaged as under ddp. The reduce-scatter averages the gradients over the ranks, so the update is the
    single-process update on the global batch, as under ddp.

    Outside the training steps (an evaluation, the end of the loop) the model is plain again: ``gather``
    writes the full weights back into the model's own Parameter objects, which the method, the guard and
    the checkpoint writer hold, and takes FSDP off the modules; ``shard`` puts it back on, the optimizer's
    state carried over to the new shards.
    """

    def __init__(self, model: torch.nn.Module, trainable: list[torch.nn.Parameter], parallel: DataParallel):
        from torch.distributed.device_mesh import init_device_mesh

        self.fully_shard = fully_shard_api()
        self.mesh = init_device_mesh(parallel.device.type, (parallel.world,))
        self.root = StepModule(model)
        # every place a parameter is registered (a tied one has several), in module order: the same on every rank
        self.slots = [(module, name, parameter) for module in model.modules()
                      for name, parameter in module._parameters.items() if parameter is not None]
        self.originals = list({id(p): p for _, _, p in self.slots}.values())
        known = {id(p) for p in self.originals}
        if any(id(p) not in known for p in trainable):
            raise RunFailed("--strategy fsdp shards the model's own parameters; this method trains parameters "
                            "outside the model: use --strategy ddp")
        self.trainable_ids = [id(p) for p in trainable]
        self.whole = [p for p in self.originals if p.ndim == 0]  # FSDP2 cannot shard a scalar
        self.total = sum(p.numel() for p in self.originals)
        self.blocks = repeated_blocks(model)
        self.optimizer: torch.optim.Optimizer | None = None
        self.shards: dict[int, torch.nn.Parameter] = {}  # id of an original -> its registered FSDP parameter
        self.active = False  # FSDP on the modules (between ``shard`` and ``gather``)
        self.shard()

    @property
    def trainable(self) -> list[torch.nn.Parameter]:
        """The trained parameters as the optimizer steps them: this rank's shards (and the whole scalars)."""
        return [self.shards[i] for i in self.trainable_ids]

    @property
    def whole_trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.whole if p.requires_grad]

    def held(self) -> tuple[int, int]:
        """(parameter values this rank holds, the model's parameter values)."""
        local = sum(p.to_local().numel() if is_sharded(p) else p.numel() for p in self.shards.values())
        return local, self.total

    def losses(self, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return self.root(compute)

    def shard(self) -> None:
        ignored = set(self.whole)
        for block in self.blocks:
            self.fully_shard(block, mesh=self.mesh, ignored_params=ignored)
        self.fully_shard(self.root, mesh=self.mesh, ignored_params=ignored)
        self.active = True
        previous = self.shards
        self.shards = {id(original): module._parameters[name] for module, name, original in self.slots}
        for original in self.originals:
            if self.shards[id(original)] is not original:  # FSDP copied it into shards: free the full copy
                original.data = original.data.new_empty(0)
        if previous and self.optimizer is not None:
            moved = {id(previous[i]): self.shards[i] for i in previous}
            state = self.optimizer.state
            for group in self.optimizer.param_groups:
                group["params"] = [moved.get(id(p), p) for p in group["params"]]
            carried = {moved.get(id(p), p): value for p, value in state.items()}
            state.clear()
            state.update(carried)

    def gather(self) -> None:
        """The full weights back in the model's own parameters (an all-gather per parameter) and FSDP off."""
        modules = [*self.blocks, self.root]
        with torch.no_grad():
            for module in modules:
                module.reshard()
            full: dict[int, torch.Tensor] = {}
            for original in self.originals:
                registered = self.shards[id(original)]
                if registered is not original:
                    full[id(original)] = registered.full_tensor()
        try:
            for module in modules:
                take_off_fsdp(module)
        except AttributeError as error:  # another torch's FSDP2 keeps its hooks elsewhere
            raise RunFailed(f"--strategy fsdp could not take FSDP off the model after training on torch "
                            f"{torch.__version__} ({error}); use --strategy ddp") from None
        self.active = False
        for module, name, original in self.slots:
            if id(original) in full:
                original.data = full[id(original)]
            module._parameters[name] = original


def take_off_fsdp(module: torch.nn.Module) -> None:
    """Undo ``fully_shard(module)`` but for its parameters (``ShardedModel.gather`` puts those back): the forward
    hooks, the state-dict hooks, the class and the composable-API state. FSDP2 offers no public way to do this;
    the attributes are those of torch 2.13's FSDP2 (the fsdp test runs this)."""
    import importlib

    from torch.distributed._composable_state import _module_state_mapping

    # by its module path: the package's own name ``contract`` is the decorator, not this module
    contract = importlib.import_module("torch.distributed._composable.contract")

    state = module._get_fsdp_state()
    state._pre_forward_hook_handle.remove()
    state._post_forward_hook_handle.remove()
    groups = state.__dict__.get("_fsdp_param_groups")
    if groups is None:
        groups = [g for g in (state._fsdp_param_group,) if g is not None]
    for group in groups:
        for handle in (*group._module_to_pre_save_state_dict_hook_handle.values(),
                       *group._module_to_pre_load_state_dict_hook_handle.values()):
            handle.remove()
        for fsdp_param in group.fsdp_params:
            fsdp_param._post_load_hook_handle.remove()
    module.__class__ = type(module).__mro__[getattr(type(module), "_orig_cls_mro_index", 2)]
    for key in (contract.STATE_KEY, contract.REGISTRY_KEY):
        module.__dict__.pop(key, None)
    _module_state_mapping.pop(module, None)
    for managed in module.modules():
        managed.__dict__.pop("_is_fsdp_managed_module", None)
        managed.__dict__.pop("_fsdp_use_orig_params", None)


def clip_gradients(parameters: list[torch.nn.Parameter], max_norm: float) -> None:
    """``clip_grad_norm_`` over FSDP shards and whole parameters together: torch's own stacks the norms of
    one kind of tensor, so the shards' norm (summed over the ranks) and the whole ones' are taken apart."""
    with_grads = [p for p in parameters if p.grad is not None]
    kinds = [[p for p in with_grads if is_sharded(p)], [p for p in with_grads if not is_sharded(p)]]
    kinds = [kind for kind in kinds if kind]
    if not kinds:
        return
    norms = []
    for kind in kinds:
        norm = torch.nn.utils.get_total_norm([p.grad for p in kind])
        norms.append(norm.full_tensor() if is_sharded(norm) else norm)
    total = torch.linalg.vector_norm(torch.stack(norms))
    for kind in kinds:
        torch.nn.utils.clip_grads_with_norm_(kind, max_norm, total)
