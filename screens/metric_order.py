"""Which metrics a person reads first: every table of the screens lists the headline metrics (the Df/Dr
AUC, the test headline, the gaps to Retrain, forget quality, MIA) before the rest, and recall at single
k values last. Pure Python."""
from __future__ import annotations

from typing import Iterable

from sessions.series import is_headline_metric

HEADLINES = ("df_dr_auc", "test.r_mean", "test.accuracy", "auc_gap_to_retrain", "test_gap_to_retrain",
             "forget_quality", "mia.df_member_rate", "mia.auc", "mia.test_member_rate")


def metric_rank(name: str) -> tuple[int, int, str]:
    """Sort key: the headlines in HEADLINES order, then other headline-like metrics, then recall at k;
    alphabetical within a group."""
    if name in HEADLINES:
        return 0, HEADLINES.index(name), name
    return (1 if is_headline_metric(name) else 2), 0, name


def headline_first(names: Iterable[str]) -> list[str]:
    """``names`` (each once) with the headlines first (see ``metric_rank``)."""
    return sorted(set(names), key=metric_rank)
