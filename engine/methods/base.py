"""A method only says what its loss terms are; the loop (engine/loop.py) does everything else."""
from __future__ import annotations

from typing import Callable

import torch


class Method:
    """`losses(forget, retain)` returns {"total": t, term: t, ...}; the loop logs every term.

    `model` is the adapter being trained (f'), `original` a frozen copy of the model before this
    request (f), present when `needs_original` is set; `generator` the CPU generator for its draws.
    """

    uses_forget = False
    uses_retain = False
    needs_original = False
    starts_from = "original"  # or "init": the starting weights before the original was trained
    reads_unimodal = False  # its batches must carry the text-only view (f_T of an LMM's question)

    def __init__(self, params: dict, model, original=None, generator: torch.Generator | None = None):
        self.params = params
        self.model = model
        self.original = original
        # the method's own random draws (permutations, noise): seeded by the run, never the global RNG
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    @classmethod
    def needs_retain(cls, params: dict) -> bool:
        """Whether the method with `params` trains on Dr (preflight refuses a run that leaves it none)."""
        return cls.uses_retain

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return self.model.parameter_groups()["all"]

    def losses(self, forget: dict | None, retain: dict | None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def before_training(self, forget, retain) -> None:
        """A hook for methods that look at the request's whole sets (`len` + `.batch(indices, device)`, None
        when unused) before the first step (MMUnlearner's saliency mask); the trainable parameters already
        require gradients."""

    def after_training(self, n_train: int, steps: int) -> None:
        """A hook for methods whose last step is not a gradient step (Descent-to-Delete's noise); `steps` is the
        number of optimizer steps the loop took on this request."""

    def resolved(self) -> dict:
        """What the method chose for defaults it sizes to the model (RMU's layer and coefficient); the run's
        document records it as `resolved`."""
        return {}

    def caveats(self) -> list[str]:
        """What the run should warn about how the method ran on this request (one line each; the protocol logs
        them as warnings): MultiDelete's L_MD on batches of one unit."""
        return []

    def record(self) -> dict:
        """What the request's document records about how the method ran (`method_record`: MMUnlearner's masks,
        Descent-to-Delete's noise); {} for none."""
        return {}


def frozen_forward(compute: Callable[[dict], torch.Tensor], batch: dict) -> torch.Tensor:
    """What the frozen original gives `batch`, in inference mode (no autograd bookkeeping; bf16 under the loop's
    CUDA autocast). The clone makes it an ordinary tensor, which a loss may save for its backward."""
    with torch.inference_mode():
        values = compute(batch)
    return values.clone()


class OriginalTargets:
    """The frozen original's per-example outputs, computed once per request and read back at every step.

    f never changes during a request and is in eval mode (no dropout), and batches carry no random
    augmentation, so what f gives an example is the same at every step. A batch the loop drew carries
    `example_index` (its rows' positions in their set, engine/loop.py); the first batch holding a row is
    computed whole, exactly as without the cache (the loop's first pass over a set meets every row once), and
    later batches of rows already met are read back by index. A batch without `example_index` is computed.
    What depends on the step (a permutation drawn per batch) is computed from these rows by the caller.
    """

    def __init__(self):
        self.tables: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # name -> (rows, filled: a CPU bool mask)

    def rows(self, name: str, batch: dict, compute: Callable[[dict], torch.Tensor]) -> torch.Tensor:
        """`compute(batch)` (the original's output for each row of the batch) under a name naming the set too."""
        index = batch.get("example_index")
        if index is None:
            return frozen_forward(compute, batch)
        values, filled = self.tables.get(name, (None, torch.zeros(0, dtype=torch.bool)))
        if len(filled) > int(index.max()) and bool(filled[index].all()):
            return values[index.to(values.device, non_blocking=True)]
        fresh = frozen_forward(compute, batch)
        if values is None or len(filled) <= int(index.max()):
            size = max(int(index.max()) + 1, 2 * len(filled))  # grows by doubling: a set's size is not known here
            grown = fresh.new_zeros((size, *fresh.shape[1:]))
            grown_filled = torch.zeros(size, dtype=torch.bool)
            if values is not None:
                grown[: len(filled)], grown_filled[: len(filled)] = values, filled
            values, filled = grown, grown_filled
        values[index.to(values.device, non_blocking=True)] = fresh
        filled[index] = True
        self.tables[name] = (values, filled)
        return fresh


def view(batch: dict, prefix: str) -> dict:
    """The batch with another view's sequences (`text_`, `refusal_`: the same rows and images, other tokens)."""
    return {**batch, **{key: batch[prefix + key] for key in ("input_ids", "attention_mask", "labels")}}
