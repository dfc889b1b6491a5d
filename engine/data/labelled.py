"""Records of image-text classification data (SNLI-VE, NLVR2 and the built-in worlds like them).

A deletion unit is an image (SNLI-VE) or an image pair (NLVR2) with all its texts, each text with its
label. Its id is the one the real format gives the unit: the Flickr30K id of an SNLI-VE image, the pair
identifier of an NLVR2 example (`train-10171-0`, the identifier without its sentence number).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from engine.data.facts import HoldoutWorld

VE_CLASSES = ("entailment", "neutral", "contradiction")
NLVR2_CLASSES = ("False", "True")


@dataclass
class LabelledUnit:
    unit_id: str
    images: tuple[Image.Image, ...]  # one image (SNLI-VE) or the left and right image (NLVR2)
    texts: list[str]
    labels: list[int]  # index into the world's classes, one per text
    text_ids: list[str] = field(default_factory=list)  # the format's id of each text, where it has one

    @property
    def image(self) -> Image.Image:
        return self.images[0]


@dataclass
class ClassificationWorld(HoldoutWorld):
    name: str
    train: list[LabelledUnit]
    val: list[LabelledUnit]
    test: list[LabelledUnit]
    image_size: int
    classes: tuple[str, ...]
    images_per_unit: int
    meta: dict = field(default_factory=dict)
    # captioned images apart from the splits (built-in worlds): the tiny model's pre-training corpus, as a
    # real BLIP is pre-trained on captioned images before it is fine-tuned on SNLI-VE or NLVR2
    pretrain: list = field(default_factory=list)

    def split(self, name: str) -> list[LabelledUnit]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def vocabulary(self) -> list[str]:
        words: set[str] = set()
        for units in (self.train, self.val, self.test, self.pretrain):
            for unit in units:
                for text in unit_texts(unit):
                    words.update(text.lower().split())
        return sorted(words)

    def model_options(self) -> dict:
        """What a classifier must be built for beyond words and image size: its labels and images per example."""
        return {"labels": self.classes, "images_per_example": self.images_per_unit}


def unit_texts(unit) -> list[str]:
    """A retrieval unit's captions, or a classification unit's texts (hypotheses, statements)."""
    texts = getattr(unit, "texts", None)
    return list(texts if texts is not None else unit.captions)
