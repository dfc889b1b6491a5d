"""Which metrics a person reads first: every table (the monitor's, Compare's, the study screens', the report's,
`replay --headless`) lists the task's headline metrics (the Df/Dr AUC, the test headline, Df's and Dr's
headlines, the people data's forget and retain accuracies and MMBench retention, the gaps to Retrain, forget
quality, MIA), then the holdout sets' headlines, then the rest, and recall at single k values last (a holdout
set's too). Pure Python."""
from __future__ import annotations

from typing import Iterable

from sessions.series import is_headline_metric

HEADLINES = ("df_dr_auc", "test.r_mean", "test.accuracy", "df.r_mean", "df.accuracy", "dr.r_mean", "dr.accuracy",
             "forget.image", "forget.text", "retain.image",
             "retain.text", "mmbench_retention", "auc_gap_to_retrain", "test_gap_to_retrain", "forget_quality",
             "mia.df_member_rate", "mia.auc", "mia.test_member_rate")


def metric_rank(name: str) -> tuple[int, int, str]:
    """Sort key: the headlines in HEADLINES order, then the holdout sets' metrics (`holdout`,
    `holdout_identity`, `holdout_association`), then other headline-like metrics, then recall at k (the holdout
    sets' after the others), then what a run cost (`cost.*`, a study's columns); alphabetical within a group."""
    if name in HEADLINES:
        return 0, HEADLINES.index(name), name
    group = name.split(".")[0]
    if group == "cost":
        return 4, 0, name
    holdout = group.startswith("holdout")
    if is_headline_metric(name):
        return (1 if holdout else 2), 0, name
    return 3, int(holdout), name


def headline_first(names: Iterable[str]) -> list[str]:
    """``names`` (each once) with the headlines first (see ``metric_rank``)."""
    return sorted(set(names), key=metric_rank)
