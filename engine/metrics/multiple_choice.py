"""Four-option accuracy of an LMM, deterministic and batched (PULSE / MLLMU-Bench / MMBench).

Two ways to score, chosen per model (`scoring`):
- "option" (the default for the tiny models): every option's text is scored as the answer to the plain
  question prompt, the one the model was trained with, by the sum of its answer tokens' log-probabilities
  (eos included); the best-scored option is the model's choice. The built-in people world teaches free-form
  answers (the answer text is the correct option's text), so this asks the model exactly what it learned,
  with no letter-answering skill in between (a 2-layer model trained from scratch would first have to learn
  to map a known fact to a letter, which would confound "forgot the fact" with "forgot the format").
- "letter" (the default for real checkpoints, as LLaVA-1.5's MMBench evaluation): the prompt lists the
  options ("A. x" lines and "Answer with the option's letter from the given choices directly.") and the
  choice is the option letter with the highest next-token logit at the answer position.

`score_options` keeps, for every option, its answer tokens' log-probs and the moments of the model's
distribution at each of them (engine/metrics/attacks.py reads them): the pass that picks the options also
feeds the membership attacks, and `accuracy` reuses it (`scored`) instead of a second pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.data.mmbench import MCQuestion
from engine.data.people_batches import Row, encode_rows
from engine.metrics.attacks import AnswerTokens

SCORINGS = ("option", "letter")
LETTER_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def _question_text(question: MCQuestion) -> str:
    return f"{question.hint}\n{question.question}" if question.hint else question.question


def _letter_prompt(question: MCQuestion) -> str:
    options = "\n".join(f"{letter}. {text}" for letter, text in question.options.items())
    return f"{_question_text(question)}\n{options}\n{LETTER_INSTRUCTION}"


@torch.no_grad()
def choices(adapter, questions: list[MCQuestion], scoring: str = "option", batch_size: int = 64) -> list[str]:
    """The letter the model picks for each question."""
    if not questions:
        return []
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
    model = adapter.model
    was_training = model.training
    model.eval()
    try:
        if scoring == "option":
            return _by_option_text(adapter, questions, batch_size)
        return _by_letter(adapter, questions, batch_size)
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class ScoredOption:
    total: float  # log pi(option | question): the sum of its answer tokens' log-probs (eos included)
    tokens: AnswerTokens


def _by_option_text(adapter, questions, batch_size) -> list[str]:
    scored = _score_options(adapter, questions, batch_size)
    return [best_option(scored[q.qid]) for q in questions]


def best_option(options: dict[str, ScoredOption]) -> str:
    """The letter of the highest-scored option (the first in option order on a tie)."""
    return max(options, key=lambda letter: options[letter].total)


@torch.no_grad()
def score_options(adapter, questions: list[MCQuestion], batch_size: int = 64) -> dict[str, dict[str, ScoredOption]]:
    """Every option's text scored as the answer to its question's plain prompt: question id -> letter ->
    the option's log-likelihood and answer tokens (log-probs, the distribution's moments, eos last)."""
    model = adapter.model
    was_training = model.training
    model.eval()
    try:
        return _score_options(adapter, questions, batch_size)
    finally:
        model.train(was_training)


def _score_options(adapter, questions, batch_size) -> dict[str, dict[str, ScoredOption]]:
    rows, owners = [], []
    for k, question in enumerate(questions):
        for letter, text in question.options.items():
            rows.append(Row(_question_text(question), text, question.image, k))
            owners.append((question.qid, letter, text))
    encoded = encode_rows(adapter, rows) if rows else []
    scored: dict[str, dict[str, ScoredOption]] = {q.qid: {} for q in questions}
    for start in range(0, len(encoded), batch_size):
        logits, targets, mask = adapter.answer_logits(encoded.batch(torch.arange(start, min(start + batch_size, len(encoded))),
                                                                    adapter.device))
        log_probs = F.log_softmax(logits.float(), dim=-1)
        own = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * mask
        totals = own.sum(dim=1).cpu().tolist()  # as `log_likelihood` sums them
        probs = log_probs.exp()  # the moments of log p over the vocabulary, for Min-K%++
        mean = (probs * log_probs).sum(dim=-1)
        variance = (probs * log_probs.square()).sum(dim=-1) - mean.square()
        own, mean, variance, lengths = (t.double().cpu().numpy() for t in (own, mean, variance, mask.sum(dim=1)))
        for row, (qid, letter, text) in enumerate(owners[start : start + batch_size]):
            n = int(lengths[row])
            tokens = AnswerTokens(own[row, :n], text, mean[row, :n], variance[row, :n], ends_with_eos=True)
            scored[qid][letter] = ScoredOption(totals[row], tokens)
    return scored


def _letter_ids(adapter) -> list[int]:
    ids = []
    for letter in "ABCD":
        pieces = adapter.tokenizer(letter, add_special_tokens=False)["input_ids"]
        ids.append(pieces[-1])
    return ids


def _by_letter(adapter, questions, batch_size) -> list[str]:
    rows = [Row(_letter_prompt(q), "A", q.image, k) for k, q in enumerate(questions)]
    encoded = encode_rows(adapter, rows)
    letter_ids = torch.tensor(_letter_ids(adapter))
    picked = []
    for s in range(0, len(encoded), batch_size):
        logits, _, _ = adapter.answer_logits(encoded.batch(torch.arange(s, min(s + batch_size, len(encoded))), adapter.device))
        picked.append(logits[:, 0, letter_ids.to(logits.device)].float().cpu())
    scores = torch.cat(picked)
    out = []
    for k, question in enumerate(questions):
        allowed = torch.tensor([letter in question.options for letter in "ABCD"])
        out.append("ABCD"[int(scores[k].masked_fill(~allowed, float("-inf")).argmax())])
    return out


def accuracy(adapter, questions: list[MCQuestion], scoring: str = "option", batch_size: int = 64,
             scored: dict[str, dict[str, ScoredOption]] | None = None) -> float | None:
    """Share of questions answered correctly (questions without an answer are skipped); None if none.
    With "option" scoring, questions already in `scored` (`score_options`) are not scored again."""
    answered = [q for q in questions if q.answer is not None]
    if not answered:
        return None
    if scoring == "option" and scored is not None and all(q.qid in scored for q in answered):
        picked = [best_option(scored[q.qid]) for q in answered]
    else:
        picked = choices(adapter, answered, scoring, batch_size)
    return sum(p == q.answer for p, q in zip(picked, answered)) / len(answered)
