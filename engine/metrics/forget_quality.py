"""Forget quality as TOFU and OpenUnlearning define it: the p-value of the two-sample Kolmogorov-Smirnov
test between a per-example statistic of the forget set under the unlearned model and under Retrain.

OpenUnlearning (`src/evals/metrics/privacy.py`, `forget_quality`) computes
`scipy.stats.ks_2samp(forget_stats, retain_model_stats).pvalue` over the forget set's truth ratios; we
use the per-example Df losses the evaluation computes for the MIA attack (the run result's
`df_scores`). A high p-value (up to 1 for identical samples) means the method's Df distribution cannot
be told from Retrain's; a tiny one means it can. Pure numpy/scipy: no torch, so the shell may call it
(through engine.api) to score stored sessions against each other.
"""
from __future__ import annotations

from typing import Sequence

from scipy.stats import ks_2samp


def forget_quality(scores: Sequence[float], reference: Sequence[float]) -> float | None:
    """The two-sided KS p-value between `scores` (the method's per-example Df scores) and `reference`
    (Retrain's on the same Df); None when either sample is empty."""
    if len(scores) == 0 or len(reference) == 0:
        return None
    return float(ks_2samp(list(map(float, scores)), list(map(float, reference))).pvalue)
