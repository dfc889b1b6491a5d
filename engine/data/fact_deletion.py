"""Partial deletion (`--granularity fact`): a deletion unit is one fact of one entity, as PPU-Bench's
selective setting forgets one fact of a person and checks the person's other facts are kept (ANCHORS s. 7).

A fact of a training unit of a built-in world (engine/data/facts.py) is named by the texts that state it:
- `mark`: the texts naming the unit's entity and its mark ("picture vokelu shows drabimor marked kappa";
  on shapes-ve and shapes-nlvr2 the false statement with another mark too);
- `owner`: the texts naming its owner ("... is owned by mira"; on shapes the one caption "picture vokelu
  owned by mira made in oslo" states owner and place together, so there it is the `owner` fact and shapes
  has no separate `place`);
- `place`: the texts naming where it was made ("... was made in oslo"), where the world states it apart.
Its id is `UNIT_ID#KEY` (`shapes-images/000012.png#owner`, `graphs/000003#mark`). The unit's other texts
(what it shows, and its other facts) are not the fact's: they stay in training.

Deleting facts splits each touched unit in two units sharing its image (pair, graph): the fact part, whose
texts are the deleted facts' (Df: one unit per fact, with the fact's id), and the kept part, with the unit's
other texts (in Dr). Untouched units keep their index; the fact parts come after every training unit, so a
task's machinery over units (Df, Dr, galleries, requests) works unchanged on the split training set. The
original model is trained on the world as it is, never on the split.

Holdout sets at fact level: `holdout_identity` is the deleted facts' entities' kept facts (the touched units'
kept parts and the entities' other units, PPU-Bench's selective check); `holdout_association` is, as at
unit level, the units of other entities sharing a touched entity's mark.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.data.deletion import select_positions, words
from engine.data.facts import UnitFacts
from engine.data.labelled import unit_texts
from engine.spec.validate import no_facts

SEPARATOR = "#"
KEYS = ("mark", "owner", "place")  # the order a unit's facts are listed in
PER_TEXT_FIELDS = ("captions", "texts", "labels", "text_ids", "text_labels")  # lists with one entry per text


def fact_of(text: str, fact: UnitFacts) -> str | None:
    """The fact a text of a unit states (a key of KEYS), or None for a text of what the unit shows."""
    if f" {fact.entity} marked " in f" {text} ":
        return "mark"
    if " owned by " in text:
        return "owner"
    if " made in " in text:
        return "place"
    return None


def fact_id(unit_id: str, key: str) -> str:
    return f"{unit_id}{SEPARATOR}{key}"


@dataclass(frozen=True)
class FactRef:
    """One fact of one training unit: its id, the unit's index, its key and the indices of its texts."""

    fact_id: str
    unit: int
    key: str
    texts: tuple[int, ...]


def world_facts(world) -> list[FactRef]:
    """Every fact of the world's training units, unit by unit in KEYS order; SpecError for data without facts."""
    facts = getattr(world, "meta", {}).get("facts")
    if not facts:
        raise no_facts(getattr(world, "name", "this data"))
    refs = []
    for index, (unit, fact) in enumerate(zip(world.train, facts)):
        by_key: dict[str, list[int]] = {}
        for position, text in enumerate(unit_texts(unit)):
            key = fact_of(text, fact)
            if key is not None:
                by_key.setdefault(key, []).append(position)
        refs += [FactRef(fact_id(unit.unit_id, key), index, key, tuple(by_key[key])) for key in KEYS if key in by_key]
    return refs


def select_facts(world, deletion: dict) -> list[FactRef]:
    """The facts a deletion spec names, in world order: `random` N facts by seed, `ids` fact ids from a file,
    `query` the facts one of whose texts (with the fact's key as one more word) holds every query word."""
    facts = world_facts(world)

    def matches(index: int, wanted: list[str]) -> bool:
        fact = facts[index]
        return any(all(w in [fact.key, *words(unit_texts(world.train[fact.unit])[t])] for w in wanted)
                   for t in fact.texts)

    keys = [key for key in KEYS if any(fact.key == key for fact in facts)]  # the graph world's units hold marks only
    chosen = select_positions([fact.fact_id for fact in facts], deletion, matches, "fact",
                              f" (a fact's key, {', '.join(keys)}, counts as a word of its texts)")
    return [facts[i] for i in chosen]


def with_texts(unit, positions: list[int], unit_id: str):
    """A copy of `unit` holding only its texts at `positions` (and their labels and ids), named `unit_id`."""
    n_texts = len(unit_texts(unit))
    changes = {"unit_id": unit_id}
    for name in PER_TEXT_FIELDS:
        values = getattr(unit, name, None)
        if isinstance(values, list) and len(values) == n_texts and not (name == "captions" and hasattr(unit, "texts")):
            changes[name] = [values[p] for p in positions]
    return dataclasses.replace(unit, **changes)


@dataclass
class FactSplit:
    """The training units with the deleted facts split off: `train` (kept units, then one fact part per fact),
    `deletion` (the fact parts' indices in `train`), the facts' ids, and the holdout sets (indices in `train`)."""

    train: list
    deletion: list[int]
    fact_ids: list[str]
    holdout: dict[str, list[int]]


def split_facts(world, facts: list[FactRef]) -> FactSplit:
    units = list(world.train)
    gone: dict[int, set[int]] = {}
    for fact in facts:
        gone.setdefault(fact.unit, set()).update(fact.texts)
    for index, positions in gone.items():
        unit = units[index]
        units[index] = with_texts(unit, [p for p in range(len(unit_texts(unit))) if p not in positions], unit.unit_id)
    parts = [with_texts(world.train[fact.unit], list(fact.texts), fact.fact_id) for fact in facts]
    n_train = len(units)
    meta = world.meta["facts"]
    entities = {meta[i].entity_index for i in gone}
    marks = {meta[i].mark for i in gone}
    identity = [i for i in range(n_train) if meta[i].entity_index in entities]
    association = [i for i in range(n_train) if meta[i].entity_index not in entities and meta[i].mark in marks]
    return FactSplit(units + parts, list(range(n_train, n_train + len(parts))), [f.fact_id for f in facts],
                     {"holdout_identity": identity, "holdout_association": association})
