"""Fingerprints of data: what a cached model was made from, by content, not by name.

Two Flickr30K folders both called `ds`, or one folder edited in place, must never share a cached
original. A built-in world is fingerprinted by its name, the generator version and the world seed (it
is generated, so that is all it is); real data (FORMAT:PATH) by every file under the path: its relative
name, size and modification time, and for annotation files (JSON, JSON lines, TSV, CSV, text, parquet
up to HASH_LIMIT bytes) a hash of the content. Images are stat-ed, not read: an edited image changes
its size or mtime.

`data_fingerprint(ref)` is a function of the data reference alone, so every task (retrieval, multiple
choice, classification, graph-text) gets the same fingerprint for the same data by calling it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from engine.spec import PEOPLE_WORLDS, WORLD_SEED, WORLDS

# Bump when a built-in world's generator changes what it generates (cached originals then retrain): the
# default, and each world's own where it changed (2: facts only memory can hold, engine/data/facts.py).
WORLD_GENERATOR_VERSION = 1
WORLD_GENERATOR_VERSIONS = {world: 2 for world in ("shapes", "shapes-tiny", "shapes-ve", "shapes-ve-tiny",
                                                   "shapes-nlvr2", "shapes-nlvr2-tiny", "graph", "graph-tiny")}
# 3 for the people worlds: 250 people with names drawn as distinct (first, last) pairs (engine/data/people.py);
# 3, not 2, so that a cache keyed by another branch's people version 2 is never read as this one
WORLD_GENERATOR_VERSIONS |= {"people": 3, "people-tiny": 3}
# 3 for shapes: its descriptions no longer name the picture's tag (engine/data/shapes.py)
WORLD_GENERATOR_VERSIONS |= {"shapes": 3, "shapes-tiny": 3}
HASHED_SUFFIXES = (".json", ".jsonl", ".tsv", ".csv", ".txt", ".parquet", ".model", ".jinja")
HASH_LIMIT = 512 << 20


def digest(value) -> str:
    """A short, stable hex digest of a JSON-able value."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def file_hash(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def path_fingerprint(path: Path, hashed: tuple[str, ...] = HASHED_SUFFIXES, times: bool = True) -> str:
    """The fingerprint of a file, or of every file under a directory (hidden names and our `.partial`
    files left out; symbolic links followed once); without `times`, what a copy keeps (no modification times)."""
    path = Path(path)
    if path.is_file():
        return digest([_entry(path, path.name, hashed, times)])
    entries, seen = [], set()
    for folder, dirs, files in os.walk(path, followlinks=True):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.endswith(".partial"):
                continue
            full = Path(folder) / name
            entries.append(_entry(full, full.relative_to(path).as_posix(), hashed, times))
    return digest(entries)


def _entry(path: Path, name: str, hashed: tuple[str, ...], times: bool = True) -> list:
    info = path.stat()
    content = file_hash(path) if path.suffix.lower() in hashed and info.st_size <= HASH_LIMIT else None
    return [name, info.st_size, info.st_mtime_ns if times else None, content]


def data_fingerprint(ref: str) -> str:
    """The fingerprint of the data `ref` names: a built-in world (name, generator version, seed) or
    real files given as FORMAT:PATH (their content, as above)."""
    if ref in WORLDS or ref in PEOPLE_WORLDS:
        version = WORLD_GENERATOR_VERSIONS.get(ref, WORLD_GENERATOR_VERSION)
        return digest({"world": ref, "generator": version, "seed": WORLD_SEED})
    fmt, _, location = ref.partition(":")
    path = Path(location).expanduser()
    if fmt and location and path.exists():
        return digest({"format": fmt, "files": path_fingerprint(path)})
    return digest({"ref": ref})


def data_identity(ref: str) -> str:
    """What a copy of the data keeps of `data_fingerprint`: the files' names, sizes and annotation contents, not their
    modification times (`cp -r` sets new ones). Lineage records it, so that a model trained on a folder is known
    to have seen a plain copy of it too; the cache keys keep the fingerprint, which an edit in place changes."""
    fmt, _, location = ref.partition(":")
    path = Path(location).expanduser()
    if ref in WORLDS or ref in PEOPLE_WORLDS or not (fmt and location and path.exists()):
        return data_fingerprint(ref)
    return digest({"format": fmt, "files": path_fingerprint(path, times=False)})
