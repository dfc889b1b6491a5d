"""SimNPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM
Unlearning", arXiv 2410.07163): NPO without the reference model, on the length-normalised log-likelihood,
with a reward margin, plus an optional retain term:

    L = gamma * E_Df [ -(2/beta) log sigmoid( -(beta/|y|) log pi(y|x) - beta*delta ) ] + alpha * l(Dr)

(the paper's margin gamma_paper = beta*delta). As OpenUnlearning's SimNPO: the forget term is
-(2/beta) log sigmoid(beta * (NLL/|y| - delta)). Defaults beta 4.5, delta 0, gamma 0.125, alpha 1
(OpenUnlearning configs/trainer/SimNPO.yaml, from the authors' TOFU config). On image-text models
log pi(y|x) is the log-likelihood of the example's own pair matching, one decision (|y| = 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.methods.base import Method


def simnpo_loss(mean_log_prob: torch.Tensor, beta: float, delta: float) -> torch.Tensor:
    """-(2/beta) * mean log sigmoid(beta * (-mean_log_prob - delta)); mean_log_prob = log pi(y|x) / |y|."""
    return -(2.0 / beta) * F.logsigmoid(beta * (-mean_log_prob - delta)).mean()


class SimNPO(Method):
    uses_forget = True
    uses_retain = True

    def losses(self, forget, retain):
        p = self.params
        simnpo = simnpo_loss(self.model.mean_log_likelihood(forget), p["simnpo_beta"], p["simnpo_delta"])
        retain_task = self.model.task_loss(retain)
        total = p["simnpo_weight"] * simnpo + p["retain_weight"] * retain_task
        return {"total": total, "simnpo": simnpo, "retain_task": retain_task}
