"""Rephrasing: Df's texts paraphrased and its images transformed, then the unlearned model is scored on that
Df: does forgetting reach beyond the exact deleted inputs? (Open-MMunlearning's image-rephrase probes,
MLUBench's paraphrase sets; ANCHORS.md s. 9.)

Texts, per Df text, in this order:
- a user file (`paraphrases`: one `original<TAB>paraphrase` per line; several lines for one original give
  several paraphrases, one drawn with the attack's seed): texts it names are replaced, the others kept;
- else the built-in set of the shapes worlds: a unit that knows its attributes (`shapes`, `shapes-tiny`) gets
  its descriptions written from the world's caption templates it was NOT given (what the picture shows in
  phrasings the model never trained on, in the world's vocabulary, so a word-level tiny tokenizer reads every
  word), drawn with the attack's seed, and its fact captions reworded ("drabimor marked kappa in picture
  vokelu" for "picture vokelu shows drabimor marked kappa": engine/data/shapes.py `reworded_fact`); other
  worlds (the classification worlds' hypotheses, whose labels a rewrite must keep) keep their texts unless a
  file gives paraphrases. The document counts the texts changed.
Images (each Df unit's image, or both images of a pair; graphs have none), with Pillow, seeded per unit:
- a crop keeping 80-100% of each side at a random place, resized back to the image's size (bicubic);
- a horizontal flip with probability 1/2; a flipped unit's texts swap "left" and "right", so a caption stays
  true of its image; an NLVR2 pair is mirrored as one picture (each image flipped and the two swapped), so a
  statement about "the left image" stays true as well as one about a side within an image;
- colour jitter: brightness, contrast and saturation each scaled by a factor in [0.8, 1.2] (no hue jitter: the
  worlds' captions name colours, and a hue shift would make them false).
The evaluation re-encodes the task's data with Df so transformed (Dr and test as they were) and scores Df as
before: the headline Df metric and the Df/Dr AUC on rephrased Df (Dr as it was: that AUC reads the inputs'
difficulty too). The recovery's gap is the exact inputs' (original on Df minus unlearned on Df), and what comes
back is read against the original model's Df on the same rephrased inputs (engine/attacks/recovery.py
`rephrase_recovery`): the points of that gap the rephrased inputs do not show.
"""
from __future__ import annotations

import copy
import dataclasses
import random
import re
from pathlib import Path

from engine.attacks.image_transform import transform_image
from engine.errors import SpecError

_SIDES = re.compile(r"\b(left|right)\b")
IMAGES = ("crop 80-100% per side, flip p=0.5 (left/right swapped in texts, a pair mirrored whole), "
          "brightness/contrast/saturation x[0.8, 1.2]")


def read_paraphrases(path: str | None) -> dict[str, list[str]]:
    """{original: [paraphrases]} from a file of `original<TAB>paraphrase` lines; SpecError (one line) when the file
    cannot be read or a line is malformed."""
    if not path:
        return {}
    table: dict[str, list[str]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"--paraphrases {path}: cannot read it ({getattr(error, 'strerror', None) or error}); give a "
                        "UTF-8 file of original<TAB>paraphrase lines", field="paraphrases") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        original, tab, paraphrase = line.partition("\t")
        if not tab or not original.strip() or not paraphrase.strip():
            raise SpecError(f"--paraphrases {path}: line {number} is not original<TAB>paraphrase", field="paraphrases")
        table.setdefault(original.strip(), []).append(paraphrase.strip())
    if not table:
        raise SpecError(f"--paraphrases {path} has no original<TAB>paraphrase line", field="paraphrases")
    return table


def swap_sides(text: str) -> str:
    return _SIDES.sub(lambda m: "right" if m.group(1) == "left" else "left", text)


def builtin_paraphrases(unit, rng: random.Random) -> list[str] | None:
    """The shapes worlds' paraphrases of a unit's captions, or None: a description becomes a template wording the
    unit was not given, a fact caption the same fact in other words."""
    attrs = getattr(unit, "attrs", None)
    if attrs is None or not hasattr(unit, "captions"):
        return None
    from engine.data.shapes import captions_for, reworded_fact

    given = set(unit.captions)
    unseen = [c for c in captions_for(attrs, random.Random(0), count=10**3) if c not in given]
    rng.shuffle(unseen)
    paraphrases = [reworded_fact(caption) or (unseen[i % len(unseen)] if unseen else caption)
                   for i, caption in enumerate(unit.captions)]
    return paraphrases if paraphrases != unit.captions else None


def rephrased_unit(unit, rng: random.Random, table: dict[str, list[str]]) -> tuple[object, int]:
    """(the unit with paraphrased texts and transformed media, how many of its texts were paraphrased: a side
    swapped after a flip is not counted)."""
    texts = list(getattr(unit, "texts", None) or unit.captions)
    if table:
        new = [rng.choice(table[t]) if t in table else t for t in texts]
    else:
        new = builtin_paraphrases(unit, rng) or texts
    changed = sum(a != b for a, b in zip(texts, new))
    flip = rng.random() < 0.5
    changes: dict = {}
    fields = {field.name for field in dataclasses.fields(unit)}
    if "images" in fields and unit.images:  # a classification unit: one image, or an NLVR2 pair
        images = tuple(transform_image(image, rng, flip) for image in unit.images)
        # a flipped pair is the mirror of the pair: its right image, mirrored, is now the left one
        changes["images"] = images[::-1] if flip else images
    elif "image" in fields and unit.image is not None:
        changes["image"] = transform_image(unit.image, rng, flip)
    else:
        flip = False  # a graph: nothing to flip
    if flip:
        new = [swap_sides(t) for t in new]
    changes["texts" if "texts" in fields else "captions"] = new
    return dataclasses.replace(unit, **changes), changed


def warn_if_unchanged(table: dict, params: dict, changed: int, texts: int, media: bool, emit) -> None:
    """A paraphrase file that changes none of the forget texts rephrases nothing: say so, since the attack then
    measures the media transforms alone, or, on data without media, nothing."""
    if table and changed == 0:
        what = "only the media were transformed" if media else "and this data has no media, so nothing changed"
        emit("log", level="warning", message=f"--paraphrases {params['paraphrases']} changed none of the {texts} forget "
                                             "texts (an original must equal a text exactly, and its paraphrase differ "
                                             f"from it); {what}")


def rephrase(task, model, params: dict, seed: int, emit, should_stop):
    """A view of `task` whose Df units are rephrased (the model is not changed); returns (view, what was done)."""
    from engine.seeding import derive_seed

    table = read_paraphrases(params.get("paraphrases"))
    from engine.attacks.people import is_people, rephrased_view

    if is_people(task):
        view, record = rephrased_view(task, seed, table)
        emit("log", level="info", message=f"rephrased the forget people's questions: {record['paraphrased_texts']} of "
             f"{record['texts']} reworded ({record['paraphrases']}), portraits transformed")
        warn_if_unchanged(table, params, record["paraphrased_texts"], record["texts"], True, emit)
        return view, {**record, **({"file": str(params["paraphrases"])} if table else {}), "images": IMAGES}
    deleted = set(task.deletion)
    split = getattr(task, "fact_split", None)  # --granularity fact: Df is the fact parts of the split units
    train, changed, texts = list(split.train if split is not None else task.world.train), 0, 0
    for index in sorted(deleted):
        rng = random.Random(derive_seed(seed, "attack", "rephrase", index))
        train[index], count = rephrased_unit(train[index], rng, table)
        changed += count
        texts += len(getattr(train[index], "texts", None) or train[index].captions)
    view = copy.copy(task)
    if split is not None:
        view.fact_split = dataclasses.replace(split, train=train)
    else:
        view.world = dataclasses.replace(task.world, train=train)
    view.prepare(model)
    source = "file" if table else ("built-in" if changed else "none")
    emit("log", level="info", message=f"rephrased Df: {changed} of {texts} texts paraphrased ({source}), "
         f"{len(deleted)} units' media transformed")
    media = any(getattr(train[i], "image", None) is not None or getattr(train[i], "images", None) for i in deleted)
    warn_if_unchanged(table, params, changed, texts, media, emit)
    return view, {"paraphrased_texts": changed, "texts": texts, "paraphrases": source,
                  **({"file": str(params["paraphrases"])} if table else {}),
                  "images": IMAGES}
