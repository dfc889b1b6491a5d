"""The built-in worlds carry facts only memory can hold, share no text between units, and name their holdout
sets (engine/data/facts.py)."""
from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from engine.data.fact_deletion import fact_of
from engine.data.facts import SIBLINGS, holdout_sets, unit_facts
from engine.data.fingerprint import data_fingerprint
from engine.data.labelled import unit_texts
from engine.data.registry import load_data
from engine.data.shapes import (DESCRIBED, DESCRIPTIONS, ShapeAttrs, Unit, captions_of, count_tagged_descriptions,
                                 wordings)

WORLDS = ["shapes-tiny", "shapes-ve-tiny", "shapes-nlvr2-tiny", "graph-tiny"]


@pytest.fixture(scope="module", params=WORLDS)
def world(request):
    return load_data(request.param)


def texts_of(units) -> list[str]:
    return [text for unit in units for text in unit_texts(unit)]


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def test_no_training_text_is_shared_between_units(world):
    """Any random Df: a Df text occurs in no other training unit (Dr) and in no test or validation unit."""
    owners: dict[str, set[int]] = {}
    for index, unit in enumerate([*world.train, *world.val, *world.test]):
        for text in unit_texts(unit):
            owners.setdefault(text, set()).add(index)
    shared = [text for text, units in owners.items() if len(units) > 1]
    assert shared == []


def test_no_test_text_is_duplicated(world):
    counts = Counter(texts_of(world.test))
    assert max(counts.values()) == 1
    assert not set(counts) & set(texts_of(world.train))


def test_each_unit_has_its_own_tag_and_test_tags_are_unseen(world):
    facts = world.meta["facts"]
    assert len(facts) == len(world.train)
    for unit, fact in zip(world.train, facts):
        stated = [text for text in unit_texts(unit) if fact_of(text, fact)]
        assert stated and all(fact.tag in words(text) for text in stated)
    training_words = {word for text in texts_of(world.train) for word in words(text)}
    test_tags = {words(text)[1] for text in texts_of(world.test) if text.startswith(("picture", "pair", "molecule"))}
    assert test_tags and not test_tags & training_words


def test_shapes_descriptions_name_no_picture():
    """A caption of what a picture shows names no tag: at generator version 2 every caption did, and the tiny
    CLIP learned the tags instead of the pictures (test r_mean 3.3 on `shapes`)."""
    world = load_data("shapes-tiny")
    for unit, fact in zip(world.train, world.meta["facts"]):
        described = [text for text in unit.captions if fact_of(text, fact) is None]
        assert len(described) == DESCRIBED and not any(fact.tag in words(text) for text in described)
    assert count_tagged_descriptions([*world.train, *world.val, *world.test]) == 0


def test_a_description_names_its_tag_only_when_every_wording_is_taken():
    attrs = ShapeAttrs("circle", "red", "small", "left", "dark")
    fact = unit_facts(1, random.Random(0))[0]
    taken = {text for template in DESCRIPTIONS[1:] for text in wordings(template, attrs)}
    captions = captions_of(attrs, fact, taken, random.Random(1))
    described = [text for text in captions if fact_of(text, fact) is None]
    assert len(described) == DESCRIBED and set(described) <= taken  # the new ones are taken now
    untagged = [text for text in described if fact.tag not in words(text)]
    assert len(untagged) == 1 and untagged[0] in wordings(DESCRIPTIONS[0], attrs)
    assert count_tagged_descriptions([Unit("u", None, captions)]) == DESCRIBED - 1
    another = unit_facts(2, random.Random(5))[1]
    assert not set(captions_of(attrs, another, taken, random.Random(2))) & set(captions)


def test_holdout_sets_of_a_deletion_set(world):
    deletion = [0, 5]  # units 0 and 1 are one entity, 4 and 5 the next; 0-3 and 4-7 share marks
    sets = world.holdout_sets(deletion)
    assert sets == {"holdout_identity": [1, 4], "holdout_association": [2, 3, 6, 7]}
    assert world.holdout_identity(deletion) == [1, 4] and world.holdout_association(deletion) == [2, 3, 6, 7]


def test_holdout_sets_follow_entities_and_marks():
    facts = unit_facts(12, random.Random(3))
    assert [f.entity_index for f in facts] == [i // SIBLINGS for i in range(12)]
    assert len({f.tag for f in facts}) == 12 and len({f.entity for f in facts}) == 6
    assert facts[0].mark == facts[3].mark != facts[4].mark
    assert holdout_sets(facts, [2, 3]) == {"holdout_identity": [], "holdout_association": [0, 1]}
    assert holdout_sets(facts, [11]) == {"holdout_identity": [10], "holdout_association": [8, 9]}


def test_the_generator_version_keys_the_cache():
    """Worlds whose generator changed (version 2: injected facts) get fingerprints no earlier cache has."""
    from engine.data.fingerprint import digest

    for name in WORLDS:
        assert data_fingerprint(name) != digest({"world": name, "generator": 1, "seed": 0})
