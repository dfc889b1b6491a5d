"""The knowledge-source scenario on a real checkpoint: "pretrained" knowledge is what the checkpoint
already knows, so nothing is trained, and the people to forget are drawn among those it answers.

A registered tiny model learns everything from scratch in the people data's two phases (pretraining,
fine-tuning), so there the phase a person was taught in says which knowledge they are. A real checkpoint
arrives pretrained: LoRA-teaching it the "pretrained" people would make them fine-tuned knowledge. So
with a checkpoint and `--knowledge pretrained`, the original is the checkpoint itself, untouched, and a
person counts as known when it answers at least KNOWN_THRESHOLD of their four-option questions (image
and text-only together); the forget people are drawn among the known ones by the seed, the other known
people are the retain set. MLLMU-Bench's files mark everyone as fine-tune knowledge (its profiles are
fictitious), so on them the pool is whoever the checkpoint happens to answer, usually nobody: a release
of well-known people in the same layout (PULSE's 45) is what populates the scenario. `--knowledge
finetuned` is unchanged: the original is the checkpoint LoRA-taught the data's people.
"""
from __future__ import annotations

import random

from engine.errors import SpecError

KNOWN_THRESHOLD = 0.8  # 8 of a person's 10 questions (5 with the photo, 5 by name) answered correctly


def trains_nothing(real_checkpoint: bool, knowledge: str) -> bool:
    """Whether the original is the starting checkpoint itself (pretrained knowledge of a real model)."""
    return real_checkpoint and knowledge == "pretrained"


def person_accuracies(adapter, data, scoring: str) -> dict[str, float]:
    """Each person's four-option accuracy (a fraction) over all their evaluation questions; the held-out people
    (taught by no phase, the membership attacks' held-out side) are never candidates and are not scored."""
    from engine.data.people_records import HELDOUT
    from engine.metrics.multiple_choice import choices

    held_out = {person.person_id for person in data.people if person.phase == HELDOUT}
    questions: dict[str, list] = {}
    for question in data.eval_questions:
        if question.person_id is not None and question.person_id not in held_out:
            questions.setdefault(question.person_id, []).append(question)
    ordered = [q for person in sorted(questions) for q in questions[person]]
    picked = iter(choices(adapter, ordered, scoring))
    return {person: sum(next(picked) == q.answer for q in asked) / len(asked)
            for person, asked in sorted(questions.items())}


def draw_known(accuracies: dict[str, float], count: int | None, seed: int,
               threshold: float = KNOWN_THRESHOLD) -> tuple[list[str], list[str]]:
    """(forget, retain): `count` people (default half) drawn by `seed` among those answered at >= threshold,
    and the other known people; both in id order."""
    known = sorted(person for person, value in accuracies.items() if value >= threshold)
    count = (len(known) + 1) // 2 if count is None else count
    if not known:
        raise SpecError(f"cannot forget pretrained people: the checkpoint answers none of the {len(accuracies)} "
                        f"people at >= {threshold:.0%} of their questions, so it holds no pretrained knowledge of "
                        "them to forget; give a checkpoint that knows them, or --knowledge finetuned", field="forget")
    if not 1 <= count <= len(known):
        raise SpecError(f"cannot forget {count} pretrained people: the checkpoint answers {len(known)} of the "
                        f"{len(accuracies)} people at >= {threshold:.0%} of their questions; choose --forget "
                        f"1..{len(known)}, or use people the checkpoint knows (or --knowledge finetuned)",
                        field="forget")
    forget = sorted(random.Random(f"forget:known:{seed}").sample(known, count))
    return forget, [person for person in known if person not in forget]
