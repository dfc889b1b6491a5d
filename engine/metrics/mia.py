"""Membership inference (our definition; ANCHORS.md section 2).

Per-example losses; a logistic-regression attack fitted with Dr as members (1) and Dtest as
non-members (0) on balanced samples. Reported: the share of Df the attack calls "member" and the AUC
of the attack's member probability on Df (1) against Dtest (0). Retrain is the reference.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.metrics import roc_auc_score


def _features(losses: np.ndarray) -> np.ndarray:
    clipped = np.clip(losses, -1e6, 1e6)
    return np.stack([clipped, np.log1p(np.maximum(clipped, 0.0))], axis=1)


def membership_inference(dr_losses, test_losses, df_losses, rng: np.random.Generator) -> dict[str, float]:
    n = min(len(dr_losses), len(test_losses))
    members = rng.choice(dr_losses, size=n, replace=False)
    non_members = rng.choice(test_losses, size=n, replace=False)
    x = _features(np.concatenate([members, non_members]))
    y = np.concatenate([np.ones(n), np.zeros(n)])
    attack = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced")).fit(x, y)
    df_member = attack.predict(_features(df_losses))
    probe = _features(np.concatenate([df_losses, test_losses]))
    labels = np.concatenate([np.ones(len(df_losses)), np.zeros(len(test_losses))])
    return {
        "df_member_rate": float(df_member.mean()),
        "auc": float(roc_auc_score(labels, attack.predict_proba(probe)[:, 1])),
        "attack_auc": float(roc_auc_score(y, attack.predict_proba(x)[:, 1])),
    }
