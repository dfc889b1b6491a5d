"""Flickr30K / COCO in the Karpathy JSON layout BLIP, LAVIS and MultiDelete read (ANCHORS.md section 4).

DIR/flickr30k_train.json: one record per caption {"image", "caption", "image_id"};
DIR/flickr30k_val.json, DIR/flickr30k_test.json: one record per image {"image", "caption": [...]}.
Image paths are relative to DIR (or DIR/images, where the real Flickr30K is often unpacked).
An `annotations/` sub-directory holding the JSON files is accepted too.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from PIL import Image

from engine.data.shapes import ImageTextWorld, Unit
from engine.errors import SpecError

SPLITS = ("train", "val", "test")


def _annotation(root: Path, split: str) -> Path:
    for candidate in (root / f"flickr30k_{split}.json", root / "annotations" / f"flickr30k_{split}.json"):
        if candidate.is_file():
            return candidate
    raise SpecError(f"{root} has no flickr30k_{split}.json; expected Karpathy-style flickr30k_train/val/test.json")


def _load_image(root: Path, relative: str) -> Image.Image:
    for candidate in (root / relative, root / "images" / relative):
        if candidate.is_file():
            with Image.open(candidate) as image:
                return image.convert("RGB")
    raise SpecError(f"image {relative} listed in the annotations is missing under {root}")


def _records(path: Path) -> list[dict]:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpecError(f"{path} is not valid JSON ({error}); expected a list of caption records") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) and "image" in r and "caption" in r for r in records):
        raise SpecError(f"{path} must be a list of records with 'image' and 'caption'")
    return records


def read_flickr30k(directory: str | Path, name: str | None = None) -> ImageTextWorld:
    root = Path(directory).expanduser()
    splits: dict[str, list[Unit]] = {}
    for split in SPLITS:
        captions_by_image: dict[str, list[str]] = {}
        for record in _records(_annotation(root, split)):
            caption = record["caption"]
            captions_by_image.setdefault(record["image"], []).extend(caption if isinstance(caption, list) else [caption])
        splits[split] = [Unit(image_id, _load_image(root, image_id), captions)
                         for image_id, captions in captions_by_image.items()]
    first = splits["train"][0].image if splits["train"] else None
    size = first.size[0] if first else 0
    return ImageTextWorld(name=name or f"flickr30k:{root.name}", train=splits["train"], val=splits["val"],
                          test=splits["test"], image_size=size, meta={"source": str(root)})


def _write_json(path: Path, payload) -> None:
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(partial, path)


def write_flickr30k(world: ImageTextWorld, directory: str | Path) -> list[Path]:
    """Write the world as Karpathy JSON + PNG files; returns the annotation files written."""
    root = Path(directory).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for split in SPLITS:
        units = world.split(split)
        for unit in units:
            target = root / unit.unit_id
            target.parent.mkdir(parents=True, exist_ok=True)
            unit.image.save(target)
        if split == "train":
            records = [{"image": u.unit_id, "caption": c, "image_id": Path(u.unit_id).stem}
                       for u in units for c in u.captions]
        else:
            records = [{"image": u.unit_id, "caption": list(u.captions)} for u in units]
        path = root / f"flickr30k_{split}.json"
        _write_json(path, records)
        written.append(path)
    return written
