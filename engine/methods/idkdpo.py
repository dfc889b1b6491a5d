"""IdkDPO (TOFU's preference optimisation with "I don't know" answers, as OpenUnlearning's DPO trainer on
its idk data): direct preference optimisation (Rafailov et al. 2023) with the refusal preferred ("win") over
the true answer ("lose") on each forget question, plus the task on Dr,

    L = gamma * E_Df [ -(2/beta) log sigmoid( beta * (r_win - r_lose) ) ] + alpha * l(Dr),
    r = log pi(y|x) - log pi_ref(y|x)  (sequence log-probabilities; ref = the model before the request).

Defaults beta 0.1, gamma = alpha = 1 (OpenUnlearning configs/trainer/DPO.yaml). The refusal answers come
from the data (the task provides "refusals").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.methods.base import Method, view


def dpo_loss(win_log_ratio: torch.Tensor, lose_log_ratio: torch.Tensor, beta: float) -> torch.Tensor:
    """-(2/beta) * mean log sigmoid(beta * (win - lose)), each a log pi - log pi_ref."""
    return -(2.0 / beta) * F.logsigmoid(beta * (win_log_ratio - lose_log_ratio)).mean()


class IdkDPO(Method):
    uses_forget = True
    uses_retain = True
    needs_original = True

    def losses(self, forget, retain):
        win, lose = view(forget, "refusal_"), forget
        with torch.no_grad():
            win_ref, lose_ref = self.original.log_likelihood(win), self.original.log_likelihood(lose)
        dpo = dpo_loss(self.model.log_likelihood(win) - win_ref, self.model.log_likelihood(lose) - lose_ref,
                       self.params["dpo_beta"])
        retain_task = self.model.task_loss(retain)
        total = self.params["forget_weight"] * dpo + self.params["retain_weight"] * retain_task
        return {"total": total, "dpo": dpo, "retain_task": retain_task}
