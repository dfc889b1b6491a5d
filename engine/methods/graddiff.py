"""GradDiff (gradient difference; TOFU's "grad_diff", OpenUnlearning's GradDiff): ascend the task loss on
Df while descending it on Dr,

    L = gamma * (-l(Df)) + alpha * l(Dr),

l the task loss (LMMs: the mean answer-token NLL; image-text models: the family's contrastive / ITM /
cross-entropy loss). Defaults gamma = alpha = 1 (OpenUnlearning configs/trainer/GradDiff.yaml; Liu et al.
2022, Maini et al. 2024). With alpha = 0 it is NegGrad.
"""
from __future__ import annotations

from engine.methods.base import Method


class GradDiff(Method):
    uses_forget = True
    uses_retain = True

    def losses(self, forget, retain):
        forget_task = self.model.task_loss(forget)
        retain_task = self.model.task_loss(retain)
        total = -self.params["forget_weight"] * forget_task + self.params["retain_weight"] * retain_task
        return {"total": total, "forget_task": forget_task, "retain_task": retain_task}
