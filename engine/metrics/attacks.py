"""The standard membership attacks, as OpenUnlearning defines them (`src/evals/metrics/mia/`): LOSS,
zlib-normalised loss, Min-K% and Min-K%++, each scored per example from its answer tokens' log-probs and
reported as the AUC of the forget set Df (members) against held-out data no model trained on.

Convention: every score here is HIGHER for a MORE member-like example (a likelier answer), and an AUC
labels Df 1 and held-out 0, so 1.0 = Df stands out as remembered, 0.5 = Df looks like held-out data.
OpenUnlearning signs its scores the other way (a loss: lower = member) and labels the forget set 0: the
AUC is the same number ("auc is 1 when the forget data is much more likely than the holdout data").

- LOSS: the mean token log-prob of the answer, i.e. minus OpenUnlearning's `avg_loss` (all labelled
  tokens, eos included).
- zlib: the same mean loss divided by the zlib-compressed length (bytes) of the answer text, negated.
- Min-K%: the mean of the k% lowest token log-probs (at least one token); k = 0.4 as OpenUnlearning's
  TOFU and MUSE configs. Like OpenUnlearning's `tokenwise_logprobs`, it leaves out the final prediction of
  an answer that ends with eos (`AnswerTokens.ends_with_eos`).
- Min-K%++: each token's log-prob standardised by the model's distribution at that position,
  (log p(y_t) - mu_t) / sigma_t with mu_t = E_{v~p}[log p(v)] and sigma_t^2 = E_{v~p}[log p(v)^2] - mu_t^2
  (clamped at 1e-6), then the mean of the k% lowest, as Min-K%.
An example whose Min-K% tokens are none (an answer that is only eos) scores 0, as OpenUnlearning's.

A one-prediction task (a classifier's label, a retrieval pair's match) is one "token": Min-K% over it is
LOSS itself; Min-K%++ standardises it by the class distribution. Pure numpy (+ sklearn's AUC).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

K = 0.4  # OpenUnlearning's k for Min-K% and Min-K%++ (configs/eval/{tofu,muse}_metrics/mia_min_k*.yaml)
MIN_VARIANCE = 1e-6


@dataclass(frozen=True)
class AnswerTokens:
    """One example's answer as an attack reads it."""

    log_probs: np.ndarray  # [T] log p(y_t | x, y_<t) of each answer token (a classifier: [1], its label's)
    text: str  # the answer text zlib compresses (a classifier: the example's text)
    vocab_mean: np.ndarray | None = None  # [T] mu_t = E_{v~p}[log p(v)] at each position (Min-K%++)
    vocab_var: np.ndarray | None = None  # [T] E_{v~p}[log p(v)^2] - mu_t^2
    ends_with_eos: bool = False  # the last token is the end of sequence: Min-K% and Min-K%++ leave it out

    @property
    def min_k_positions(self) -> slice:
        return slice(0, len(self.log_probs) - 1 if self.ends_with_eos else len(self.log_probs))


def loss_score(log_probs: np.ndarray) -> float:
    """The mean token log-prob (minus the mean token loss)."""
    return float(np.mean(log_probs))


def zlib_score(log_probs: np.ndarray, text: str) -> float:
    """Minus the mean token loss per zlib-compressed byte of the text."""
    return loss_score(log_probs) / len(zlib.compress(text.encode("utf-8")))


def lowest_k_mean(values: np.ndarray, k: float = K) -> float:
    """The mean of the k% lowest values (at least one); 0 for none."""
    if len(values) == 0:
        return 0.0
    count = max(1, int(len(values) * k))
    return float(np.mean(np.sort(values)[:count]))


def min_k_score(log_probs: np.ndarray, k: float = K) -> float:
    return lowest_k_mean(np.asarray(log_probs, dtype=np.float64), k)


def min_k_plus_plus_score(log_probs: np.ndarray, vocab_mean: np.ndarray, vocab_var: np.ndarray, k: float = K) -> float:
    standardised = (np.asarray(log_probs, dtype=np.float64) - vocab_mean) / np.sqrt(np.maximum(vocab_var, MIN_VARIANCE))
    return lowest_k_mean(standardised, k)


def example_scores(example: AnswerTokens, k: float = K) -> dict[str, float]:
    """Each attack's score of one example (Min-K%++ only where the distribution's moments are known)."""
    kept = example.min_k_positions
    scores = {"loss": loss_score(example.log_probs), "zlib": zlib_score(example.log_probs, example.text),
              "mink": min_k_score(example.log_probs[kept], k)}
    if example.vocab_mean is not None and example.vocab_var is not None:
        scores["minkpp"] = min_k_plus_plus_score(example.log_probs[kept], example.vocab_mean[kept],
                                                 example.vocab_var[kept], k)
    return scores


def attack_auc(member_scores, held_out_scores) -> float:
    """roc_auc_score with Df labelled 1 and held-out 0 (higher score = more member-like)."""
    labels = np.concatenate([np.ones(len(member_scores)), np.zeros(len(held_out_scores))])
    return float(roc_auc_score(labels, np.concatenate([np.asarray(member_scores, dtype=np.float64),
                                                       np.asarray(held_out_scores, dtype=np.float64)])))


def attack_aucs(df: list[AnswerTokens], held_out: list[AnswerTokens], k: float = K) -> dict[str, float]:
    """``{"loss_auc", "zlib_auc", "mink_auc"[, "minkpp_auc"]}``: each attack's AUC of Df against held-out
    data; empty when either side has no example."""
    if not df or not held_out:
        return {}
    members = [example_scores(e, k) for e in df]
    others = [example_scores(e, k) for e in held_out]
    names = [name for name in members[0] if all(name in s for s in members + others)]
    return {f"{name}_auc": attack_auc([s[name] for s in members], [s[name] for s in others]) for name in names}


def one_token_examples(log_probs: np.ndarray, texts: list[str], class_log_probs: np.ndarray | None = None
                       ) -> list[AnswerTokens]:
    """Examples of a one-prediction task: `log_probs` [n] of each example's own label (or match), its text,
    and optionally every class's log-prob [n, C], whose moments standardise it for Min-K%++."""
    if class_log_probs is None:
        return [AnswerTokens(np.array([value], dtype=np.float64), text) for value, text in zip(log_probs, texts)]
    probs = np.exp(class_log_probs)
    means = (probs * class_log_probs).sum(axis=1)
    variances = (probs * class_log_probs ** 2).sum(axis=1) - means ** 2
    return [AnswerTokens(np.array([value], dtype=np.float64), text, np.array([mean]), np.array([variance]))
            for value, text, mean, variance in zip(log_probs, texts, means, variances)]
