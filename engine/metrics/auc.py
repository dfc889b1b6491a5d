"""Df/Dr AUC (ANCHORS.md section 2): how well the unlearned model's own-pair scores tell Df from Dr.

Score every Df example, score Dr in 5 chunks of |Df| examples, `roc_auc_score` per chunk with Df
labelled 0 and Dr labelled 1, report the mean. Higher = the deleted data stands apart = better.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

CHUNKS = 5


def df_dr_auc(df_scores: np.ndarray, dr_scores_chunks: list[np.ndarray]) -> float:
    aucs = []
    for chunk in dr_scores_chunks:
        labels = np.concatenate([np.zeros(len(df_scores)), np.ones(len(chunk))])
        aucs.append(roc_auc_score(labels, np.concatenate([df_scores, chunk])))
    return float(np.mean(aucs))


def dr_chunks(n_retain: int, n_forget: int, rng: np.random.Generator, chunks: int = CHUNKS) -> list[np.ndarray]:
    """Indices of `chunks` disjoint Dr chunks of |Df| each (with replacement across chunks if Dr is short)."""
    if n_retain >= chunks * n_forget:
        order = rng.permutation(n_retain)
        return [order[i * n_forget : (i + 1) * n_forget] for i in range(chunks)]
    return [rng.choice(n_retain, size=n_forget, replace=n_retain < n_forget) for _ in range(chunks)]
