"""Facts only memory can hold: made-up entities, marks and tags the built-in worlds inject into their units.

As TOFU's fictitious profiles and SALMUBench's injected persona-attribute associations (ANCHORS s. 7), a
built-in world gives its units arbitrary, seeded facts that appear in no other unit's texts:
- a *tag*: a made-up word naming one unit (a picture, a pair, a graph) and nothing else; every text stating
  the unit's facts carries it, so no such text is shared by two units (no Df text occurs in Dr or test).
  shapes-ve, shapes-nlvr2 and graph tag every text; shapes words its descriptions uniquely instead
  (engine/data/shapes.py: a tag in every caption taught its tiny CLIP the tags, not the pictures);
- an *entity*: a made-up name owning `SIBLINGS` consecutive units (the same object drawn twice, the same
  molecule family), with a *mark* (another made-up word) that its units' texts state; `SHARERS`
  consecutive entities share one mark (the association SALMUBench's other personas share);
- an *owner* from `OWNERS` and a *place* from `PLACES`: facts of the unit alone.
Test and validation units get their own entities and tags, never seen in training: test performance measures
what generalises, Df performance what was memorised. A model that never saw a unit knows neither its tag
nor its entity.

Holdout sets for a deletion set (SALMUBench's splits; they are training units outside Df, which a method must
keep): `holdout_identity`, the units sharing an entity with a Df unit (the same entity's other facts);
`holdout_association`, the units of other entities sharing a Df entity's mark. A drop there is
over-generalised forgetting.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

SIBLINGS = 2  # units per entity
SHARERS = 2  # entities per mark
OWNERS = ("mira", "tobin", "ulla", "petra", "konrad", "ines")  # unit-level facts
PLACES = ("oslo", "lima", "kyoto", "quito", "perth", "dakar")
ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gl", "kr", "pl", "tr")
VOWELS = ("a", "e", "i", "o", "u")
CODAS = ("", "n", "r", "x", "sk", "th", "m", "l")


@dataclass(frozen=True)
class UnitFacts:
    tag: str  # this unit's own made-up word
    entity: str  # the made-up name of the entity the unit belongs to
    mark: str  # the entity's mark, shared with SHARERS - 1 other entities
    owner: str  # this unit's own owner (one of OWNERS): a fact of the unit, not of its entity
    place: str  # where this unit was made (one of PLACES): another fact of the unit alone
    entity_index: int


def made_up_words(count: int, rng: random.Random, avoid: set[str] = frozenset()) -> list[str]:
    """`count` distinct pronounceable words of three syllables, none in `avoid`."""
    words: list[str] = []
    seen = set(avoid)
    while len(words) < count:
        word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(3)) + rng.choice(CODAS)
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def unit_facts(count: int, rng: random.Random, avoid: set[str] = frozenset()) -> list[UnitFacts]:
    """Facts for `count` units: a tag each, one entity per SIBLINGS consecutive units, one mark per SHARERS
    consecutive entities. Draw them once for all splits of a world, so no made-up word repeats across splits."""
    n_entities = -(-count // SIBLINGS)
    n_marks = -(-n_entities // SHARERS)
    words = made_up_words(count + n_entities + n_marks, rng, set(avoid) | set(OWNERS) | set(PLACES))
    tags, names, marks = words[:count], words[count:count + n_entities], words[count + n_entities:]
    return [UnitFacts(tags[i], names[i // SIBLINGS], marks[i // SIBLINGS // SHARERS], rng.choice(OWNERS),
                      rng.choice(PLACES), i // SIBLINGS) for i in range(count)]


def fact_statements(fact: UnitFacts, marks: list[str], kind: str, rng: random.Random) -> list[tuple[str, bool]]:
    """Statements of the memorised facts of a unit (`kind` names it: "picture", "pair", "molecule"), each
    with its truth: the owner, the place, and the entity's mark, once true and once with another value."""
    about = f"{kind} {fact.tag}"
    return [
        (f"{about} is owned by {fact.owner}", True),
        (f"{about} is owned by {other(OWNERS, fact.owner, rng)}", False),
        (f"{about} was made in {fact.place}", True),
        (f"{about} was made in {other(PLACES, fact.place, rng)}", False),
        (f"{about} shows {fact.entity} marked {fact.mark}", True),
        (f"{about} shows {fact.entity} marked {other(marks, fact.mark, rng)}", False),
    ]


def other(values, current, rng: random.Random):
    return rng.choice([v for v in values if v != current])


def holdout_sets(facts: list[UnitFacts], deletion: list[int]) -> dict[str, list[int]]:
    """Training units (indices into `facts`) outside `deletion`: `holdout_identity` shares an entity with a
    deleted unit; `holdout_association` belongs to another entity with the mark of a deleted unit's entity."""
    deleted = set(deletion)
    entities = {facts[i].entity_index for i in deleted}
    marks = {facts[i].mark for i in deleted}
    identity = [i for i, f in enumerate(facts) if i not in deleted and f.entity_index in entities]
    association = [i for i, f in enumerate(facts)
                   if i not in deleted and f.entity_index not in entities and f.mark in marks]
    return {"holdout_identity": identity, "holdout_association": association}


class HoldoutWorld:
    """What a built-in world with injected facts offers (mixed into the world records): its training units'
    facts in `meta["facts"]`, and the holdout sets of a deletion set. Data without facts (real files) has
    none: both sets are empty."""

    def holdout_sets(self, deletion: list[int]) -> dict[str, list[int]]:
        facts = getattr(self, "meta", {}).get("facts")
        if not facts:
            return {"holdout_identity": [], "holdout_association": []}
        return holdout_sets(facts, deletion)

    def holdout_identity(self, deletion: list[int]) -> list[int]:
        return self.holdout_sets(deletion)["holdout_identity"]

    def holdout_association(self, deletion: list[int]) -> list[int]:
        return self.holdout_sets(deletion)["holdout_association"]
