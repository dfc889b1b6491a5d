"""NLVR2 (two images, a statement, True/False) files, read and written (ANCHORS.md section 4).

Two layouts are read, per split, from DIR or DIR/annotations:
- the original jsonl (`train.json`, `dev.json`, `test1.json`: JSON lines despite the name): `identifier`
  (`dev-850-0-0`: split, set, pair, sentence), `sentence`, `label`, optionally `directory` (train);
  the images are `<pair>-img0.png` / `-img1.png`, the pair being the identifier without its sentence number
  (an identifier that is itself the pair, `<id>-img0.png`, works too), under DIR, DIR/images, DIR/<split>,
  DIR/images/<split>, or those with /<directory>;
- the LAVIS/ALBEF JSON (`nlvr_train.json`, `nlvr_dev.json`, `nlvr_test.json`, or LAVIS's `train.json`,
  `dev.json`, `test.json`): a list of {"images": [left, right], "sentence", "label"}, image paths under DIR.
A unit is an image pair with all its statements; its id is the pair (`dev-850-0`). The writer writes the
original jsonl layout with the images under <split>/.
Images are found, not decoded, while reading (engine/data/images.py); a batch decodes its own.
"""
from __future__ import annotations

import re
from pathlib import Path

from engine.data.files import find_file, malformed, records, save_image, shown, write_jsonl
from engine.data.images import find_image
from engine.data.labelled import NLVR2_CLASSES, ClassificationWorld, LabelledUnit
from engine.errors import SpecError

FILES = {  # split -> (its name in NLVR2, the file names each layout gives it)
    "train": ("train", ["train.json", "nlvr_train.json", "train.jsonl"]),
    "val": ("dev", ["dev.json", "nlvr_dev.json", "dev.jsonl"]),
    "test": ("test1", ["test1.json", "test.json", "nlvr_test.json", "test1.jsonl"]),
}
EXPECTED = "identifier, sentence, label (jsonl) or images, sentence, label (JSON)"
SENTENCE_NUMBER = re.compile(r"^(.+-\d+)-\d+$")
PAIR_IMAGE = re.compile(r"^(.+)-img[01]\.\w+$")


def label_index(value) -> int | None:
    text = str(value) if isinstance(value, bool) else value
    return NLVR2_CLASSES.index(text) if text in NLVR2_CLASSES else None


def folders(split: str, directory) -> list[str]:
    places = ["", "images", split, f"images/{split}"]
    if directory is not None:
        places += [f"{split}/{directory}", f"images/{split}/{directory}"]
    return places


def original_pair(root: Path, split: str, record: dict, seen: dict) -> tuple[str, tuple] | None:
    """(pair id, (left, right)) for an original jsonl record, or None when its images are not there."""
    identifier = str(record["identifier"])
    match = SENTENCE_NUMBER.match(identifier)
    for pair in ([match.group(1)] if match else []) + [identifier]:
        if pair in seen:
            return seen[pair]
        places = tuple(folders(split, record.get("directory")))
        left = find_image(root, f"{pair}-img0.png", places)
        if left is not None:
            right = find_image(root, f"{pair}-img1.png", places)
            return (pair, (left, right)) if right is not None else None
    return None


def lavis_pair(root: Path, record: dict) -> tuple[str, tuple] | None:
    left_path, right_path = record["images"]
    match = PAIR_IMAGE.match(Path(left_path).name)
    pair = match.group(1) if match else f"{left_path}|{right_path}"
    left, right = find_image(root, left_path), find_image(root, right_path)
    return (pair, (left, right)) if left is not None and right is not None else None


def missing_images(root: Path, split: str, record: dict) -> list[str]:
    """Which of a record's two images cannot be found (a pair with one of them gone names that one)."""
    if "identifier" in record:
        match = SENTENCE_NUMBER.match(str(record["identifier"]))
        pair = match.group(1) if match else str(record["identifier"])
        places = tuple(folders(split, record.get("directory")))
        return [name for name in (f"{pair}-img0.png", f"{pair}-img1.png") if find_image(root, name, places) is None]
    return [name for name in record["images"] if find_image(root, name) is None]


def read_split(root: Path, path: Path, split: str) -> list[LabelledUnit]:
    units: dict[str, LabelledUnit] = {}
    resolved: dict[str, tuple] = {}  # a pair's images are read once, whatever number of statements it has
    for where, record in records(path, EXPECTED):
        sentence, label = record.get("sentence"), label_index(record.get("label"))
        if label is None:   # as SNLI-VE says it ("its label None is not True or False" read oddly)
            raise malformed(path, where, "has no 'label'" if record.get("label") is None else
                            f"its label {shown(record.get('label'))} is not True or False")
        if not isinstance(sentence, str) or not sentence.strip():
            raise malformed(path, where, "has no 'sentence'")
        if "identifier" in record:
            key = text_id = str(record["identifier"])
            found = original_pair(root, split, record, resolved)
        elif isinstance(record.get("images"), list) and len(record["images"]) == 2 and all(
                isinstance(p, str) and p for p in record["images"]):
            key, text_id = "|".join(record["images"]), None
            found = resolved.get(key) or lavis_pair(root, record)
        else:
            raise malformed(path, where, f"needs 'identifier' or 'images' [left, right] (expected {EXPECTED})")
        if found is None:
            places = folders(split, record.get("directory")) if "identifier" in record else []
            looked = f" (looked in {', '.join(str(root / place) for place in places)})" if places else ""
            missing = missing_images(root, split, record)
            which = (f"image {missing[0]}" if len(missing) == 1 else f"images {' and '.join(missing)}" if missing
                     else "images")
            of = f" of {record['identifier']}" if "identifier" in record else ""
            verb = "is" if len(missing) == 1 else "are"
            raise malformed(path, where, f"the {which}{of} {verb} missing under {root}{looked}")
        pair, images = found
        resolved[key] = resolved[pair] = found
        unit = units.get(pair) or units.setdefault(pair, LabelledUnit(pair, images, [], [], []))
        unit.texts.append(sentence.strip())
        unit.labels.append(label)
        unit.text_ids.append(text_id or f"{pair}-{len(unit.texts) - 1}")
    return list(units.values())


def read_nlvr2(directory: str | Path, name: str | None = None) -> ClassificationWorld:
    root = Path(directory).expanduser()
    files = {split: find_file(root, names) for split, (_, names) in FILES.items()}
    for split in ("train", "test"):
        if files[split] is None:
            raise SpecError(f"{root} has no NLVR2 {split} file; expected {' or '.join(FILES[split][1])}")
    splits = {split: read_split(root, path, FILES[split][0]) if path else [] for split, path in files.items()}
    if not splits["train"]:
        raise SpecError(f"{files['train']} holds no statements")
    return ClassificationWorld(name=name or f"nlvr2:{root.name}", **splits,
                               image_size=splits["train"][0].image.size[0], classes=NLVR2_CLASSES,
                               images_per_unit=2, meta={"source": str(root)})


def write_nlvr2(world: ClassificationWorld, directory: str | Path) -> list[Path]:
    """The original jsonl layout + <split>/<pair>-img0.png, -img1.png; returns the jsonl files."""
    if world.images_per_unit != 2 or tuple(world.classes) != NLVR2_CLASSES:
        raise SpecError(f"{world.name} is not two-image True/False data; NLVR2 cannot hold it", field="format")
    root = Path(directory).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for split, (nlvr_split, names) in FILES.items():
        rows = []
        for unit in world.split(split):
            for side, image in enumerate(unit.images):
                save_image(image, root / nlvr_split / f"{unit.unit_id}-img{side}.png")
            for k, (text, label) in enumerate(zip(unit.texts, unit.labels)):
                identifier = unit.text_ids[k] if k < len(unit.text_ids) else f"{unit.unit_id}-{k}"
                rows.append({"identifier": identifier, "sentence": text, "label": world.classes[label]})
        path = root / names[0]
        write_jsonl(path, rows)
        written.append(path)
    return written
