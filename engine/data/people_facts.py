"""Partial deletion on the people worlds (`pulse --granularity fact`): a deletion unit is one profile fact of
one person, `PERSON_ID#KEY` (`person-0003#job`), as PPU-Bench's selective setting forgets one fact of a person
and keeps the others (ANCHORS s. 7).

A fact's rows are its training items (the fact asked with each photo and by name, both wordings) and its
evaluation questions (asked of the portrait and by name); "Who is this person?" states no profile fact and
stays with the person's kept rows. A unit id without `#` is a whole person, so the helpers take either.
"""
from __future__ import annotations

import random

from engine.data.people import FACTS, THIS_PERSON
from engine.errors import SpecError

SEPARATOR = "#"
KEYS = tuple(fact.key for fact in FACTS)


def fact_id(person_id: str, key: str) -> str:
    return f"{person_id}{SEPARATOR}{key}"


def person_of(unit: str) -> str:
    return unit.partition(SEPARATOR)[0]


def question_wordings(people) -> dict[str, dict[str, str]]:
    """person_id -> {a training question about the person: the fact key it asks} (questions asking no profile
    fact, "Who is this person?", are absent)."""
    return {person.person_id: {ask.format(who=who): fact.key for fact in FACTS for ask in fact.asks
                               for who in (THIS_PERSON, person.name)} for person in people}


def question_key(qid: str) -> str | None:
    """The fact key of a built-in world's evaluation question (`PERSON/MODE/K`: the K-th of FACTS)."""
    parts = qid.split("/")
    if len(parts) == 3 and parts[2].isdigit() and int(parts[2]) < len(FACTS):
        return FACTS[int(parts[2])].key
    return None


def covers(units, person_id: str, key: str | None) -> bool:
    """Whether `units` (person ids and fact ids) hold this person's row about `key` (None: no profile fact)."""
    return person_id in units or (key is not None and fact_id(person_id, key) in units)


def draw_facts(pool: list[str], count: int, knowledge: str, seed: int) -> list[str]:
    """`count` facts of the `pool` people, drawn by `seed`, sorted."""
    facts = [fact_id(person, key) for person in sorted(pool) for key in KEYS]
    if not 1 <= count < len(facts):
        raise SpecError(f"cannot forget {count} facts: the {knowledge} people have {len(facts)}; choose "
                        f"--forget 1..{len(facts) - 1}", field="forget")
    return sorted(random.Random(f"forget-facts:{knowledge}:{seed}").sample(facts, count))
