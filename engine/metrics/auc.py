"""Df/Dr AUC (ANCHORS.md section 2): how well the unlearned model's scores tell Df from Dr.

Score every Df example, score Dr in 5 chunks of |Df| examples, `roc_auc_score` per chunk with Df
labelled 0 and Dr labelled 1, report the mean. Higher = the deleted data stands apart = better.
Retrieval scores each example's own pair; classification scores with the class probabilities, one AUC
per class over the chunks, averaged (`class_df_dr_auc`).
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


def class_df_dr_auc(df_probs: np.ndarray, dr_probs_chunks: list[np.ndarray]) -> float:
    """Df/Dr AUC from class probabilities [n, C]: the mean over classes of each class probability's AUC.
    With two classes p_0 = 1 - p_1 makes the two AUCs complementary (their mean is always 0.5), so the
    positive class's probability alone is scored, as the released MultiDelete evaluation does for NLVR2. With 3
    or more classes, confident predictions give 0.5 whichever classes Df and Dr are given (each class's shares
    sum to 1): the mean reads how much less (or more) sure the model is of Df than of Dr, not what it answers."""
    classes = [1] if df_probs.shape[1] == 2 else range(df_probs.shape[1])
    return float(np.mean([df_dr_auc(df_probs[:, c], [chunk[:, c] for chunk in dr_probs_chunks]) for c in classes]))


def dr_chunks(n_retain: int, n_forget: int, rng: np.random.Generator, chunks: int = CHUNKS) -> list[np.ndarray]:
    """Indices of `chunks` disjoint Dr chunks of |Df| each (with replacement across chunks if Dr is short)."""
    if n_retain >= chunks * n_forget:
        order = rng.permutation(n_retain)
        return [order[i * n_forget : (i + 1) * n_forget] for i in range(chunks)]
    return [rng.choice(n_retain, size=n_forget, replace=n_retain < n_forget) for _ in range(chunks)]
