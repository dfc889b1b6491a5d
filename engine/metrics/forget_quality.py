"""Forget quality on independent samples: the p-value of the two-sample Kolmogorov-Smirnov test between
one statistic per deletion UNIT of Df under the unlearned model and the same statistic under Retrain.

What it is here: for each unit of Df (an image with all its captions, an image pair or a graph with its
statements) the mean of the per-example task losses of its examples (`unit_means`; the losses are the
adapter's `example_losses`, the ones the MIA attack reads, stored in the run document as
`df_unit_scores`, one per unit in Df's unit order), and `ks_2samp(method's, Retrain's).pvalue` over those
values. A study reports it per seed, and across seeds their median with each seed's value, never a mean.

What OpenUnlearning does (`src/evals/metrics/privacy.py`, `forget_quality`): `scipy.stats.ks_2samp(
forget_tr_stats, retain_tr_stats).pvalue`, the statistics being TOFU's truth ratio of each forget-set
question (the length-normalised probability of perturbed wrong answers over that of the paraphrased
correct answer), one per question, under the unlearned model and under the retain-only model. Differences,
deliberate: (1) the statistic is the unit's mean task loss, not a truth ratio (our tasks have no
paraphrased or perturbed answers); (2) one sample per deletion unit, not per example: a unit's five
captions share an image and are strongly correlated, and counting them as five samples inflates n so
that p-values come out far too small (the earlier per-pair version reported 1e-32); TOFU counts each
question once. As in TOFU, a high p-value (up to 1 for identical samples) means the method's Df
distribution cannot be told from Retrain's; a tiny one means it can. With few units (n < ~8) the test has
little power: read the p-value beside n.

Pure numpy/scipy: no torch, so the shell may call it (through engine.api) to score stored sessions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import ks_2samp


def unit_means(values: Sequence[float], units: Sequence[int]) -> list[float]:
    """One value per unit: the mean of ``values`` (one per example) over the examples of each unit
    (``units[i]`` = the unit of example i), the units in the order they first appear."""
    values, units = np.asarray(values, dtype=float), np.asarray(units)
    if values.shape != units.shape:
        raise ValueError(f"{len(values)} example values for {len(units)} unit labels")
    order = list(dict.fromkeys(units.tolist()))
    return [float(values[units == unit].mean()) for unit in order]


def forget_quality(scores: Sequence[float], reference: Sequence[float]) -> float | None:
    """The two-sided KS p-value between `scores` (the method's per-unit Df statistics) and `reference`
    (Retrain's on the same Df units); None when either sample is empty."""
    if len(scores) == 0 or len(reference) == 0:
        return None
    return float(ks_2samp(list(map(float, scores)), list(map(float, reference))).pvalue)
