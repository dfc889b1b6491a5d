"""Flickr30K / COCO for retrieval, in either Karpathy layout (ANCHORS.md section 4).

The LAVIS layout BLIP and MultiDelete read: DIR/flickr30k_train.json (COCO: coco_karpathy_train.json), one
record per caption {"image", "caption", "image_id"}; the val and test files one record per image
{"image", "caption": [...]}. Image paths are relative to DIR (or DIR/images). Without those files the
reader takes Karpathy's caption_datasets file (DIR/dataset_flickr30k.json, dataset_coco.json;
engine/data/karpathy.py). An `annotations/` sub-directory holding the JSON files is accepted too.
Reading indexes the records and finds each image file without decoding it (engine/data/images.py); pixels
are decoded when a batch draws the unit (engine/data/image_bank.py).
"""
from __future__ import annotations

from pathlib import Path

from engine.data.files import find_file, json_records, malformed, save_image, write_json
from engine.data.images import FLICKR_IMAGE_DIRS, find_image
from engine.data.karpathy import read_caption_dataset, write_caption_dataset
from engine.data.shapes import ImageTextWorld, Unit
from engine.errors import SpecError

SPLITS = ("train", "val", "test")
PREFIX = {"flickr30k": "flickr30k", "coco": "coco_karpathy"}  # LAVIS annotation file names


def read_split(root: Path, path: Path) -> list[Unit]:
    captions_by_image: dict[str, list[str]] = {}
    listed_at: dict[str, str] = {}   # where an image's record with all its captions (val, test) was
    for where, record in json_records(path, "caption records {\"image\", \"caption\"}"):
        image, caption = record.get("image"), record.get("caption")
        captions = caption if isinstance(caption, list) else [caption]
        if not isinstance(image, str) or not image or not captions or not all(isinstance(c, str) for c in captions):
            raise malformed(path, where, "needs 'image' (a path) and 'caption' (a string or a list of strings)")
        if isinstance(caption, list):  # one record per image: a second one is the first given twice
            if image in listed_at:
                raise malformed(path, where, f"image {image} has a record already ({listed_at[image]}); keep one")
            listed_at[image] = where
        captions_by_image.setdefault(image, []).extend(captions)
    units = []
    for image_id, captions in captions_by_image.items():
        # as listed, else by its file name where Flickr30K's pictures are kept (flickr30k_images/ too)
        picture = find_image(root, image_id) or find_image(root, Path(image_id).name, FLICKR_IMAGE_DIRS)
        if picture is None:
            raise SpecError(f"image {image_id} listed in {path.name} is missing under {root} (looked for it as "
                            f"listed, and for {Path(image_id).name} in {', '.join(d or '.' for d in FLICKR_IMAGE_DIRS)})")
        units.append(Unit(image_id, picture, captions))
    return units


def read_karpathy(directory: str | Path, dataset: str, name: str | None = None) -> ImageTextWorld:
    root = Path(directory).expanduser()
    name = name or f"{dataset}:{root.name}"
    prefix = PREFIX[dataset]
    files = {split: find_file(root, [f"{prefix}_{split}.json"]) for split in SPLITS}
    if not any(files.values()):
        caption_dataset = find_file(root, [f"dataset_{dataset}.json"])
        if caption_dataset is not None:
            return read_caption_dataset(caption_dataset, dataset, name)
    splits = {}
    for split, path in files.items():
        if path is None:
            raise SpecError(f"{root} has no {prefix}_{split}.json; expected Karpathy-style "
                            f"{prefix}_train/val/test.json or Karpathy's dataset_{dataset}.json")
        splits[split] = read_split(root, path)
    first = splits["train"][0].image if splits["train"] else None
    return ImageTextWorld(name=name, train=splits["train"], val=splits["val"], test=splits["test"],
                          image_size=first.size[0] if first else 0, meta={"source": str(root)})


def read_flickr30k(directory: str | Path, name: str | None = None) -> ImageTextWorld:
    return read_karpathy(directory, "flickr30k", name)


def read_coco(directory: str | Path, name: str | None = None) -> ImageTextWorld:
    return read_karpathy(directory, "coco", name)


def write_flickr30k(world: ImageTextWorld, directory: str | Path) -> list[Path]:
    """Write the world in the LAVIS layout (flickr30k_train/val/test.json) + PNG files; returns the JSON files."""
    root = Path(directory).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for split in SPLITS:
        units = world.split(split)
        for unit in units:
            save_image(unit.image, root / unit.unit_id)
        if split == "train":
            records = [{"image": u.unit_id, "caption": c, "image_id": Path(u.unit_id).stem}
                       for u in units for c in u.captions]
        else:
            records = [{"image": u.unit_id, "caption": list(u.captions)} for u in units]
        path = root / f"flickr30k_{split}.json"
        write_json(path, records)
        written.append(path)
    return written


def write_coco(world: ImageTextWorld, directory: str | Path) -> list[Path]:
    """Write the world as Karpathy's dataset_coco.json + images under <filepath>/."""
    return write_caption_dataset(world, directory, "coco")
