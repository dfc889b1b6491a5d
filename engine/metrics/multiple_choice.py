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
"""
from __future__ import annotations

import torch

from engine.data.mmbench import MCQuestion
from engine.data.people_batches import Row, encode_rows

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


def _by_option_text(adapter, questions, batch_size) -> list[str]:
    rows, owners = [], []
    for k, question in enumerate(questions):
        for letter, text in question.options.items():
            rows.append(Row(_question_text(question), text, question.image, k))
            owners.append((k, letter))
    encoded = encode_rows(adapter, rows)
    scores = torch.cat([
        adapter.log_likelihood(encoded.batch(torch.arange(s, min(s + batch_size, len(encoded))), adapter.device)).float().cpu()
        for s in range(0, len(encoded), batch_size)
    ])
    best: dict[int, tuple[float, str]] = {}
    for (k, letter), score in zip(owners, scores.tolist()):
        if k not in best or score > best[k][0]:
            best[k] = (score, letter)
    return [best[k][1] for k in range(len(questions))]


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


def accuracy(adapter, questions: list[MCQuestion], scoring: str = "option", batch_size: int = 64) -> float | None:
    """Share of questions answered correctly (questions without an answer are skipped); None if none."""
    answered = [q for q in questions if q.answer is not None]
    if not answered:
        return None
    picked = choices(adapter, answered, scoring, batch_size)
    return sum(p == q.answer for p, q in zip(picked, answered)) / len(answered)
