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


def test_recall_breaks_ties_pessimistically():
    # 2 images with one caption each, every score equal: argsort would let the first of each list hit
    pair_image = torch.tensor([0, 1])
    flat = torch.zeros(2, 2)
    m = recall_at_k(flat, flat, pair_image)
    assert m["txt_r1"] == 0.0 and m["img_r1"] == 0.0  # the tied wrong answer ranks above the right one
    assert m["txt_r5"] == 100.0 and m["img_r5"] == 100.0
    # a tie between an image's own caption and another image's caption: a miss at k=1; a caption of the
    # image itself tying with its other caption is no loss (either is a hit)
    pair_image = torch.tensor([0, 0, 1])
    i2t = torch.tensor([[0.7, 0.7, 0.7], [0.1, 0.2, 0.9]])
    t2i = torch.tensor([[0.9, 0.9, 0.3], [0.9, 0.5, 0.4]])  # [images, texts]
    m = recall_at_k(i2t, t2i, pair_image)
    assert m["txt_r1"] == 50.0  # image 0 ties with image 1's caption (miss); image 1 hits
    # caption 0: its image 0.9 ties image 1's 0.9 (miss); caption 1: 0.9 > 0.5 (hit); caption 2: 0.4 > 0.3 (hit)
    assert m["img_r1"] == pytest.approx(200 / 3)


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
    assert remembered["test_member_rate"] < 0.1  # the held-out half of the test set: non-members


def test_membership_attack_scores_df_against_test_it_never_fitted_on():
    # members' losses 0..1, test losses 3..4 except one far outlier at 0.5 that looks like a member. Whichever
    # half the outlier lands in, the held-out half's member rate is at most 1 of its 10, and Df (= the
    # held-out-looking losses) is called non-member; 20 test examples: 10 fit, 10 held out.
    members = np.linspace(0.0, 1.0, 40)
    test = np.concatenate([np.linspace(3.0, 4.0, 19), [0.5]])
    result = membership_inference(members, test, np.linspace(3.1, 3.9, 8), np.random.default_rng(1))
    assert result["test_member_rate"] in (0.0, 0.1) and result["df_member_rate"] == 0.0
    # Df indistinguishable from the held-out test half: AUC at chance within a few pairs
    same = membership_inference(members, np.linspace(3.0, 4.0, 20), np.linspace(3.0, 4.0, 10), np.random.default_rng(2))
    assert same["df_member_rate"] == same["test_member_rate"] == 0.0 and same["auc"] == pytest.approx(0.5, abs=0.2)


def test_nest():
    assert nest({"test.r_mean": 1.0, "df_dr_auc": 0.5}) == {"test": {"r_mean": 1.0}, "df_dr_auc": 0.5}
