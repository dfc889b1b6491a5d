"""Membership inference (our definition; ANCHORS.md section 2).

Per-example losses; a logistic-regression attack fitted with Dr as members (1) and half of Dtest as
non-members (0), on balanced samples. The other half of Dtest is held out: the attack never saw it, so
it is the fair reference for Df. Reported: the share of Df the attack calls "member" beside the share of
the held-out test examples it calls "member" (what the attack says of data no model trained on: Df's
rate means something only against it), the AUC of the attack's member probability on Df (1) against
the held-out test (0), and the attack's AUC on its own fitting data. Retrain is the reference.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _features(losses: np.ndarray) -> np.ndarray:
    clipped = np.clip(losses, -1e6, 1e6)
    return np.stack([clipped, np.log1p(np.maximum(clipped, 0.0))], axis=1)


def membership_inference(dr_losses, test_losses, df_losses, rng: np.random.Generator) -> dict[str, float]:
    test_losses = np.asarray(test_losses)
    order = rng.permutation(len(test_losses))
    half = max(1, len(order) // 2)
    fitting, held_out = test_losses[order[:half]], test_losses[order[half:]]
    if len(held_out) == 0:  # one test example: it has to serve both
        held_out = fitting
    n = min(len(dr_losses), len(fitting))
    members = rng.choice(dr_losses, size=n, replace=False)
    non_members = rng.choice(fitting, size=n, replace=False)
    x = _features(np.concatenate([members, non_members]))
    y = np.concatenate([np.ones(n), np.zeros(n)])
    attack = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced")).fit(x, y)
    probe = _features(np.concatenate([df_losses, held_out]))
    labels = np.concatenate([np.ones(len(df_losses)), np.zeros(len(held_out))])
    return {
        "df_member_rate": float(attack.predict(_features(np.asarray(df_losses))).mean()),
        "test_member_rate": float(attack.predict(_features(held_out)).mean()),
        "auc": float(roc_auc_score(labels, attack.predict_proba(probe)[:, 1])),
        "attack_auc": float(roc_auc_score(y, attack.predict_proba(x)[:, 1])),
    }
