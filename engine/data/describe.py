"""What `mmul-workbench data info FORMAT:PATH` reports: units and texts per split, texts per unit, the image
size, the fingerprint (engine/data/fingerprint.py) and how long reading and fingerprinting took.

Reading indexes the annotations and finds the image files without decoding them (engine/data/images.py), so
this answers in seconds on a full-size Flickr30K or COCO folder; only the first training image's header is
read, for its size. No torch is imported.

`--decode-images` decodes every image file too (on the machine's cores), so a file that is cut short or
corrupt is found before a run, not when a batch first draws it after the original has trained.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from engine.data.fingerprint import data_fingerprint
from engine.data.images import ImageFile, decoding_error
from engine.data.labelled import unit_texts
from engine.data.registry import load_data

SPLITS = ("train", "val", "test")


def split_counts(units) -> dict:
    per_unit = [len(unit_texts(unit)) for unit in units]
    texts = sum(per_unit)
    return {"units": len(units), "texts": texts,
            "texts_per_unit": {"min": min(per_unit, default=0), "mean": round(texts / len(units), 3) if units else 0.0,
                               "max": max(per_unit, default=0)}}


SHOWN_FAILURES = 10


def image_files(world) -> list[ImageFile]:
    """Every image file of the data's splits, each once (built-in worlds hold pixels, not files: none)."""
    files: dict[ImageFile, None] = {}
    for name in SPLITS:
        for unit in getattr(world, name, None) or []:
            for image in getattr(unit, "images", None) or [getattr(unit, "image", None)]:
                if isinstance(image, ImageFile):
                    files[image] = None
    return list(files)


def decode_images(world) -> dict:
    """{"decoded": n, "seconds": s, "failed": [{"path", "reason"}]}: every image file decoded (PIL's decoders
    let go of the GIL, so threads use the cores)."""
    started, files = time.perf_counter(), image_files(world)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        failed = [{"path": image.path, "reason": reason}
                  for image, reason in zip(files, pool.map(decoding_error, files)) if reason is not None]
    return {"decoded": len(files) - len(failed), "failed": failed, "seconds": round(time.perf_counter() - started, 3)}


def describe_general(ref: str) -> dict:
    """`data info mmbench:FILE`: a general-ability set (`pulse --general`) has questions, not units."""
    from engine.data.mmbench import read_mmbench

    started = time.perf_counter()
    questions = read_mmbench(ref.partition(":")[2], require_answer=False)
    categories: dict[str, int] = {}
    for question in questions:
        categories[question.category or "-"] = categories.get(question.category or "-", 0) + 1
    return {"data": ref, "kind": "MMBench", "questions": len(questions),
            "answered": sum(q.answer is not None for q in questions),
            "with_images": sum(q.image is not None for q in questions), "categories": categories,
            "seconds": {"read": round(time.perf_counter() - started, 3)}}


def describe_data(ref: str, decode: bool = False) -> dict:
    if ref.startswith("mmbench:"):
        return describe_general(ref)
    started = time.perf_counter()
    world = load_data(ref)
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    fingerprint = data_fingerprint(ref)
    fingerprint_seconds = time.perf_counter() - started
    splits = {name: split_counts(world.split(name)) for name in SPLITS
              if hasattr(world, "split") and isinstance(getattr(world, name, None), list)}
    info = {"data": ref, "name": getattr(world, "name", ref), "kind": type(world).__name__, "splits": splits,
            "units": sum(s["units"] for s in splits.values()), "texts": sum(s["texts"] for s in splits.values()),
            "image_size": getattr(world, "image_size", None), "fingerprint": fingerprint,
            "seconds": {"read": round(read_seconds, 3), "fingerprint": round(fingerprint_seconds, 3)}}
    if decode:
        info["images"] = decode_images(world)
    if isinstance(getattr(world, "people", None), list):  # people data (mllmu:DIR): people and their questions
        info["people"] = {"people": len(world.people), "questions": len(world.eval_questions),
                          "training_items": len(world.person_train)}
    for extra in ("classes", "images_per_unit"):
        if hasattr(world, extra):
            info[extra] = list(value) if isinstance(value := getattr(world, extra), tuple) else value
    return info


def describe_text(info: dict) -> str:
    if info["kind"] == "MMBench":
        shown = ", ".join(f"{name} {count}" for name, count in sorted(info["categories"].items())[:8])
        more = f" and {len(info['categories']) - 8} more" if len(info["categories"]) > 8 else ""
        answers = ("every one with its answer" if info["answered"] == info["questions"] else
                   f"{info['answered']} with an answer (`pulse --general` needs them all)")
        return "\n".join([f"{info['data']}  (MMBench questions for `pulse --general`)",
                          f"  {info['questions']} questions, {answers}, {info['with_images']} with an image",
                          f"  categories: {shown}{more}", f"  read {info['seconds']['read']:.2f} s"])
    lines = [f"{info['data']}  ({info['kind']}, fingerprint {info['fingerprint']})"]
    for name, split in info["splits"].items():
        per = split["texts_per_unit"]
        lines.append(f"  {name:<5} {split['units']:>8} units {split['texts']:>9} texts  "
                     f"texts/unit {per['min']}-{per['max']} (mean {per['mean']})")
    if info.get("people"):
        people = info["people"]
        lines.append(f"  {people['people']} people, {people['questions']} evaluation questions, "
                     f"{people['training_items']} training question-answer items (`pulse --data {info['data']}`)")
    else:
        lines.append(f"  total {info['units']:>8} units {info['texts']:>9} texts")
    if info.get("image_size"):
        lines.append(f"  image size {info['image_size']} (first training image's width)")
    if info.get("classes"):
        lines.append(f"  classes {', '.join(info['classes'])}; {info.get('images_per_unit', 1)} image(s) per unit")
    seconds, images = info["seconds"], info.get("images")
    decoded = (f", {images['decoded']} of {images['decoded'] + len(images['failed'])} images decode "
               f"({images['seconds']:.2f} s)" if images else " (no image decoded)")
    lines.append(f"  read {seconds['read']:.2f} s, fingerprint {seconds['fingerprint']:.2f} s{decoded}")
    return "\n".join(lines)


def decoding_problem(info: dict) -> str | None:
    """One line naming the image files that do not decode (the first few), or None."""
    failed = (info.get("images") or {}).get("failed") or []
    if not failed:
        return None
    shown = "; ".join(f"{f['path']} ({f['reason']})" for f in failed[:SHOWN_FAILURES])
    more = f"; and {len(failed) - SHOWN_FAILURES} more (--json lists them all)" if len(failed) > SHOWN_FAILURES else ""
    return (f"{len(failed)} of {info['images']['decoded'] + len(failed)} images do not decode: {shown}{more}; replace "
            "them, or drop their records")
