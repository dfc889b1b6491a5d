"""SNLI-VE (visual entailment) files, read and written (ANCHORS.md section 4).

Two layouts are read, per split, from DIR or DIR/annotations:
- the original jsonl (`snli_ve_train.jsonl`, `snli_ve_dev.jsonl`, `snli_ve_test.jsonl`): one hypothesis a line
  with `Flickr30K_ID`, `sentence2` and `gold_label`; a gold label "-" (no annotator consensus) is dropped;
- the LAVIS/ALBEF JSON (`ve_train.json`, `ve_dev.json`, `ve_test.json`): a list of {"image": <Flickr30K id>,
  "sentence", "label"}.
Images are `<id>.jpg` under DIR, DIR/images, DIR/flickr30k-images or DIR/flickr30k_images. A unit is an
image with all its hypotheses; its id is the Flickr30K id. The writer writes the original jsonl layout
with the images under flickr30k-images/.
Images are found, not decoded, while reading (engine/data/images.py); a batch decodes its own.
"""
from __future__ import annotations

from pathlib import Path

from engine.data.files import find_file, malformed, records, save_image, shown, write_jsonl
from engine.data.images import FLICKR_IMAGE_DIRS, find_image
from engine.data.labelled import VE_CLASSES, ClassificationWorld, LabelledUnit
from engine.errors import SpecError

FILES = {  # split -> the file names each layout gives it
    "train": ["snli_ve_train.jsonl", "ve_train.json"],
    "val": ["snli_ve_dev.jsonl", "ve_dev.json"],
    "test": ["snli_ve_test.jsonl", "ve_test.json"],
}
NO_CONSENSUS = "-"
EXPECTED = "Flickr30K_ID, sentence2, gold_label (jsonl) or image, sentence, label (JSON)"


def fields(record: dict) -> tuple[object, object, object, object]:
    """(image id, hypothesis, label, text id) of a record in either layout."""
    if "Flickr30K_ID" in record or "gold_label" in record:
        return record.get("Flickr30K_ID"), record.get("sentence2"), record.get("gold_label"), record.get("pairID")
    return record.get("image"), record.get("sentence"), record.get("label"), None


def read_split(root: Path, path: Path, split: str) -> list[LabelledUnit]:
    units: dict[str, LabelledUnit] = {}
    for where, record in records(path, EXPECTED):
        image_id, sentence, label, text_id = fields(record)
        if isinstance(image_id, int):
            image_id = str(image_id)
        if not isinstance(image_id, str) or not image_id:
            raise malformed(path, where, f"has no image id (expected {EXPECTED})")
        image_id = image_id.removesuffix(".jpg")
        if label == NO_CONSENSUS:
            continue
        if label is None:
            raise malformed(path, where, f"has no label (gold_label or label; expected {EXPECTED})")
        if label not in VE_CLASSES:
            raise malformed(path, where, f"its label {shown(label)} is not one of {', '.join(VE_CLASSES)} (or '-', "
                                         "dropped)")
        if not isinstance(sentence, str) or not sentence.strip():
            raise malformed(path, where, "has no hypothesis text (sentence2 / sentence)")
        unit = units.get(image_id)
        if unit is None:
            image = find_image(root, f"{image_id}.jpg", FLICKR_IMAGE_DIRS)
            if image is None:
                raise malformed(path, where, f"image {image_id}.jpg is missing under {root} "
                                             f"(looked in {', '.join(d or '.' for d in FLICKR_IMAGE_DIRS)})")
            unit = units[image_id] = LabelledUnit(image_id, (image,), [], [], [])
        unit.texts.append(sentence.strip())
        unit.labels.append(VE_CLASSES.index(label))
        unit.text_ids.append(str(text_id) if text_id is not None else f"{image_id}.jpg#{len(unit.texts) - 1}")
    return list(units.values())


def read_snli_ve(directory: str | Path, name: str | None = None) -> ClassificationWorld:
    root = Path(directory).expanduser()
    files = {split: find_file(root, names) for split, names in FILES.items()}
    for split in ("train", "test"):
        if files[split] is None:
            raise SpecError(f"{root} has no SNLI-VE {split} file; expected {' or '.join(FILES[split])}")
    splits = {split: read_split(root, path, split) if path else [] for split, path in files.items()}
    if not splits["train"]:
        raise SpecError(f"{files['train']} holds no labelled hypotheses")
    return ClassificationWorld(name=name or f"snli-ve:{root.name}", **splits,
                               image_size=splits["train"][0].image.size[0], classes=VE_CLASSES, images_per_unit=1,
                               meta={"source": str(root)})


def write_snli_ve(world: ClassificationWorld, directory: str | Path) -> list[Path]:
    """The original jsonl layout (one hypothesis a line) + flickr30k-images/<id>.jpg; returns the jsonl files."""
    if world.images_per_unit != 1 or tuple(world.classes) != VE_CLASSES:
        raise SpecError(f"{world.name} is not visual-entailment data (one image, {', '.join(VE_CLASSES)}); SNLI-VE cannot hold it", field="format")
    root = Path(directory).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for split, names in FILES.items():
        rows = []
        for unit in world.split(split):
            save_image(unit.image, root / "flickr30k-images" / f"{unit.unit_id}.jpg")
            for k, (text, label) in enumerate(zip(unit.texts, unit.labels)):
                text_id = unit.text_ids[k] if k < len(unit.text_ids) else f"{unit.unit_id}.jpg#{k}"
                rows.append({"Flickr30K_ID": unit.unit_id, "pairID": text_id, "sentence2": text,
                             "gold_label": world.classes[label]})
        path = root / names[0]
        write_jsonl(path, rows)
        written.append(path)
    return written
