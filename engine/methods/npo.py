"""NPO as OpenUnlearning's trainer (`src/trainer/unlearn/npo.py`, `compute_dpo_loss` in `trainer/utils.py`):

    L = gamma * -(2/beta) * E_Df log sigmoid(-beta * (log pi_theta(y|x) - log pi_ref(y|x))) + alpha * l(Dr)

ref = the model before the request, gamma 1, l the retain task loss (NLL), alpha = `--retain-weight` (default 1,
OpenUnlearning configs/trainer/NPO.yaml), beta = `--npo-beta` (default 0.1, the same config).
`--npo-reduction` says how a sequence's log-ratio is formed from its answer tokens: `sum` (default) sums their
log-probabilities, as OpenUnlearning's `compute_batch_nll`; `mean` averages them (log pi(y|x) / |y|), as
MLLMU-Bench's `baselines/NPO.py` reads `outputs.loss`. MLLMU-Bench's variant is `--npo-reduction mean
--npo-beta 0.4 --retain-weight 0` except that (1) its reference is an oracle model, ours the model before the
request, and (2) its ratio is one batch-level token mean (`outputs.loss` of the batch), ours one per row.

On image-text models log pi(y|x) is the log-likelihood the model gives the example's own pair being a match
(ITM for BLIP, the cosine through the ITC temperature for CLIP): one decision, so sum and mean agree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.methods.base import Method


def npo_loss(log_prob: torch.Tensor, ref_log_prob: torch.Tensor, beta: float) -> torch.Tensor:
    return -(2.0 / beta) * F.logsigmoid(-beta * (log_prob - ref_log_prob)).mean()


class NPO(Method):
    uses_forget = True
    uses_retain = True  # the retain NLL (weight 0 drops the term, and the retain batches with it)
    needs_original = True

    def __init__(self, params, model, original=None, generator=None):
        super().__init__(params, model, original, generator)
        self.uses_retain = self.needs_retain(params)

    @classmethod
    def needs_retain(cls, params: dict) -> bool:
        return params.get("retain_weight", 1.0) > 0

    def sequence_log_prob(self, adapter, batch: dict) -> torch.Tensor:
        if self.params.get("npo_reduction", "sum") == "mean":
            return adapter.mean_log_likelihood(batch)
        return adapter.log_likelihood(batch)

    def losses(self, forget, retain):
        with torch.no_grad():
            reference = self.sequence_log_prob(self.original, forget)
        npo = npo_loss(self.sequence_log_prob(self.model, forget), reference, self.params["npo_beta"])
        weight = self.params.get("retain_weight", 1.0)
        if weight == 0 or retain is None:
            return {"total": npo, "npo": npo}
        retain_task = self.model.task_loss(retain)
        return {"total": npo + weight * retain_task, "npo": npo, "retain_task": retain_task}
