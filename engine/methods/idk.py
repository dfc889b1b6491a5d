"""IDK (TOFU, Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs"; OpenUnlearning's
IdkNLL): fine-tune each forget question towards a refusal answer ("I don't know" variants) and keep the
task on Dr,

    L = gamma * l(x_f, y_refusal) + alpha * l(Dr),

l the mean answer-token NLL. Defaults gamma = alpha = 1 (TOFU's idk loss sums the two). The refusal answers
come from the data (the task provides "refusals": each forget row's prompt with one of them).
"""
from __future__ import annotations

from engine.methods.base import Method, view


class IDK(Method):
    uses_forget = True
    uses_retain = True

    def losses(self, forget, retain):
        refusal = self.model.task_loss(view(forget, "refusal_"))
        retain_task = self.model.task_loss(retain)
        total = self.params["forget_weight"] * refusal + self.params["retain_weight"] * retain_task
        return {"total": total, "refusal": refusal, "retain_task": retain_task}
