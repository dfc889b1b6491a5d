"""NPO: -(2/beta) * E_Df log sigmoid(-beta * (log pi_theta(y|x) - log pi_ref(y|x))), ref = model before the request.

On image-text models log pi(y|x) is the log-likelihood the model gives the example's own pair being
a match (ITM for BLIP, the cosine through the ITC temperature for CLIP).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.methods.base import Method


def npo_loss(log_prob: torch.Tensor, ref_log_prob: torch.Tensor, beta: float) -> torch.Tensor:
    return -(2.0 / beta) * F.logsigmoid(-beta * (log_prob - ref_log_prob)).mean()


class NPO(Method):
    uses_forget = True
    needs_original = True

    def losses(self, forget, retain):
        with torch.no_grad():
            reference = self.original.log_likelihood(forget)
        loss = npo_loss(self.model.log_likelihood(forget), reference, self.params["npo_beta"])
        return {"total": loss, "npo": loss}
