"""The standard membership attacks (LOSS, zlib, Min-K%, Min-K%++) and privleak on cases checked by hand."""
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from engine.metrics.attacks import (
    AnswerTokens,
    attack_auc,
    attack_aucs,
    example_scores,
    min_k_plus_plus_score,
    min_k_score,
    one_token_examples,
    zlib_score,
)
from sessions.study import privleak, relative_scores


def test_loss_and_min_k_by_hand():
    # log-probs of 4 answer tokens, the last the eos: LOSS reads all four, Min-K% (k = 0.4) the 40% lowest of
    # the first three: max(1, int(3 x 0.4)) = 1 token, the 1/8
    example = AnswerTokens(np.log([0.5, 0.25, 0.125, 1.0]), "abc", ends_with_eos=True)
    scores = example_scores(example)
    assert scores["loss"] == pytest.approx(np.log([0.5, 0.25, 0.125, 1.0]).mean())
    assert scores["mink"] == pytest.approx(math.log(0.125))
    # five tokens, no eos: int(5 x 0.4) = 2 lowest; an empty list scores 0 (OpenUnlearning's value)
    assert min_k_score(np.array([-1.0, -5.0, -2.0, -4.0, -3.0])) == pytest.approx(-4.5)
    assert min_k_score(np.zeros(0)) == 0.0
    assert "minkpp" not in scores  # no distribution moments given: no Min-K%++


def test_zlib_divides_the_mean_loss_by_the_compressed_length():
    # zlib.compress(b"x") is 9 bytes (2 header, 3 deflate, 4 adler32), b"cat" 11
    assert zlib_score(np.log([0.5, 0.5]), "x") == pytest.approx(math.log(0.5) / 9)
    assert zlib_score(np.log([0.5, 0.5]), "cat") == pytest.approx(math.log(0.5) / 11)


def test_min_k_plus_plus_standardises_by_the_distribution():
    # two classes at (0.8, 0.2): (log 0.8 - mu) / sigma = sqrt((1 - p) / p) = 0.5 for the likely class
    log_p = np.log(np.array([[0.8, 0.2]]))
    [likely] = one_token_examples(log_p[:, 0], ["t"], log_p)
    assert example_scores(likely)["minkpp"] == pytest.approx(0.5)
    [unlikely] = one_token_examples(log_p[:, 1], ["t"], log_p)
    assert example_scores(unlikely)["minkpp"] == pytest.approx(-2.0)  # -sqrt(0.8 / 0.2)
    # a uniform distribution has no spread: the variance floor (1e-6) keeps it finite, the score is 0
    assert min_k_plus_plus_score(np.log([0.25]), np.log([0.25]), np.zeros(1)) == pytest.approx(0.0)


def test_one_token_min_k_is_loss():
    examples = one_token_examples(np.array([-0.3, -2.0]), ["a", "b"])
    for example in examples:
        scores = example_scores(example)
        assert scores["mink"] == scores["loss"] == example.log_probs[0]


def test_attacks_disagree_on_a_constructed_case():
    # Df: mostly sure answers with one very unlikely token; held out: uniformly middling. LOSS (mean) calls
    # Df the members (AUC 1), Min-K% (the 2 lowest of 5) the held-out ones (AUC 0).
    df = [AnswerTokens(np.array([-0.1, -0.1, -0.1, -0.1, -2.0]), "a b c d e")]
    held_out = [AnswerTokens(np.full(5, -0.5), "a b c d e")]
    aucs = attack_aucs(df, held_out)
    assert aucs == {"loss_auc": 1.0, "zlib_auc": 1.0, "mink_auc": 0.0}
    assert attack_aucs(df, []) == {}


def test_auc_convention_matches_open_unlearning():
    # OpenUnlearning: score = loss (lower = member), forget labelled 0; here score = -loss, Df labelled 1
    rng = np.random.default_rng(0)
    df_losses, held_losses = rng.normal(1.0, 0.5, 30), rng.normal(1.5, 0.5, 40)
    theirs = roc_auc_score(np.r_[np.zeros(30), np.ones(40)], np.r_[df_losses, held_losses])
    assert attack_auc(-df_losses, -held_losses) == pytest.approx(theirs)
    assert attack_auc([1.0, 2.0], [0.0]) == 1.0 and attack_auc([0.0], [1.0, 2.0]) == 0.0


def test_privleak_as_open_unlearning():
    # MUSE's AUC is 1 - ours: (0.2 - 0.4) / 0.4 x 100 = -50 (Df more member-like than under Retrain)
    assert privleak(0.8, 0.6) == pytest.approx(-50.0)
    assert privleak(0.6, 0.6) == pytest.approx(0.0)
    assert privleak(0.3, 0.6) == pytest.approx(75.0)  # over-unlearning: (0.7 - 0.4) / 0.4
    assert privleak(0.5, 1.0) is None


def test_relative_scores_carry_privleak_of_min_k():
    run = {"metrics": {"df_dr_auc": 0.7, "test": {"r_mean": 50.0}, "mia": {"mink_auc": 0.8}}}
    retrain = {"metrics": {"df_dr_auc": 0.6, "test": {"r_mean": 52.0}, "mia": {"mink_auc": 0.6}}}
    scores = relative_scores(run, retrain, None)
    assert scores["privleak"] == pytest.approx(-50.0) and scores["auc_gap_to_retrain"] == pytest.approx(0.1)
    assert "privleak" not in relative_scores({"metrics": {"df_dr_auc": 0.7}}, retrain, None)
