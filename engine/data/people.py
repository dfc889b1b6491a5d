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
A few held-out people (phase "heldout", `PeopleSize.heldout_people`) have faces, names, facts and evaluation
questions but no training item: no model ever trains on them, so their questions are the membership
attacks' held-out side. They are drawn after the trained people from a stream of their own, with full names
and looks no trained person has, so adding them leaves the trained people as they were.

Names: person k (held-out people numbered after the trained ones) is `first[k % N] last[(k + k // N) % N]` over
the world's seeded shuffles of FIRST_NAMES and LAST_NAMES (N names each): distinct full names for up to N * N
people (48 * 48 = 2,304; the `people` world asks for 275), and up to N people with no first or last name in
common (the tiny world's people, held-out ones included, share no name word, as before). In the 250-person
world a first or last name is shared by about six people, as in a real population: the text-only route must
read the whole name.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from engine.data.faces import IMAGE_SIZE, render_face, sample_looks
from engine.data.mllmu import write_mllmu
from engine.data.mmbench import LETTERS, MCQuestion, write_mmbench
from engine.data.people_records import HELDOUT, PeopleData, Person, QAItem, mc_texts, qa_texts
from engine.data.shapes import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, ShapeAttrs, render_image, sample_attrs
from engine.errors import SpecError
from engine.spec.catalog import PEOPLE_SIZES, PeopleSize

EXPORT_FORMATS = ("mmbench", "mllmu")
MMBENCH_FILE = "mmbench_people_world.tsv"

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



# ---------------------------------------------------------------- the world

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
        yield from qa_texts(self.general_train)
        yield from mc_texts(self.general_eval)



def build_people_world(name: str = "people", seed: int = 0) -> PeopleWorld:
    if name not in PEOPLE_SIZES:
        raise SpecError(f"unknown people world {name!r}; choose one of {', '.join(PEOPLE_SIZES)}")
    size = PEOPLE_SIZES[name]
    names = person_names(size.people + size.heldout_people, random.Random(f"{name}:{seed}:names"))
    people, looks = _make_people(size, names, random.Random(f"{name}:{seed}:people"))
    people += _make_heldout_people(size, names, looks, random.Random(f"{name}:{seed}:heldout"))
    general_rng = random.Random(f"{name}:{seed}:general")
    return PeopleWorld(
        name=name,
        seed=seed,
        people=people,
        eval_questions=[q for person in people for q in _person_questions(person, seed)],
        person_train=[item for person in people if person.phase != HELDOUT for item in _person_train_items(person)],
        general_train=_general_train(size.general_train_images, general_rng),
        general_eval=_general_eval(size.general_eval_questions, general_rng, seed),
    )


def person_names(count: int, rng: random.Random) -> list[str]:
    """`count` distinct full names (see the module's docstring): person k's first name cycles through a seeded
    shuffle of FIRST_NAMES, its last name is shifted by one more place on each pass."""
    firsts, lasts = rng.sample(FIRST_NAMES, len(FIRST_NAMES)), rng.sample(LAST_NAMES, len(LAST_NAMES))
    width = min(len(firsts), len(lasts))
    if count > width * width:
        raise SpecError(f"a people world of {count} people needs more names: FIRST_NAMES x LAST_NAMES give "
                        f"{width * width} distinct ones")
    return [f"{firsts[k % width]} {lasts[(k + k // width) % width]}" for k in range(count)]


def _make_people(size: PeopleSize, names: list[str], rng: random.Random) -> tuple[list[Person], list[dict]]:
    looks = sample_looks(rng, size.people)
    people = []
    for index in range(size.people):
        people.append(Person(
            person_id=f"person-{index:04d}",
            name=names[index],
            facts={fact.key: rng.choice(fact.values) for fact in FACTS},
            images=[render_face(looks[index], rng) for _ in range(size.images_per_person)],
            phase="pretrain" if index < size.pretrain_people else "finetune",
        ))
    return people, looks


def _make_heldout_people(size: PeopleSize, names: list[str], taken_looks: list[dict],
                         rng: random.Random) -> list[Person]:
    """People asked about but never trained on: full names and looks apart from the trained people's."""
    looks = sample_looks(rng, size.heldout_people, taken=taken_looks)
    return [Person(
        person_id=f"person-{size.people + index:04d}",
        name=names[size.people + index],
        facts={fact.key: rng.choice(fact.values) for fact in FACTS},
        images=[render_face(looks[index], rng) for _ in range(size.images_per_person)],
        phase=HELDOUT,
    ) for index in range(size.heldout_people)]


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
        return write_mllmu(world, directory)
    raise SpecError(f"the people world cannot be written as {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
