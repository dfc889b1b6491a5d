"""A method only says what its loss terms are; the loop (engine/loop.py) does everything else."""
from __future__ import annotations

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

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return self.model.parameter_groups()["all"]

    def losses(self, forget: dict | None, retain: dict | None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def before_training(self, forget, retain) -> None:
        """A hook for methods that look at the request's whole sets (`len` + `.batch(indices, device)`, None
        when unused) before the first step (MMUnlearner's saliency mask); the trainable parameters already
        require gradients."""

    def after_training(self, n_train: int) -> None:
        """A hook for methods whose last step is not a gradient step (Descent-to-Delete's noise)."""


def view(batch: dict, prefix: str) -> dict:
    """The batch with another view's sequences (`text_`, `refusal_`: the same rows and images, other tokens)."""
    return {**batch, **{key: batch[prefix + key] for key in ("input_ids", "attention_mask", "labels")}}
