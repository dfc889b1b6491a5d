"""Recall@k, Df/Dr AUC and the membership attack on cases checked by hand."""
import numpy as np
import pytest
import torch

from engine.metrics.auc import df_dr_auc, dr_chunks
from sessions.metric_names import nest
from engine.metrics.mia import membership_inference
from engine.metrics.retrieval import recall_at_k


def test_recall_by_hand():
    # 2 images, 3 captions: captions 0,1 belong to image 0, caption 2 to image 1
    pair_image = torch.tensor([0, 0, 1])
    i2t = torch.tensor([[0.1, 0.9, 0.5], [0.8, 0.2, 0.3]])  # image 0 ranks caption 1 first (hit); image 1 ranks caption 2 last
    t2i = torch.tensor([[0.9, 0.1, 0.2], [0.1, 0.9, 0.8]])  # caption 0 -> image 0 (hit), caption 1 -> image 1 (miss), caption 2 -> image 1 (hit)
    m = recall_at_k(i2t, t2i, pair_image)
    assert m["txt_r1"] == pytest.approx(50.0)
    assert m["img_r1"] == pytest.approx(200 / 3)
    assert m["txt_r5"] == 100.0 and m["img_r5"] == 100.0
    assert m["r_mean"] == pytest.approx((50 + 200 / 3 + 100 * 4) / 6)


def test_df_dr_auc_direction_and_chunks():
    df = np.array([0.1, 0.2])
    assert df_dr_auc(df, [np.array([0.8, 0.9])] * 5) == 1.0  # Df stands apart below Dr: perfect unlearning
    assert df_dr_auc(df, [np.array([0.0, 0.05])] * 5) == 0.0
    assert df_dr_auc(df, [np.array([0.15, 0.3]), np.array([0.0, 0.05])]) == pytest.approx((0.75 + 0.0) / 2)
    chunks = dr_chunks(100, 10, np.random.default_rng(0))
    assert len(chunks) == 5 and all(len(c) == 10 for c in chunks)
    assert len(set(np.concatenate(chunks).tolist())) == 50  # disjoint when Dr is large enough


def test_membership_attack_flags_low_loss_examples():
    rng = np.random.default_rng(0)
    members, non_members = rng.normal(0.2, 0.05, 200), rng.normal(2.0, 0.3, 200)
    remembered = membership_inference(members, non_members, rng.normal(0.2, 0.05, 50), rng)
    forgotten = membership_inference(members, non_members, rng.normal(2.0, 0.3, 50), rng)
    assert remembered["df_member_rate"] > 0.9 and remembered["auc"] > 0.9
    assert forgotten["df_member_rate"] < 0.1 and forgotten["auc"] == pytest.approx(0.5, abs=0.15)


def test_nest():
    assert nest({"test.r_mean": 1.0, "df_dr_auc": 0.5}) == {"test": {"r_mean": 1.0}, "df_dr_auc": 0.5}
