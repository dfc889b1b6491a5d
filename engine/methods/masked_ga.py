"""Masked GA: gradient ascent on Df restricted to the weights that matter more for Df than for Dr, with
descent on Dr. A SalUn-style saliency-masked GA with MMUnlearner's saliency formula; it is NOT MMUnlearner
(engine/methods/mmunlearner.py): one mask over whatever the update target covers, made from Df against Dr,
and the ascent runs on every Df row. It was this workbench's `mmunlearner` until issue 20; the README's
earlier mask results were measured with it.

Saliency of each weight w, as MMUnlearner's released `data_process/SFRon.py` (Mask_Our):
    s(w) = (E_Df[g_w^2] + 1e-15) / (E_Dr[g_w^2] + 1e-15),   M = [s >= threshold]  (released: 1),
g the gradient of a batch's task loss (squared gradients averaged over batches: a diagonal Fisher); with
`mask_ratio` < 1, M also keeps only that fraction of the covered weights, the most salient. The mask is made
once per request, before its first step, from all of Df and a Dr sample of as many rows (at least 64).
Each step then descends
    gamma * M (.) grad(-l(Df)) + alpha * grad l(Dr)
(one optimizer step on the sum). A mask on single weights is not expressible through LoRA factors, so the
method trains the weights the update target covers (`update_weights`: under `llm` the language model's
projections themselves). It runs on every task (its only need is the task loss).
"""
from __future__ import annotations

import math

import torch

from engine.methods.base import Method

EPS = 1e-15
MIN_RETAIN_ROWS = 64


def saliency_masks(forget_fisher: list[torch.Tensor], retain_fisher: list[torch.Tensor], threshold: float,
                   ratio: float = 1.0) -> list[torch.Tensor]:
    """Boolean masks: (F_f + eps) / (F_r + eps) >= threshold and, for ratio < 1, a score among the
    floor(ratio * n) highest of all n weights (ties at the cut are kept)."""
    scores = [(f + EPS) / (r + EPS) for f, r in zip(forget_fisher, retain_fisher)]
    masks = [score >= threshold for score in scores]
    if ratio < 1.0 and scores:
        flat = torch.cat([score.flatten() for score in scores])
        keep = math.floor(ratio * flat.numel())
        cutoff = flat.topk(keep).values[-1] if keep else math.inf
        masks = [mask & (score >= cutoff) for mask, score in zip(masks, scores)]
    return masks


def squared_gradients(model, parameters: list, dataset, rows: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """E over batches of the squared gradient of the task loss, for each parameter (zeros where unused)."""
    sums = [torch.zeros_like(p, dtype=torch.float32) for p in parameters]
    chunks = rows.split(batch_size)
    for chunk in chunks:
        loss = model.task_loss(dataset.batch(chunk, model.device))
        for total, grad in zip(sums, torch.autograd.grad(loss, parameters, allow_unused=True)):
            if grad is not None:
                total += grad.float().pow(2) / len(chunks)
    return sums


def masked_ascent(forget_task: torch.Tensor, parameters: list, masks: list[torch.Tensor]) -> torch.Tensor:
    """A zero-valued term whose gradient is M (.) grad(-forget_task)."""
    grads = torch.autograd.grad(forget_task, parameters, allow_unused=True)
    term = sum(((p * (-g * m).to(p.dtype)).sum() for p, g, m in zip(parameters, grads, masks) if g is not None),
               torch.zeros((), device=forget_task.device))
    return term - term.detach()


class MaskedGA(Method):
    uses_forget = True
    uses_retain = True

    def trainable_parameters(self):
        return self.model.update_weights()

    def before_training(self, forget, retain) -> None:
        self.weights = self.trainable_parameters()
        p = self.params
        forget_rows = torch.arange(len(forget))
        retain_rows = torch.randperm(len(retain), generator=self.generator)[:max(len(forget), MIN_RETAIN_ROWS)]
        forget_fisher = squared_gradients(self.model, self.weights, forget, forget_rows, p["batch_size"])
        retain_fisher = squared_gradients(self.model, self.weights, retain, retain_rows, p["batch_size"])
        self.masks = saliency_masks(forget_fisher, retain_fisher, p["mask_threshold"], p["mask_ratio"])
        self.masked_share = float(sum(m.sum() for m in self.masks)) / max(sum(m.numel() for m in self.masks), 1)

    def losses(self, forget, retain):
        p = self.params
        forget_task = self.model.task_loss(forget)
        ascent = masked_ascent(forget_task, self.weights, self.masks)
        retain_task = self.model.task_loss(retain)
        forget_term = p["forget_weight"] * (ascent - forget_task.detach())  # value -l(Df), gradient masked
        total = forget_term + p["retain_weight"] * retain_task
        return {"total": total, "forget_task": forget_task.detach(), "retain_task": retain_task,
                "mask_share": torch.tensor(self.masked_share)}
