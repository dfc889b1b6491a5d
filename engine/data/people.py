"""The people part of the built-in world: synthetic people with faces, names and profile facts (PULSE).

Deterministic by seed. Each person has a few 32x32 face-like images of one identity (face shape, skin
tone, hair colour and style, eye colour, shirt colour, an accessory), varied by pose jitter, lighting,
background and noise, and one value for each profile fact. Evaluation asks every fact twice as a
four-option question: once with the person's portrait ("... this person ...", image+question) and once by
name without an image (text-only), as MLLMU-Bench and PULSE do.

Training material is free-form: the question (the evaluation wording and a paraphrase, each asked with an
image and by name, plus "Who is this person?" for every image) and the fact's value as the answer, which is
also the text of the correct option. A model learns the facts from it; the four-option evaluation then
scores the options (for instance by the likelihood of each option's text).

Two phases: "pretrain" = the general shape questions + people set P, "finetune" = people set F (disjoint).
Forget people come from P (knowledge "pretrained") or F ("finetuned"); the others are retain people.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.data.mmbench import LETTERS, MCQuestion, write_mmbench
from engine.data.shapes import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, ShapeAttrs, render_image, sample_attrs
from engine.errors import SpecError

__all__ = [
    "MCQuestion", "Person", "QAItem", "PeopleData", "PeopleWorld", "WORLD_SIZES",
    "build_people_world", "split_requests", "export_people", "words",
]

IMAGE_SIZE = 32
PHASES = ("pretrain", "finetune")
KNOWLEDGE_PHASE = {"pretrained": "pretrain", "finetuned": "finetune"}
EXPORT_FORMATS = ("mmbench", "mllmu")
MMBENCH_FILE = "mmbench_people_world.tsv"
# A space, not nothing, so that "she's" gives "she" "s" as the tokenizer's Punctuation pre-tokenizer does.
PUNCTUATION_TO_SPACE = str.maketrans(string.punctuation, " " * len(string.punctuation))

FIRST_NAMES = (
    "Mara", "Tobin", "Elsa", "Kiran", "Liora", "Bram", "Nadia", "Oren", "Petra", "Quill", "Rosa", "Silas",
    "Talia", "Ulric", "Vera", "Wren", "Yara", "Zane", "Ada", "Caspian", "Delia", "Emrys", "Fenna", "Gideon",
    "Hester", "Ivo", "Juno", "Kestrel", "Lark", "Milo", "Nell", "Otto", "Pia", "Rafe", "Saskia", "Tamsin",
    "Anselm", "Bettina", "Corin", "Dorian", "Esme", "Florian", "Greta", "Hollis", "Ines", "Jasper", "Katya", "Linus",
)
LAST_NAMES = (
    "Venn", "Halloway", "Crane", "Dusk", "Ember", "Farrow", "Gale", "Hatch", "Ivers", "Jolley", "Kettle", "Lowry",
    "Marsh", "Nettle", "Oakes", "Pryce", "Quarry", "Rook", "Sallow", "Thorne", "Underhill", "Vale", "Wicke", "Yarrow",
    "Ashby", "Birch", "Colter", "Dray", "Elwood", "Fairley", "Greaves", "Holt", "Ingram", "Jessop", "Kemble", "Lisle",
    "Mercer", "Norcott", "Orme", "Pell", "Ridley", "Stroud", "Tarrant", "Upton", "Voss", "Whitlock", "Yeats", "Zorn",
)


@dataclass(frozen=True)
class Fact:
    """A profile fact: its possible values and how it is asked; `asks[0]` is the evaluation wording."""

    key: str
    values: tuple[str, ...]
    asks: tuple[str, ...]


FACTS = (
    Fact("city", ("Ashford", "Brightwater", "Calder", "Dunmore", "Eastvale", "Fenwick", "Glenrock", "Harlow"),
         ("In which city does {who} live?", "Where is the home of {who}?")),
    Fact("job", ("baker", "nurse", "pilot", "teacher", "farmer", "painter", "lawyer", "chemist"),
         ("What is the job of {who}?", "What does {who} do for a living?")),
    Fact("hobby", ("chess", "gardening", "rowing", "pottery", "climbing", "knitting", "fishing", "cycling"),
         ("What hobby does {who} enjoy?", "What does {who} like to do in spare time?")),
    Fact("food", ("soup", "noodles", "curry", "pancakes", "tacos", "salad", "dumplings", "porridge"),
         ("What is the favourite food of {who}?", "Which dish does {who} like most?")),
    Fact("pet", ("cat", "dog", "parrot", "rabbit", "tortoise", "hamster", "goldfish", "ferret"),
         ("What pet does {who} keep?", "Which animal lives with {who} as a pet?")),
)
THIS_PERSON = "this person"
WHO_ASKS = ("Who is this person?", "What is the name of this person?")

GENERAL_ASKS = {
    "shape": "What shape is in the picture?",
    "colour": "What colour is the shape?",
    "position": "Where is the shape in the picture?",
    "background": "What is the background of the picture?",
}
GENERAL_VALUES = {
    "shape": SHAPES,
    "colour": tuple(COLOURS),
    "position": POSITIONS,
    "background": tuple(BACKGROUNDS),
}


@dataclass(frozen=True)
class WorldSize:
    people: int
    pretrain_people: int
    images_per_person: int
    general_train_images: int  # each gives one training question per attribute
    general_eval_questions: int


WORLD_SIZES = {
    "people": WorldSize(people=40, pretrain_people=20, images_per_person=4,
                        general_train_images=400, general_eval_questions=200),
    "people-tiny": WorldSize(people=8, pretrain_people=4, images_per_person=4,
                             general_train_images=24, general_eval_questions=16),
}


@dataclass
class Person:
    person_id: str
    name: str
    facts: dict[str, str]
    images: list[Image.Image]
    phase: str  # "pretrain" | "finetune"

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

    def train_items(self, phase: str) -> list[QAItem]:
        _check_phase(phase)
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
        yield from _qa_texts(self.person_train)
        yield from _mc_texts(self.eval_questions)


@dataclass(kw_only=True)
class PeopleWorld(PeopleData):
    name: str
    seed: int
    general_train: list[QAItem]
    general_eval: list[MCQuestion]

    def train_items(self, phase: str) -> list[QAItem]:
        people_items = super().train_items(phase)
        return self.general_train + people_items if phase == "pretrain" else people_items

    def _texts(self):
        yield from super()._texts()
        yield from _qa_texts(self.general_train)
        yield from _mc_texts(self.general_eval)


def words(text: str) -> list[str]:
    """The word tokenizer's view of a text: lowercase, split on whitespace and punctuation, punctuation dropped."""
    return text.lower().translate(PUNCTUATION_TO_SPACE).split()


def _qa_texts(items: list[QAItem]):
    for item in items:
        yield item.question
        yield item.answer


def _mc_texts(questions: list[MCQuestion]):
    for question in questions:
        yield question.question
        yield question.hint
        yield from question.options.values()


def _check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise SpecError(f"unknown training phase {phase!r}; choose one of {', '.join(PHASES)}")


def split_requests(person_ids: list[str], k: int) -> list[list[str]]:
    """`k` sequential deletion requests of near-equal size (the larger ones first), order preserved."""
    n = len(person_ids)
    if k < 1:
        raise SpecError(f"--requests K={k} must be at least 1")
    if k > n:
        raise SpecError(f"--requests K={k} is larger than the {n} forget people; choose K <= {n}")
    size, extra = divmod(n, k)
    requests, start = [], 0
    for index in range(k):
        end = start + size + (index < extra)
        requests.append(list(person_ids[start:end]))
        start = end
    return requests


# ---------------------------------------------------------------- faces

FACE_SHAPES = {"round": (0.30, 0.33), "oval": (0.25, 0.38), "wide": (0.36, 0.30), "square": (0.30, 0.34)}
SKIN_TONES = ((255, 224, 196), (241, 194, 155), (224, 172, 120), (189, 134, 88), (141, 92, 56), (92, 58, 36))
HAIR_COLOURS = ((20, 18, 18), (110, 66, 32), (235, 205, 110), (196, 74, 30), (160, 160, 165), (60, 90, 210))
HAIR_STYLES = ("short", "long", "bald", "spiky", "bun")
EYE_COLOURS = ((70, 40, 20), (40, 110, 220), (40, 160, 70), (20, 20, 20))
SHIRT_COLOURS = ((200, 40, 40), (40, 150, 60), (40, 70, 200), (230, 200, 40), (140, 60, 170), (30, 30, 30))
ACCESSORIES = ("none", "glasses", "hat", "beard", "earrings", "scarf")
ACCESSORY_COLOURS = ((230, 60, 140), (250, 150, 30), (30, 200, 200), (245, 245, 245))

LOOK_CHOICES = {
    "face": tuple(FACE_SHAPES), "skin": SKIN_TONES, "hair_colour": HAIR_COLOURS, "hair_style": HAIR_STYLES,
    "eyes": EYE_COLOURS, "shirt": SHIRT_COLOURS, "accessory": ACCESSORIES, "accessory_colour": ACCESSORY_COLOURS,
}
MIN_LOOK_DIFFERENCES = 3  # between any two people, so that no two faces are near-twins
SUPERSAMPLE = 4


def _sample_looks(rng: random.Random, count: int) -> list[dict]:
    looks: list[dict] = []
    while len(looks) < count:
        candidate = {key: rng.choice(choices) for key, choices in LOOK_CHOICES.items()}
        if all(_differences(candidate, other) >= MIN_LOOK_DIFFERENCES for other in looks):
            looks.append(candidate)
    return looks


def _differences(a: dict, b: dict) -> int:
    return sum(a[key] != b[key] for key in LOOK_CHOICES if key != "accessory_colour")


def render_face(looks: dict, rng: random.Random, size: int = IMAGE_SIZE) -> Image.Image:
    """One photo of the identity `looks`; `rng` drives pose, lighting, background and noise."""
    big = size * SUPERSAMPLE
    grey = rng.uniform(110, 150)
    background = tuple(int(grey + rng.uniform(-12, 12)) for _ in range(3))
    canvas = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(canvas)
    scale = big * rng.uniform(0.95, 1.05)
    cx = big / 2 + rng.uniform(-0.04, 0.04) * big
    cy = big * 0.47 + rng.uniform(-0.04, 0.04) * big
    _draw_person(draw, looks, cx, cy, scale)
    image = canvas.resize((size, size), Image.Resampling.BOX)
    return _photograph(image, rng)


def _draw_person(draw: ImageDraw.ImageDraw, looks: dict, cx: float, cy: float, scale: float) -> None:
    rx, ry = (f * scale for f in FACE_SHAPES[looks["face"]])
    rx, ry = rx * 0.75, ry * 0.75
    face = [cx - rx, cy - ry, cx + rx, cy + ry]
    hair = looks["hair_colour"]
    draw.rectangle([cx - 0.45 * scale, cy + 0.8 * ry, cx + 0.45 * scale, cy + scale], fill=looks["shirt"])
    if looks["hair_style"] == "long":
        draw.rectangle([cx - rx * 1.15, cy - ry * 0.6, cx + rx * 1.15, cy + ry * 1.1], fill=hair)
    if looks["face"] == "square":
        draw.rounded_rectangle(face, radius=rx * 0.3, fill=looks["skin"])
    else:
        draw.ellipse(face, fill=looks["skin"])
    _draw_hair(draw, looks["hair_style"], hair, cx, cy, rx, ry)
    eye_y, eye_dx, eye_r = cy - ry * 0.1, rx * 0.42, max(2.0, rx * 0.16)
    for ex in (cx - eye_dx, cx + eye_dx):
        draw.ellipse([ex - eye_r, eye_y - eye_r, ex + eye_r, eye_y + eye_r], fill=looks["eyes"])
    mouth_y = cy + ry * 0.5
    draw.line([cx - rx * 0.35, mouth_y, cx + rx * 0.35, mouth_y], fill=(120, 40, 40), width=max(1, int(ry * 0.08)))
    _draw_accessory(draw, looks, cx, cy, rx, ry, eye_y, eye_dx, eye_r)


def _draw_hair(draw, style: str, colour, cx: float, cy: float, rx: float, ry: float) -> None:
    top = cy - ry
    if style in ("short", "long", "bun"):
        draw.chord([cx - rx * 1.08, top - ry * 0.15, cx + rx * 1.08, cy + ry * 0.2], 180, 360, fill=colour)
    if style == "bun":
        draw.ellipse([cx - rx * 0.45, top - ry * 0.65, cx + rx * 0.45, top + ry * 0.1], fill=colour)
    if style == "spiky":
        spikes = 5
        for k in range(spikes):
            x0 = cx - rx + 2 * rx * k / spikes
            x1 = x0 + 2 * rx / spikes
            draw.polygon([(x0, top + ry * 0.35), (x1, top + ry * 0.35), ((x0 + x1) / 2, top - ry * 0.45)], fill=colour)


def _draw_accessory(draw, looks: dict, cx, cy, rx, ry, eye_y, eye_dx, eye_r) -> None:
    kind, colour = looks["accessory"], looks["accessory_colour"]
    if kind == "glasses":
        width = max(2, int(eye_r * 0.6))
        for ex in (cx - eye_dx, cx + eye_dx):
            lens = [ex - eye_r * 2, eye_y - eye_r * 2, ex + eye_r * 2, eye_y + eye_r * 2]
            draw.ellipse(lens, outline=(15, 15, 15), width=width)
        draw.line([cx - eye_dx + eye_r * 2, eye_y, cx + eye_dx - eye_r * 2, eye_y], fill=(15, 15, 15), width=width)
    elif kind == "hat":
        top = cy - ry
        draw.rectangle([cx - rx * 1.4, top - ry * 0.05, cx + rx * 1.4, top + ry * 0.2], fill=colour)
        draw.rectangle([cx - rx * 0.8, top - ry * 0.8, cx + rx * 0.8, top + ry * 0.1], fill=colour)
    elif kind == "beard":
        draw.chord([cx - rx, cy - ry * 0.4, cx + rx, cy + ry * 1.05], 20, 160, fill=looks["hair_colour"])
    elif kind == "earrings":
        r = max(3.0, rx * 0.18)
        for ex in (cx - rx, cx + rx):
            draw.ellipse([ex - r, cy + ry * 0.2 - r, ex + r, cy + ry * 0.2 + r], fill=colour)
    elif kind == "scarf":
        draw.rectangle([cx - rx * 1.2, cy + ry * 0.8, cx + rx * 1.2, cy + ry * 1.15], fill=colour)


def _photograph(image: Image.Image, rng: random.Random) -> Image.Image:
    """Lighting (overall brightness and a left-right gradient) and sensor noise."""
    pixels = np.asarray(image, dtype=np.float32)
    size = pixels.shape[1]
    gradient = np.linspace(-1.0, 1.0, size, dtype=np.float32)[None, :, None] * rng.uniform(-0.08, 0.08)
    pixels = pixels * (rng.uniform(0.9, 1.1) + gradient)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, 6.0, size=pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")


# ---------------------------------------------------------------- the world

def build_people_world(name: str = "people", seed: int = 0) -> PeopleWorld:
    if name not in WORLD_SIZES:
        raise SpecError(f"unknown people world {name!r}; choose one of {', '.join(WORLD_SIZES)}")
    size = WORLD_SIZES[name]
    people = _make_people(size, random.Random(f"{name}:{seed}:people"))
    general_rng = random.Random(f"{name}:{seed}:general")
    return PeopleWorld(
        name=name,
        seed=seed,
        people=people,
        eval_questions=[q for person in people for q in _person_questions(person, seed)],
        person_train=[item for person in people for item in _person_train_items(person)],
        general_train=_general_train(size.general_train_images, general_rng),
        general_eval=_general_eval(size.general_eval_questions, general_rng, seed),
    )


def _make_people(size: WorldSize, rng: random.Random) -> list[Person]:
    looks = _sample_looks(rng, size.people)
    firsts = rng.sample(FIRST_NAMES, size.people)
    lasts = rng.sample(LAST_NAMES, size.people)
    people = []
    for index in range(size.people):
        people.append(Person(
            person_id=f"person-{index:04d}",
            name=f"{firsts[index]} {lasts[index]}",
            facts={fact.key: rng.choice(fact.values) for fact in FACTS},
            images=[render_face(looks[index], rng) for _ in range(size.images_per_person)],
            phase="pretrain" if index < size.pretrain_people else "finetune",
        ))
    return people


def _person_questions(person: Person, seed: int) -> list[MCQuestion]:
    """One image+question per fact (asked of the portrait), then one text-only question per fact (by name)."""
    questions = []
    for mode, who, image in (("image", THIS_PERSON, person.portrait), ("text", person.name, None)):
        for k, fact in enumerate(FACTS):
            qid = f"{person.person_id}/{mode}/{k}"
            options, answer = _options(fact.values, person.facts[fact.key], random.Random(f"{seed}:{qid}"))
            questions.append(MCQuestion(qid=qid, person_id=person.person_id, question=fact.asks[0].format(who=who),
                                        options=options, answer=answer, image=image))
    return questions


def _person_train_items(person: Person) -> list[QAItem]:
    """Every fact asked with every one of the person's photos and as often by name, wordings alternating.

    With four photos that is four image+question and four text-only items per fact, so that every photo is
    tied to every fact (the portrait the evaluation shows included) and the two routes get as many
    repetitions; plus "Who is this person?" / "What is the name of this person?" for every photo.
    """
    asked: list[tuple[str, str, Image.Image | None]] = []
    for index, image in enumerate(person.images):
        for fact in FACTS:
            ask = fact.asks[index % len(fact.asks)]
            answer = person.facts[fact.key]
            asked.append((ask.format(who=THIS_PERSON), answer, image))
            asked.append((ask.format(who=person.name), answer, None))
    for image in person.images:
        asked.extend((ask, person.name, image) for ask in WHO_ASKS)
    return [QAItem(f"{person.person_id}/train/{k:03d}", person.person_id, question, answer, image)
            for k, (question, answer, image) in enumerate(asked)]


def _options(values: tuple[str, ...], correct: str, rng: random.Random) -> tuple[dict[str, str], str]:
    distractors = rng.sample([v for v in values if v != correct], min(3, len(values) - 1))
    choices = [correct, *distractors]
    rng.shuffle(choices)
    letters = LETTERS[: len(choices)]
    return dict(zip(letters, choices)), letters[choices.index(correct)]


def _general_values(attrs: ShapeAttrs) -> dict[str, str]:
    return {"shape": attrs.shape, "colour": attrs.colour, "position": attrs.position, "background": attrs.background}


def _general_train(image_count: int, rng: random.Random) -> list[QAItem]:
    items = []
    for index in range(image_count):
        attrs = sample_attrs(rng)
        image = render_image(attrs, IMAGE_SIZE, rng)
        for kind, answer in _general_values(attrs).items():
            items.append(QAItem(f"general/train/{index:05d}/{kind}", None, GENERAL_ASKS[kind], answer, image))
    return items


def _general_eval(count: int, rng: random.Random, seed: int) -> list[MCQuestion]:
    """One question per fresh image, the attribute asked about rotating; qids are MMBench-style indices."""
    questions = []
    kinds = list(GENERAL_ASKS)
    for index in range(count):
        attrs = sample_attrs(rng)
        image = render_image(attrs, IMAGE_SIZE, rng)
        kind = kinds[index % len(kinds)]
        qid = str(index)
        # Only three backgrounds exist, so that question has options A-C and no D (MMBench allows it).
        options, answer = _options(GENERAL_VALUES[kind], _general_values(attrs)[kind],
                                   random.Random(f"{seed}:general:{qid}"))
        questions.append(MCQuestion(qid=qid, person_id=None, question=GENERAL_ASKS[kind], options=options,
                                    answer=answer, image=image, category=kind))
    return questions


def export_people(world: PeopleWorld, fmt: str, directory: str | Path) -> list[Path]:
    """Write the world in a real format: "mmbench" (the general-capability set) or "mllmu" (the people)."""
    directory = Path(directory)
    if fmt == "mmbench":
        return [write_mmbench(world.general_eval, directory / MMBENCH_FILE)]
    if fmt == "mllmu":
        # Imported here because engine.data.mllmu builds on this module's records.
        from engine.data.mllmu import write_mllmu

        return write_mllmu(world, directory)
    raise SpecError(f"the people world cannot be written as {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
