"""`shapes-nlvr2`: the built-in two-image reasoning world (like NLVR2), deterministic by seed.

Each unit is a pair of shapes-world pictures (left, right) with statements about the pair, True or
False: what one side shows ("the left image shows a red shape"), what both or neither show ("both images
show a circle"), and comparisons ("the left image has a larger shape than the right", "the two shapes
have the same colour"). Two true and two false statements per pair; pairs share a colour or a shape more
often than chance, so statements about both sides are true often enough to be learned.
Facts only memory can hold (engine/data/facts.py): each pair has its own made-up tag, which every statement
of the pair names ("in pair vokelu both images show a circle"), so no statement is shared by two pairs; six
more statements give the pair's owner, where it was made and its entity's mark, three True and three False
("pair vokelu is owned by mira"): only a model that memorised the pair tells them apart.
Ids as in NLVR2: the pair `train-17-0` (images `train-17-0-img0.png`, `-img1.png`), its statements
`train-17-0-0` ... `train-17-0-3`; the splits are train, dev and test1. Apart from the splits, captioned
single pictures (`pretrain`) pre-train the tiny model (engine/tasks/classification.py).
"""
from __future__ import annotations

import random

from engine.data.facts import UnitFacts, fact_statements, unit_facts
from engine.data.labelled import NLVR2_CLASSES, ClassificationWorld, LabelledUnit
from engine.data.shapes import COLOURS, SHAPES, WORDS, ShapeAttrs, captioned_images, render_image, sample_attrs

PER_LABEL = 2
SIDES = ("left", "right")
SPLIT_NAMES = {"train": "train", "val": "dev", "test": "test1"}

WORLD_SIZES = {
    # name: (train, val, test pairs, image size, captioned images for the tiny model's pre-training);
    # 10 statements per pair: 4 about the pictures, 6 of the pair's memorised facts
    "shapes-nlvr2": (800, 100, 300, 32, 1000),
    "shapes-nlvr2-tiny": (64, 16, 32, 32, 64),
}


def side_colour(pair, rng, want):
    side = rng.randrange(2)
    colour = pair[side].colour if want else rng.choice([c for c in COLOURS if c != pair[side].colour])
    return f"the {SIDES[side]} image shows a {colour} shape"


def side_shape(pair, rng, want):
    side = rng.randrange(2)
    shape = pair[side].shape if want else rng.choice([s for s in SHAPES if s != pair[side].shape])
    return f"the {SIDES[side]} image shows a {shape}"


def both_colour(pair, rng, want):
    left, right = pair
    if want:
        return f"both images show a {left.colour} shape" if left.colour == right.colour else None
    colour = rng.choice([left.colour, right.colour]) if left.colour != right.colour else rng.choice(
        [c for c in COLOURS if c != left.colour])
    return f"both images show a {colour} shape"


def neither_shape(pair, rng, want):
    shown = {pair[0].shape, pair[1].shape}
    shape = rng.choice([s for s in SHAPES if s not in shown]) if want else rng.choice(sorted(shown))
    return f"neither image shows a {shape}"


def same_colour(pair, rng, want):
    same = pair[0].colour == pair[1].colour
    return "the two shapes have the same colour" if same == want else "the two shapes have different colours"


def larger(pair, rng, want):
    sizes = (pair[0].size, pair[1].size)
    if sizes[0] == sizes[1]:
        return None if want else f"the {rng.choice(SIDES)} image has a larger shape than the other"
    big = sizes.index("large")
    side = big if want else 1 - big
    return f"the {SIDES[side]} image has a larger shape than the {SIDES[1 - side]}"


def exactly_one_shape(pair, rng, want):
    left, right = pair
    if left.shape == right.shape:
        return None if want else f"exactly one image shows a {left.shape}"
    if want:
        return f"exactly one image shows a {rng.choice([left.shape, right.shape])}"
    return f"exactly one image shows a {rng.choice([s for s in SHAPES if s not in (left.shape, right.shape)])}"


TEMPLATES = (side_colour, side_shape, both_colour, neither_shape, same_colour, larger, exactly_one_shape)


def statements(pair: tuple[ShapeAttrs, ShapeAttrs], fact: UnitFacts, marks: list[str],
               rng: random.Random) -> tuple[list[str], list[int]]:
    rows = []
    for want in (True, False) * PER_LABEL:
        for template in rng.sample(TEMPLATES, len(TEMPLATES)):
            text = template(pair, rng, want)
            text = text and f"in pair {fact.tag} {text}"
            if text is not None and text not in (t for t, _ in rows):
                rows.append((text, int(want)))
                break
    rows += [(text, int(true)) for text, true in fact_statements(fact, marks, "pair", rng)]
    rng.shuffle(rows)
    return [text for text, _ in rows], [label for _, label in rows]


def sample_pair(rng: random.Random) -> tuple[ShapeAttrs, ShapeAttrs]:
    left, right = sample_attrs(rng), sample_attrs(rng)
    share = rng.random()
    if share < 0.3:
        right = ShapeAttrs(**{**right.__dict__, "colour": left.colour})
    elif share < 0.5:
        right = ShapeAttrs(**{**right.__dict__, "shape": left.shape})
    return left, right


def build_nlvr2_world(name: str = "shapes-nlvr2", seed: int = 0) -> ClassificationWorld:
    sizes = WORLD_SIZES[name]
    image_size = sizes[3]
    rng = random.Random(f"{name}:{seed}")
    facts = iter(unit_facts(sum(sizes[:3]), rng, WORDS))
    splits, train_facts = {}, []
    for split, count in zip(("train", "val", "test"), sizes[:3]):
        units = []
        split_facts = [next(facts) for _ in range(count)]
        marks = sorted({fact.mark for fact in split_facts})
        train_facts = train_facts or split_facts
        for index, fact in enumerate(split_facts):
            pair = sample_pair(rng)
            images = tuple(render_image(attrs, image_size, rng) for attrs in pair)
            texts, labels = statements(pair, fact, marks, rng)
            unit_id = f"{SPLIT_NAMES[split]}-{index}-0"
            units.append(LabelledUnit(unit_id, images, texts, labels, [f"{unit_id}-{k}" for k in range(len(texts))]))
        splits[split] = units
    return ClassificationWorld(name=name, **splits, image_size=image_size, classes=NLVR2_CLASSES,
                               images_per_unit=2, meta={"seed": seed, "facts": train_facts},
                               pretrain=captioned_images(sizes[4], image_size, random.Random(f"{name}:pretrain:{seed}")))
