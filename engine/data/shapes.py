"""The image-text part of the built-in world: procedurally drawn shapes with several captions each.

Deterministic by seed. Each image has one object (shape, colour, size, position) on a textured
background; its captions describe overlapping subsets of those attributes, as real captions do.
A deletion unit is an image with all its captions; its id is the image's relative path, the same
value the Flickr30K (Karpathy) export writes in each record's `image` field.

Facts only memory can hold (engine/data/facts.py): each picture has its own made-up tag and belongs to a
made-up entity drawn twice (the two pictures share its shape and colour; size, position and background vary)
with a mark. Three captions describe what the picture shows, worded as no other picture's caption is; two
state its memorised facts, each naming the tag: one the entity and its mark ("picture vokelu shows drabimor
marked kappa"), one the picture's owner and place ("picture vokelu owned by mira made in oslo"). Ranking those
needs the tag or the entity memorised, which a model that never saw the picture cannot have; ranking the
descriptions needs the skill of matching a picture to words, which test performance measures.

Why the descriptions carry no tag (generator version 3): at version 2 every caption named its picture's tag,
and the tiny CLIP learned the tags instead of the pictures. On `shapes` (`mmul-workbench demo`: seed 42, 100
units deleted) its original recalled Df at 99.6 r_mean and test at 3.3, Retrain Df at 1.3, so a method's cost
in skill could not show. At version 3 the same demo's original recalls test at 42.9 and Df at 77.3, Retrain
Df at 37.6 (Df/Dr AUC 49.3 and 84.2). No caption is shared by two pictures all the same: a description
takes a wording (synonyms of size, position and background) no earlier picture's caption has, and names the
tag only when no template has a free wording left (`count_tagged_descriptions`: 7 of `shapes`' 5,700).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from engine.data.facts import HoldoutWorld, UnitFacts, unit_facts

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star", "ring", "bar")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 190),
    "orange": (245, 140, 30),
    "cyan": (40, 210, 220),
    "pink": (245, 130, 190),
}
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "middle")
BACKGROUNDS = {"dark": (35, 35, 40), "grey": (120, 120, 125), "light": (215, 215, 210)}

POSITION_PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "middle": "in the middle",
}
IMAGE_DIR = "shapes-images"


@dataclass(frozen=True)
class ShapeAttrs:
    shape: str
    colour: str
    size: str
    position: str
    background: str


@dataclass
class Unit:
    """One deletion unit: an image and all its captions."""

    unit_id: str
    image: Image.Image
    captions: list[str]
    attrs: ShapeAttrs | None = None


@dataclass
class ImageTextWorld(HoldoutWorld):
    name: str
    train: list[Unit]
    val: list[Unit]
    test: list[Unit]
    image_size: int
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> list[Unit]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def vocabulary(self) -> list[str]:
        words: set[str] = set()
        for units in (self.train, self.val, self.test):
            for unit in units:
                for caption in unit.captions:
                    words.update(caption.lower().split())
        return sorted(words)


def sample_attrs(rng: random.Random) -> ShapeAttrs:
    return ShapeAttrs(
        shape=rng.choice(SHAPES),
        colour=rng.choice(list(COLOURS)),
        size=rng.choice(SIZES),
        position=rng.choice(POSITIONS),
        background=rng.choice(list(BACKGROUNDS)),
    )


def entity_attrs(facts: list[UnitFacts], rng: random.Random) -> list[ShapeAttrs]:
    """One picture's attributes per unit; the units of one entity show the same shape in the same colour."""
    looks: dict[int, ShapeAttrs] = {}
    attrs = []
    for fact in facts:
        drawn = sample_attrs(rng)
        first = looks.setdefault(fact.entity_index, drawn)
        attrs.append(ShapeAttrs(**{**drawn.__dict__, "shape": first.shape, "colour": first.colour}))
    return attrs


WORDS = {*SHAPES, *COLOURS, *SIZES, *POSITIONS, *BACKGROUNDS,  # made-up words never equal these
         "little", "big", "centre", "near", "black", "gray", "pale"}


def _centre(position: str, size: int, rng: random.Random) -> tuple[float, float]:
    third, jitter = size / 3.0, size / 16.0
    x, y = {
        "left": (0.5 * third, 1.5 * third),
        "right": (2.5 * third, 1.5 * third),
        "top": (1.5 * third, 0.5 * third),
        "bottom": (1.5 * third, 2.5 * third),
        "middle": (1.5 * third, 1.5 * third),
    }[position]
    return x + rng.uniform(-jitter, jitter), y + rng.uniform(-jitter, jitter)


def _draw_object(draw: ImageDraw.ImageDraw, attrs: ShapeAttrs, cx: float, cy: float, r: float) -> None:
    rgb = COLOURS[attrs.colour]
    if attrs.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb)
    elif attrs.shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=rgb)
    elif attrs.shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=rgb)
    elif attrs.shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=rgb)
    elif attrs.shape == "cross":
        w = max(1.0, r / 3)
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=rgb)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=rgb)
    elif attrs.shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = np.pi / 2 + k * np.pi / 5
            points.append((cx + radius * np.cos(angle), cy - radius * np.sin(angle)))
        draw.polygon(points, fill=rgb)
    elif attrs.shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=rgb, width=max(1, int(r / 3)))
    elif attrs.shape == "bar":
        draw.rectangle([cx - r, cy - r / 3, cx + r, cy + r / 3], fill=rgb)
    else:  # pragma: no cover - SHAPES is closed
        raise ValueError(attrs.shape)


def render_image(attrs: ShapeAttrs, size: int, rng: random.Random) -> Image.Image:
    """Draw one image; `rng` drives the jitter and the per-image texture."""
    base = np.array(BACKGROUNDS[attrs.background], dtype=np.float32)
    noise_rng = np.random.default_rng(rng.getrandbits(32))
    texture = noise_rng.normal(0.0, 12.0, size=(size, size, 3)).astype(np.float32)
    pixels = np.clip(base + texture, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    radius = size * (0.13 if attrs.size == "small" else 0.24) * rng.uniform(0.9, 1.1)
    cx, cy = _centre(attrs.position, size, rng)
    _draw_object(draw, attrs, cx, cy, radius)
    return image


def captions_for(attrs: ShapeAttrs, rng: random.Random, count: int = 5) -> list[str]:
    a = attrs
    where = POSITION_PHRASES[a.position]
    templates = [
        f"a {a.size} {a.colour} {a.shape} {where}",
        f"a {a.colour} {a.shape} on a {a.background} background",
        f"{where} there is a {a.size} {a.shape} coloured {a.colour}",
        f"a {a.size} {a.shape} in {a.colour} {where} on {a.background}",
        f"the picture shows a {a.colour} {a.shape} {where}",
        f"a {a.background} picture with a {a.size} {a.colour} {a.shape}",
        f"one {a.colour} {a.shape} {where} of a {a.background} picture",
    ]
    rng.shuffle(templates)
    return templates[:count]


# What the picture shows, in the wordings a description may take: each template filled with every synonym
# of its size, position and background. Many pictures share a shape, colour and position; the synonyms give
# each a wording no other picture's caption has (issue 24 item 2) without naming the picture.
DESCRIPTIONS = (
    "a {size} {colour} {shape} {where}",
    "a {colour} {shape} on a {background} background",
    "{where} there is a {size} {shape} coloured {colour}",
    "a {size} {shape} in {colour} {where} on {background}",
    "a {background} picture with a {size} {colour} {shape}",
    "the picture shows a {colour} {shape} {where}",
    "one {colour} {shape} {where} of a {background} picture",
)
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
PLACE_WORDS = {
    "left": ("on the left", "at the left"),
    "right": ("on the right", "at the right"),
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "near the bottom"),
    "middle": ("in the middle", "in the centre"),
}
BACKGROUND_WORDS = {"dark": ("dark", "black"), "grey": ("grey", "gray"), "light": ("light", "pale")}
DESCRIBED = 3  # captions of what a picture shows; the other two state its facts


def wordings(template: str, attrs: ShapeAttrs) -> list[str]:
    """Every distinct wording of one description template for this picture."""
    return sorted({template.format(size=size, colour=attrs.colour, shape=attrs.shape, where=where, background=back)
                   for size in SIZE_WORDS[attrs.size] for where in PLACE_WORDS[attrs.position]
                   for back in BACKGROUND_WORDS[attrs.background]})


# A fact caption's wording, and the same fact in other words of the world's vocabulary (the rephrase attack's).
FACT_WORDINGS = (
    ("picture {tag} shows {entity} marked {mark}", "{entity} marked {mark} in picture {tag}"),
    ("picture {tag} owned by {owner} made in {place}", "picture {tag} made in {place} owned by {owner}"),
)


def wording_pattern(wording: str) -> re.Pattern:
    """A wording as a regular expression: each {field} one word, named by the field; the rest literal."""
    parts = re.split(r"\{(\w+)\}", wording)  # literal, field, literal, field, ..., literal
    return re.compile("".join(re.escape(part) if i % 2 == 0 else rf"(?P<{part}>\S+)" for i, part in enumerate(parts)))


FACT_FORMS = [(wording_pattern(said), reworded) for said, reworded in FACT_WORDINGS]


def fact_captions(fact: UnitFacts) -> list[str]:
    return [said.format(**vars(fact)) for said, _ in FACT_WORDINGS]


def reworded_fact(caption: str) -> str | None:
    """A fact caption (fact_captions) stated in other words, or None for a description: the rephrase attack's
    paraphrase of a fact, which must keep the fact (a description in its place would state another thing)."""
    for form, reworded in FACT_FORMS:
        match = form.fullmatch(caption)
        if match:
            return reworded.format(**match.groupdict())
    return None


def captions_of(attrs: ShapeAttrs, fact: UnitFacts, taken: set[str], rng: random.Random) -> list[str]:
    """DESCRIBED captions of what the picture shows, from different templates, each in a wording not in `taken`
    (when fewer templates than that have a free wording, the rest name the picture's tag), and its two fact
    captions; shuffled. Adds the descriptions to `taken`."""
    templates = list(DESCRIPTIONS)
    rng.shuffle(templates)
    shown: list[str] = []
    for template in templates:
        options = wordings(template, attrs)
        rng.shuffle(options)
        fresh = [text for text in options if text not in taken]
        if fresh and len(shown) < DESCRIBED:
            shown.append(fresh[0])
    shown += [f"picture {fact.tag} {wordings(template, attrs)[0]}" for template in templates[: DESCRIBED - len(shown)]]
    taken.update(shown)
    captions = shown + fact_captions(fact)
    rng.shuffle(captions)
    return captions


def count_tagged_descriptions(units: list[Unit]) -> int:
    """How many descriptions fell back to naming their picture's tag (no template had a free wording): the
    captions that start with "picture " and state no fact."""
    return sum(text.startswith("picture ") and reworded_fact(text) is None for unit in units for text in unit.captions)


def captioned_images(count: int, image_size: int, rng: random.Random, prefix: str = "pretrain") -> list[Unit]:
    """`count` pictures with their captions, drawn from `rng` (a classification world's pre-training corpus)."""
    units = []
    for index in range(count):
        attrs = sample_attrs(rng)
        image = render_image(attrs, image_size, rng)
        units.append(Unit(f"{prefix}/{index:06d}.png", image, captions_for(attrs, rng), attrs))
    return units


WORLD_SIZES = {
    # name: (train, val, test, image size)
    "shapes": (1500, 100, 300, 32),
    "shapes-tiny": (160, 24, 48, 32),
}


def build_shapes_world(name: str = "shapes", seed: int = 0) -> ImageTextWorld:
    n_train, n_val, n_test, image_size = WORLD_SIZES[name]
    rng = random.Random(f"{name}:{seed}")
    facts = unit_facts(n_train + n_val + n_test, rng, WORDS)
    units, taken = [], set()
    for index, (fact, attrs) in enumerate(zip(facts, entity_attrs(facts, rng))):
        image = render_image(attrs, image_size, rng)
        unit_id = f"{IMAGE_DIR}/{index:06d}.png"
        units.append(Unit(unit_id, image, captions_of(attrs, fact, taken, rng), attrs))
    return ImageTextWorld(
        name=name,
        train=units[:n_train],
        val=units[n_train : n_train + n_val],
        test=units[n_train + n_val :],
        image_size=image_size,
        meta={"seed": seed, "facts": facts[:n_train]},
    )
