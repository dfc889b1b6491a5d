"""The attacks on people data (a `pulse` session: four-option QA, units are people; ANCHORS.md s. 9).

What differs from the tasks over units (retrieval, classification), and nothing else:
- the deleted units are the run's deletion set (`task.deletion_set()`: its forget people, or under `--granularity
  fact` its forget facts `PERSON#KEY`; every request's, a finished pulse run has forgotten them all), and the
  headline Df metric is `forget.accuracy`: the four-option accuracy on their questions (the people's, or only the
  deleted facts', as the run's own evaluation scored them) with the image and text-only averaged (each has as many
  questions of each kind, so the mean is the pooled accuracy), a fraction as the task's accuracies are;
- relearning trains on the forget rows (`task.encode`: the image questions under the session's
  `--forget-rows image`) of a seeded sample of those units, with the update and rate of the phase that
  taught them (`task.recipe[task.phase]`: full fine-tuning for the tiny LMM, LoRA on the LLM for a checkpoint),
  LoRA merged after; `--on neighbours` (an embedding search over units) is not offered on people data;
- rephrasing re-asks every deleted unit's evaluation questions in the people world's paraphrase wording
  (`Fact.asks[1]`, engine/data/people.py; or a user file's paraphrase of the question text) with the portrait
  transformed as the other worlds' images are (engine/attacks/image_transform.py: crop, flip, colour
  jitter; the questions name no side, so a flip changes no text). The MMBench retention's reference is the
  original's MMBench accuracy as the session stored it.
"""
from __future__ import annotations

import copy
import dataclasses
import random

from engine.attacks.image_transform import transform_image

HEADLINE = "forget.accuracy"


def is_people(task) -> bool:
    return hasattr(task, "forget_people")


def deleted_units(task) -> list:
    """The deletion set the attack scores and relearns: people or facts (people data), else the units. Scoring a fact
    run by its people read their kept facts' questions as recovered (8-bit quantize: 56% of a gap they never had)."""
    return list(task.deletion_set()) if is_people(task) else list(task.deletion)


def with_headline(metrics: dict[str, float]) -> dict[str, float]:
    """Flat people metrics plus `forget.accuracy` (image and text-only averaged) when both are there."""
    image, text = metrics.get("forget.image"), metrics.get("forget.text")
    if image is None or text is None:
        return metrics
    return {**metrics, HEADLINE: (image + text) / 2}


def relearn_setting(task) -> dict:
    """The update and learning rate of the phase that taught the forget people."""
    step = task.recipe[task.phase]
    return {"update": step["update"], "lr": step["lr"]}


def rephrased_question(question, rng: random.Random, table: dict[str, list[str]]):
    """One evaluation question re-worded (a file's paraphrase, else the world's `asks[1]`) and its image
    transformed; (the question, whether its text changed)."""
    text = question.question
    new = (rng.choice(table[text]) if text in table else text) if table else builtin_paraphrase(question)
    image = transform_image(question.image, rng, rng.random() < 0.5) if question.image is not None else None
    return dataclasses.replace(question, question=new, image=image), new != text


def builtin_paraphrase(question) -> str:
    """The people world's paraphrase of a question asked in its evaluation wording (qid `<person>/<mode>/<fact
    index>`, text `FACTS[k].asks[0]`): the same fact asked as `asks[1]`; other texts are kept."""
    from engine.data.people import FACTS

    index = question.qid.rpartition("/")[2]
    if not index.isdigit() or int(index) >= len(FACTS):
        return question.question
    asks = FACTS[int(index)].asks
    before, _, after = asks[0].partition("{who}")
    text = question.question
    if not (text.startswith(before) and text.endswith(after) and len(text) > len(before) + len(after)):
        return text
    return asks[1].format(who=text[len(before): len(text) - len(after)])


def rephrased_view(task, seed: int, table: dict[str, list[str]]) -> tuple[object, dict]:
    """A view of `task` whose deleted units' evaluation questions are rephrased; (view, record)."""
    from engine.seeding import derive_seed

    deleted = set(deleted_units(task))
    questions, changed, asked = [], 0, 0
    for question in task.data.eval_questions:
        if task.asks(deleted, question):
            rng = random.Random(derive_seed(seed, "attack", "rephrase", question.qid))
            question, was_changed = rephrased_question(question, rng, table)
            changed += was_changed
            asked += 1
        questions.append(question)
    view = copy.copy(task)
    view.data = copy.copy(task.data)
    view.data.eval_questions = questions
    return view, {"paraphrased_texts": changed, "texts": asked,
                  "paraphrases": "file" if table else ("built-in" if changed else "none")}
