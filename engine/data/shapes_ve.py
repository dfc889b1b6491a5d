"""`shapes-ve`: the built-in visual-entailment world (like SNLI-VE), deterministic by seed.

Each image is a shapes-world picture (one object: shape, colour, size, position, on a background). Its
hypotheses are labelled
- entailment: they state attributes the image shows ("there is a red circle", "the circle is large");
- contradiction: they state one attribute wrongly ("there is a blue circle" of a red one);
- neutral: they state what the image shows plus something it cannot tell (what the shape is made of,
  who drew it, what lies hidden behind it).
Two hypotheses of each label per image. Telling entailment from contradiction needs the image and the
text together (the fused representation); neutral is told by its words, as in SNLI-VE.
Facts only memory can hold (engine/data/facts.py): each picture has its own made-up tag, which every
hypothesis of the picture names ("in picture vokelu there is a red circle"), so no hypothesis is shared by two
pictures; six more hypotheses state the picture's owner, where it was made and its entity's mark, three
entailed and three contradicted ("picture vokelu is owned by mira"): only a model that memorised the picture
tells them apart; one that never saw it is at chance on them.
A unit is an image with all its hypotheses; its id is a Flickr30K-style number (image file `<id>.jpg`).
Apart from the splits, captioned pictures (`pretrain`) pre-train the tiny model (engine/tasks/classification.py).
"""
from __future__ import annotations

import random

from engine.data.facts import UnitFacts, fact_statements, unit_facts
from engine.data.labelled import VE_CLASSES, ClassificationWorld, LabelledUnit
from engine.data.shapes import (
    BACKGROUNDS,
    COLOURS,
    POSITION_PHRASES,
    SHAPES,
    SIZES,
    ShapeAttrs,
    WORDS,
    captioned_images,
    entity_attrs,
    render_image,
)

ENTAILMENT, NEUTRAL, CONTRADICTION = range(3)
PER_LABEL = 2  # hypotheses of each label per image

MATERIALS = ("wood", "metal", "glass", "paper", "plastic", "stone")
MAKERS = ("a child", "a robot", "a painter", "a teacher")
FEELS = ("soft", "rough", "warm", "cold", "heavy")

WORLD_SIZES = {
    # name: (train, val, test images, image size, captioned images for the tiny model's pre-training);
    # 12 hypotheses per image: 6 of what it shows, 6 of its memorised facts
    "shapes-ve": (1000, 100, 300, 32, 1000),
    "shapes-ve-tiny": (64, 16, 32, 32, 64),
}
FIRST_ID = 7_000_000_000  # unit ids look like Flickr30K ids (e.g. 7000000042)


def other(values, current, rng: random.Random):
    return rng.choice([v for v in values if v != current])


# attribute -> weight among the statements; colour and size are what a 32-pixel picture shows best
ATTRIBUTES = {"colour": 4, "size": 2, "position": 2, "shape": 2, "background": 1}


def statement(a: ShapeAttrs, attribute: str, rng: random.Random) -> str:
    """A statement of one attribute of `a` (true of `a`; a contradiction passes `a` with it changed)."""
    where = POSITION_PHRASES[a.position]
    return rng.choice({
        "colour": [f"there is a {a.colour} {a.shape}", f"the shape is {a.colour}", f"a {a.colour} shape is {where}"],
        "size": [f"the {a.shape} is {a.size}", f"there is a {a.size} shape", f"a {a.size} {a.shape} is {where}"],
        "position": [f"the {a.shape} is {where}", f"a {a.colour} shape is {where}", f"{where} there is a shape"],
        "shape": [f"there is a {a.shape}", f"the {a.colour} shape is a {a.shape}", f"a {a.shape} is {where}"],
        "background": [f"the background is {a.background}", f"the {a.shape} is on a {a.background} background"],
    }[attribute])


def changed(a: ShapeAttrs, attribute: str, rng: random.Random) -> ShapeAttrs:
    values = {"colour": list(COLOURS), "size": SIZES, "position": list(POSITION_PHRASES), "shape": SHAPES,
              "background": list(BACKGROUNDS)}[attribute]
    return ShapeAttrs(**{**a.__dict__, attribute: other(values, getattr(a, attribute), rng)})


def neutral(a: ShapeAttrs, rng: random.Random) -> str:
    hidden = f"{other(list(COLOURS), a.colour, rng)} {other(SHAPES, a.shape, rng)}"
    return rng.choice([
        f"the {a.colour} {a.shape} is made of {rng.choice(MATERIALS)}",
        f"the {a.shape} was drawn by {rng.choice(MAKERS)}",
        f"the {a.size} {a.shape} feels {rng.choice(FEELS)}",
        f"a {hidden} is hidden behind the {a.shape}",
    ])


def pick_attribute(rng: random.Random) -> str:
    return rng.choices(list(ATTRIBUTES), weights=list(ATTRIBUTES.values()))[0]


def hypothesis(a: ShapeAttrs, label: int, rng: random.Random) -> str:
    if label == NEUTRAL:
        return neutral(a, rng)
    attribute = pick_attribute(rng)
    return statement(a if label == ENTAILMENT else changed(a, attribute, rng), attribute, rng)


def hypotheses(a: ShapeAttrs, fact: UnitFacts, marks: list[str], rng: random.Random) -> tuple[list[str], list[int]]:
    rows: list[tuple[str, int]] = []
    for label in (ENTAILMENT, NEUTRAL, CONTRADICTION) * PER_LABEL:
        text = f"in picture {fact.tag} {hypothesis(a, label, rng)}"
        while text in (t for t, _ in rows):  # each hypothesis once per image
            text = f"in picture {fact.tag} {hypothesis(a, label, rng)}"
        rows.append((text, label))
    rows += [(text, ENTAILMENT if true else CONTRADICTION) for text, true in fact_statements(fact, marks, "picture", rng)]
    rng.shuffle(rows)
    return [text for text, _ in rows], [label for _, label in rows]


def build_ve_world(name: str = "shapes-ve", seed: int = 0) -> ClassificationWorld:
    n_train, n_val, n_test, image_size, n_pretrain = WORLD_SIZES[name]
    rng = random.Random(f"{name}:{seed}")
    facts = unit_facts(n_train + n_val + n_test, rng, WORDS | set(MATERIALS) | set(FEELS))
    marks = sorted({fact.mark for fact in facts})
    units = []
    for index, (fact, attrs) in enumerate(zip(facts, entity_attrs(facts, rng))):
        image = render_image(attrs, image_size, rng)
        texts, labels = hypotheses(attrs, fact, marks, rng)
        unit_id = str(FIRST_ID + index)
        text_ids = [f"{unit_id}.jpg#{k}r1{VE_CLASSES[label][0]}" for k, label in enumerate(labels)]
        units.append(LabelledUnit(unit_id, (image,), texts, labels, text_ids))
    return ClassificationWorld(name=name, train=units[:n_train], val=units[n_train : n_train + n_val],
                               test=units[n_train + n_val :], image_size=image_size, classes=VE_CLASSES,
                               images_per_unit=1, meta={"seed": seed, "facts": facts[:n_train]},
                               pretrain=captioned_images(n_pretrain, image_size, random.Random(f"{name}:pretrain:{seed}")))
