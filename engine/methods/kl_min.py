"""KL_Min as MLLMU-Bench (`baselines/KL_Min.py`) and MMUnlearner (`baselines/MLLMU_KL_Min.py`) release
it: gradient ascent on the forget batch; on the retain batch the retain NLL plus a KL to the model before the
request,

    L = -l(Df) + l(Dr) + KL(Dr),   KL = F.kl_div(log_softmax(current), softmax(original), reduction="batchmean")

`batchmean` divides the KL summed over every distribution of the batch by the batch size (`input.size(0)`):

- LMMs: the logits at EVERY position of each sequence ([B, L, V]: template, image tokens, question, answer
  and padding; `LmmAdapter.sequence_logits`), summed over positions and vocabulary, divided by B. The released
  code applies no attention mask to the KL, so right padding up to the batch's longest row counts; ours pads
  the same way (each batch trimmed to its longest row, engine/data/people_batches.py) and counts it too.
- image-text models (the released code is LMM-only; ours): the adapter's `retention_logits` rows (retrieval:
  each image over the batch's captions and each caption over the batch's images; classification: each
  example's class distribution), the KL summed over those rows and classes, divided by B, the examples.

Deliberate differences: (1) one optimiser step on the sum of the three terms, where the released loops take
a forget step and a retain step in turn (MLLMU-Bench: all forget batches, then all retain batches; MMUnlearner:
interleaved); (2) l is the workbench's task loss (LMMs: the answer-token NLL, each row's mean, then the batch
mean), where the released `outputs.loss` is the token mean over every non-pad label of the batch, prompt
included (their collate masks only padding). GA+KLR (engine/methods/ga_klr.py) is the other objective: no
retain NLL, KL averaged over the answer tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.methods.base import Method


def kl_batchmean(original_logits: torch.Tensor, logits: torch.Tensor, batch_size: int) -> torch.Tensor:
    """sum over every distribution and class of KL(softmax(original) || softmax(model)), / batch_size."""
    total = F.kl_div(F.log_softmax(logits.float(), dim=-1), F.softmax(original_logits.float(), dim=-1),
                     reduction="sum")
    return total / batch_size


def all_logits(model, batch: dict) -> torch.Tensor:
    """What KL_Min compares: an LMM's logits at every position, else the adapter's retention rows."""
    if hasattr(model, "sequence_logits"):
        return model.sequence_logits(batch)
    return model.retention_logits(batch)[0]


class KLMin(Method):
    uses_forget = True
    uses_retain = True
    needs_original = True

    def losses(self, forget, retain):
        forget_task = self.model.task_loss(forget)
        retain_task = self.model.task_loss(retain)
        with torch.no_grad():
            target = all_logits(self.original, retain)
        kl = kl_batchmean(target, all_logits(self.model, retain), retain["input_ids"].shape[0])
        total = -forget_task + retain_task + self.params["kl_weight"] * kl
        return {"total": total, "forget_task": forget_task, "retain_task": retain_task, "kl": kl}
