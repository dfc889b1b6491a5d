"""The shape of a run spec before its meaning: JSON types, numeric bounds, absolute paths and complete
checkpoint directories. Torch-free; `engine.spec.validate` calls these for the CLI, the socket and the
New-run form alike, so a spec that would fail on any of them is refused before anything runs.

Paths: a spec travels from the CLI or the TUI to the engine, whose working directory is `$MMUL_HOME`, so
every path in it must be absolute. `absolute_paths` resolves a raw spec's paths against the caller's
directory (the CLI and the TUI call it before they validate or submit); validation refuses what is still
relative, so the engine never resolves a path against its own directory.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from engine.errors import SpecError
from engine.spec.catalog import DATA_FORMATS, MODELS

MAX_SEED = 2**32 - 1  # numpy's and torch's generators take seeds below 2**32
MAX_UNITS = 10_000_000  # --delete N, --forget N
MAX_NAME = 200

# What a checkpoint directory needs beside config.json, by kind: any one of the names will do.
WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER = ("tokenizer.json", "tokenizer.model", "vocab.txt", "vocab.json", "spiece.model")
IMAGE_PROCESSOR = ("preprocessor_config.json", "processor_config.json")


def check_object(value, field: str, what: str) -> dict:
    """A JSON object (a copy), or {} for a missing one; anything else is refused naming `field`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{what} must be a JSON object, got {type(value).__name__}", field=field)
    return dict(value)


SESSION_ID_SHAPE = re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}")   # sessions.reader.SESSION_ID
ID_PART = re.compile(r"[0-9a-f]{4}|\d{8}(-\d{0,6}(-[0-9a-f]{0,4})?)?")  # an id's last 4 characters, or its start


def check_name(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME or "\n" in value:
        raise SpecError(f"--name must be one line of text of at most {MAX_NAME} characters", field="name")
    if SESSION_ID_SHAPE.fullmatch(value.strip()) or ID_PART.fullmatch(value.strip()):
        # a command given it would mean the other session, or this one: an exact name wins before an id's start
        # or end is tried, and `3068` (what the home shows of an id) or `20261207-174623` took over another's
        raise SpecError(f"--name {value!r} has the shape of a session id or part of one (YYYYMMDD-HHMMSS-xxxx, its "
                        "date, or its last 4 characters); name the session in words", field="name")
    return value


def check_layer_within(layer: int, count: int) -> None:
    """--rmu-layer within the model's `count` decoder layers: preflight checks it from a model's config, RMU
    from the loaded model (a hub id's count is known only then)."""
    if layer >= count:
        raise SpecError(f"--rmu-layer {layer} is past the model's {count} decoder layers; choose 0..{count - 1}",
                        field="rmu_layer")


def check_whole(value, flag: str, field: str, lowest: int, highest: int) -> int:
    """A whole number in [lowest, highest] (a bool is not one), or SpecError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:21] + "..."
        raise SpecError(f"{flag} must be a whole number from {lowest} to {highest}, got {shown}", field=field)
    return value


def blocking_file(path: Path) -> Path | None:
    """The file that keeps `path` from being (or becoming) a directory: `path` itself, or the nearest part of it
    that exists, when that is not a directory; None when `path` is or can be made a directory."""
    existing = next((part for part in (path, *path.parents) if os.path.lexists(part)), None)
    return None if existing is None or existing.is_dir() else existing


def require_absolute(path, field: str, what: str) -> Path:
    """`path` as a Path when it is an absolute path; the engine never resolves relative ones."""
    if not isinstance(path, str) or not path:
        raise SpecError(f"{what} needs a path", field=field)
    if not Path(path).is_absolute():
        raise SpecError(f"{what} {path} is a relative path; give an absolute one (the CLI and the TUI resolve "
                        "relative paths against the directory they run in)", field=field)
    return Path(path)


def _absolute(path: str, cwd: str) -> str:
    return os.path.abspath(os.path.join(cwd, os.path.expanduser(path)))


def absolute_paths(spec: dict, cwd: str | None = None) -> dict:
    """A copy of raw `spec` with its paths made absolute against `cwd` (default: the current directory):
    the location of `data` and `general` given as FORMAT:PATH, the deletion ID file, and `model`
    and `original` when they are local directories (not registered names, not hub ids)."""
    if not isinstance(spec, dict):
        return spec
    cwd = cwd or os.getcwd()
    out = dict(spec)
    for key in ("data", "general"):
        ref = out.get(key)
        if isinstance(ref, str) and ":" in ref:
            fmt, _, location = ref.partition(":")
            if fmt in DATA_FORMATS and location:
                out[key] = f"{fmt}:{_absolute(location, cwd)}"
    deletion = out.get("deletion")
    if isinstance(deletion, dict) and isinstance(deletion.get("file"), str) and deletion["file"]:
        out["deletion"] = {**deletion, "file": _absolute(deletion["file"], cwd)}
    for key in ("model", "original"):  # the base and the deployed model (--original)
        model = out.get(key)
        if isinstance(model, str) and model and model not in MODELS:
            local = _absolute(model, cwd)
            if model.startswith((".", "~", os.sep)) or os.path.isdir(local):
                out[key] = local
    return out


def checkpoint_problem(path: Path, images: bool) -> str | None:
    """What a checkpoint directory lacks to be loaded (config, weights and their shards, tokenizer,
    image processor where the model reads images), or None when it is complete."""
    names = set(os.listdir(path))
    if "config.json" not in names:
        return "no config.json"
    needs = [("weights", WEIGHTS), ("tokenizer", TOKENIZER)] + ([("image processor", IMAGE_PROCESSOR)] if images else [])
    for what, candidates in needs:
        present = [n for n in candidates if n in names]
        if not present:
            return f"no {what} file ({' or '.join(candidates)})"
        problem = _weights_problem(path, present[0]) if what == "weights" else None
        if problem:
            return problem
    return None


def _weights_problem(path: Path, name: str) -> str | None:
    if (path / name).stat().st_size == 0:
        return f"{name} is empty"
    if not name.endswith(".index.json"):
        return safetensors_problem(path / name) if name.endswith(".safetensors") else None
    try:
        shards = set(json.loads((path / name).read_text(encoding="utf-8"))["weight_map"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"{name} is not a weight index"
    missing = sorted(str(s) for s in shards if not (path / str(s)).is_file())
    if missing:
        return f"the weight shard {missing[0]} named in {name} is missing"
    return next((problem for shard in sorted(map(str, shards)) if shard.endswith(".safetensors")
                 and (problem := safetensors_problem(path / shard))), None)


MAX_SAFETENSORS_HEADER = 100 * 2**20  # the format's own limit on its JSON header


def safetensors_problem(file: Path) -> str | None:
    """What makes a .safetensors file unloadable, read from its header alone (8 bytes of length, a JSON table of
    tensors and their byte ranges): a cut or damaged file is named here, before a session exists, instead of
    failing inside the run. None when the header is sound and the tensors it lists fill the file exactly."""
    size = file.stat().st_size
    with file.open("rb") as stream:
        length = int.from_bytes(stream.read(8), "little") if size >= 8 else -1
        if not 0 < length <= min(size - 8, MAX_SAFETENSORS_HEADER):
            return f"{file.name} is damaged (its safetensors header is unreadable; the file is {size:,} bytes)"
        try:
            header = json.loads(stream.read(length).decode("utf-8"))
            ends = [int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return f"{file.name} is damaged (its safetensors header is not a table of tensors)"
    held, described = size - 8 - length, max(ends, default=0)
    if held != described:
        cut = "cut short" if held < described else "longer than its header says"
        return f"{file.name} is {cut} ({held:,} bytes of tensors where its header lists {described:,})"
    return None
