"""GA+KLR as PULSE writes it: -task loss on Df + lambda * KL(p_original || p_model) on Dr, the KL averaged over
the retained distributions; no retain NLL. Not MLLMU-Bench's / MMUnlearner's KL_Min, which adds the retain NLL
and sums the KL over every position and the vocabulary, / batch size (engine/methods/kl_min.py).

The adapter says over which distributions (`retention_logits`): on image-text models each image over
the batch's captions and each caption over the batch's images; on LMMs the next-token distribution at
the answer tokens only (prompt and padding masked out).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.methods.base import Method


def kl_to_original(original_logits: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the (masked) rows of KL(softmax(original) || softmax(model))."""
    per_row = F.kl_div(
        F.log_softmax(logits.float(), dim=-1),
        F.log_softmax(original_logits.float(), dim=-1),
        log_target=True,
        reduction="none",
    ).sum(dim=-1)
    if mask is None:
        return per_row.mean()
    mask = mask.to(per_row.dtype)
    return (per_row * mask).sum() / mask.sum().clamp_min(1.0)


class GAKLR(Method):
    uses_forget = True
    uses_retain = True
    needs_original = True

    def losses(self, forget, retain):
        task = self.model.task_loss(forget)
        with torch.no_grad():
            target, mask = self.original.retention_logits(retain)
        logits, _ = self.model.retention_logits(retain)
        kl = kl_to_original(target, logits, mask)
        return {"total": -task + self.params["kl_weight"] * kl, "forget_task": task, "kl": kl}
