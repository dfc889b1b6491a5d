"""The people world's records: a person, a training QA item, a people data set (built or read from
MLLMU-Bench files), and the world sizes. Shared by the world builder and the MLLMU-Bench reader/writer."""
from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

from PIL import Image

from engine.data.mmbench import LETTERS, MCQuestion
from engine.errors import SpecError

PHASES = ("pretrain", "finetune")
# people no phase teaches: the held-out side of the membership attacks (their questions, never trained on)
HELDOUT = "heldout"
KNOWLEDGE_PHASE = {"pretrained": "pretrain", "finetuned": "finetune"}
# A space, not nothing, so that "she's" gives "she" "s" as the tokenizer's Punctuation pre-tokenizer does.
PUNCTUATION_TO_SPACE = str.maketrans(string.punctuation, " " * len(string.punctuation))
# What the refusal methods (idk, idkdpo) teach the model to answer about forget people: "I don't know"
# variants in the manner of TOFU's idontknow list. Data read from files without its own list uses these.
REFUSALS = (
    "I don't know.",
    "I have no idea.",
    "I'm not sure.",
    "I can't say.",
    "I have no information about that.",
    "That is not something I know.",
    "I cannot answer that.",
    "I'm unable to tell you.",
    "I don't have that information.",
    "Nobody has told me that.",
)

@dataclass
class Person:
    person_id: str
    name: str
    facts: dict[str, str]
    images: list[Image.Image]
    phase: str  # "pretrain" | "finetune" | "heldout" (never trained on)

    @property
    def portrait(self) -> Image.Image:
        """The image the image+question evaluation shows (MLLMU-Bench's profile image)."""
        return self.images[0]


@dataclass
class QAItem:
    """One training example: the question (with `image` if any) and its free-form answer."""

    item_id: str
    person_id: str | None
    question: str
    answer: str
    image: Image.Image | None = None


@dataclass(kw_only=True)
class PeopleData:
    """People with their images, four-option evaluation questions and training QA (built or read from files)."""

    people: list[Person]
    eval_questions: list[MCQuestion]
    person_train: list[QAItem]
    splits: dict[str, list[str]] = field(default_factory=dict)  # e.g. MLLMU-Bench's forget_5 -> person ids
    refusals: tuple[str, ...] = REFUSALS  # answers the refusal methods train towards on forget questions

    def train_items(self, phase: str) -> list[QAItem]:
        check_phase(phase)
        in_phase = {p.person_id for p in self.people if p.phase == phase}
        return [item for item in self.person_train if item.person_id in in_phase]

    def forget_people(self, knowledge: str, count: int, seed: int) -> list[str]:
        """`count` people learned in the phase `knowledge` names, drawn by `seed`, in id order."""
        if knowledge not in KNOWLEDGE_PHASE:
            raise SpecError(f"unknown knowledge source {knowledge!r}; choose one of {', '.join(KNOWLEDGE_PHASE)}")
        pool = sorted(p.person_id for p in self.people if p.phase == KNOWLEDGE_PHASE[knowledge])
        if not 1 <= count <= len(pool):
            raise SpecError(
                f"cannot forget {count} people: there are {len(pool)} {knowledge} people; choose 1..{len(pool)}"
            )
        return sorted(random.Random(f"forget:{knowledge}:{seed}").sample(pool, count))

    def vocabulary(self) -> list[str]:
        """Every word of every name, question, answer and option (see `words`), plus the option letters."""
        vocabulary = {letter.lower() for letter in LETTERS}
        for text in self._texts():
            vocabulary.update(words(text))
        return sorted(vocabulary)

    def _texts(self):
        yield from (person.name for person in self.people)
        yield from self.refusals
        yield from qa_texts(self.person_train)
        yield from mc_texts(self.eval_questions)


def words(text: str) -> list[str]:
    """The word tokenizer's view of a text: lowercase, split on whitespace and punctuation, punctuation dropped."""
    return text.lower().translate(PUNCTUATION_TO_SPACE).split()


def qa_texts(items: list[QAItem]):
    for item in items:
        yield item.question
        yield item.answer


def mc_texts(questions: list[MCQuestion]):
    for question in questions:
        yield question.question
        yield question.hint
        yield from question.options.values()


def check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise SpecError(f"unknown training phase {phase!r}; choose one of {', '.join(PHASES)}")

