"""Karpathy's caption_datasets files (`dataset_flickr30k.json`, `dataset_coco.json`): the layout most
Flickr30K and COCO users have (ANCHORS.md section 4).

`{"images": [{"filename", "filepath" (COCO), "imgid", "split": train|val|test|restval, "sentids",
"sentences": [{"raw", "tokens", ...}]}], "dataset"}`; restval counts as train. A unit's id is its image
path as LAVIS writes it: `flickr30k-images/<filename>` for Flickr30K, `<filepath>/<filename>` for COCO.
Images are found, not decoded, while reading (engine/data/images.py); a batch decodes its own.
"""
from __future__ import annotations

from pathlib import Path

from engine.data.files import malformed, read_json, save_image, shown, write_json
from engine.data.images import FLICKR_IMAGE_DIRS, find_image
from engine.data.shapes import ImageTextWorld, Unit
from engine.errors import SpecError

SPLIT_OF = {"train": "train", "restval": "train", "val": "val", "test": "test"}
IMAGE_DIRS = {"flickr30k": "flickr30k-images", "coco": ""}  # where the images of each data set live
EXPECTED = "Karpathy's caption_datasets layout: {\"images\": [{\"filename\", \"split\", \"sentences\": [{\"raw\"}]}]}"


def unit_id(dataset: str, image: dict) -> str:
    folder = image.get("filepath") or IMAGE_DIRS[dataset]
    return f"{folder}/{image['filename']}" if folder else image["filename"]


def check_image(path: Path, where: str, image: dict, dataset: str) -> list[str]:
    """The captions of one image record; SpecError naming the file and record when it is malformed."""
    if not isinstance(image.get("filename"), str) or not image["filename"]:
        raise malformed(path, where, "has no 'filename'")
    if image.get("split") not in SPLIT_OF:
        raise malformed(path, where, f"its split {shown(image.get('split'))} is not one of {', '.join(SPLIT_OF)}")
    if dataset == "coco" and not isinstance(image.get("filepath"), str):
        raise malformed(path, where, "has no 'filepath' (COCO images live under <filepath>/<filename>)")
    sentences = image.get("sentences")
    if not isinstance(sentences, list) or not sentences:
        raise malformed(path, where, "has no 'sentences' list" if not isinstance(sentences, list)
                        else "has an empty 'sentences' list (an image needs at least one caption)")
    captions = []
    for sentence in sentences:
        raw = sentence.get("raw") if isinstance(sentence, dict) else None
        if not isinstance(raw, str) or not raw.strip():
            raise malformed(path, where, "a sentence has no 'raw' text")
        captions.append(raw.strip())
    return captions


def read_caption_dataset(path: Path, dataset: str, name: str) -> ImageTextWorld:
    """A retrieval world from `path` (dataset_<dataset>.json); images under its directory (or `images/`)."""
    payload = read_json(path, EXPECTED)
    if not isinstance(payload, dict) or not isinstance(payload.get("images"), list):
        raise SpecError(f"{path} has no 'images' list; expected {EXPECTED}")
    root = path.parent.parent if path.parent.name == "annotations" else path.parent
    splits: dict[str, list[Unit]] = {"train": [], "val": [], "test": []}
    for number, image in enumerate(payload["images"], start=1):
        where = f"image record {number}"
        if not isinstance(image, dict):
            raise malformed(path, where, f"expected an object, got a {type(image).__name__}")
        captions = check_image(path, where, image, dataset)
        uid = unit_id(dataset, image)
        picture = find_image(root, uid) or find_image(root, image["filename"], FLICKR_IMAGE_DIRS)
        if picture is None:
            raise malformed(path, where, f"image {uid} is missing under {root}")
        splits[SPLIT_OF[image["split"]]].append(Unit(uid, picture, captions))
    first = splits["train"][0].image if splits["train"] else None
    return ImageTextWorld(name=name, train=splits["train"], val=splits["val"], test=splits["test"],
                          image_size=first.size[0] if first else 0, meta={"source": str(path)})


def write_caption_dataset(world: ImageTextWorld, directory: str | Path, dataset: str) -> list[Path]:
    """Write a retrieval world as dataset_<dataset>.json with its images; returns the file written."""
    root = Path(directory).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    images, sentence_id = [], 0
    for split in ("train", "val", "test"):
        for unit in world.split(split):
            folder, _, filename = unit.unit_id.rpartition("/")
            record = {"filename": filename, "imgid": len(images), "split": split}
            if dataset == "coco":
                record = {"filepath": folder or "images", **record, "cocoid": len(images)}
            sentences = [{"raw": caption, "tokens": caption.lower().split(), "imgid": len(images),
                          "sentid": sentence_id + k} for k, caption in enumerate(unit.captions)]
            record.update(sentids=[s["sentid"] for s in sentences], sentences=sentences)
            sentence_id += len(sentences)
            save_image(unit.image, root / unit_id(dataset, record))
            images.append(record)
    path = root / f"dataset_{dataset}.json"
    write_json(path, {"images": images, "dataset": dataset})
    return [path]
