"""What every real-format reader and writer shares: JSON and JSON-lines files read with the place of a bad
record in the error (file and record or line number, one line), and atomic writes (a reader never sees
half a file). Images are found, undecoded, by engine/data/images.py."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from engine.data.images import decoded
from engine.errors import SpecError


def shown(value) -> str:
    """A field's value for an error line, cut short (a label, a split: the words that are wrong)."""
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def malformed(path: Path, where: str, problem: str) -> SpecError:
    return SpecError(f"{path} {where}: {problem}")


def not_utf8(path: Path, error: UnicodeDecodeError) -> SpecError:
    """A file that is not UTF-8 text, named by the line the bad byte is on (it said "position 117202")."""
    with open(path, "rb") as stream:
        line = stream.read(error.start).count(b"\n") + 1
    byte = error.object[error.start:error.start + 1].hex() if isinstance(error.object, bytes) else "?"
    return malformed(path, f"line {line}", f"byte 0x{byte} is not UTF-8 text; save the file as UTF-8")


def read_json(path: Path, expected: str):
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))   # a byte-order mark, as some editors write one
    except RecursionError:
        raise SpecError(f"{path} is nested too deeply to be {expected}") from None
    except UnicodeDecodeError as error:
        raise not_utf8(path, error) from None
    except json.JSONDecodeError as error:  # (an OSError is not bad JSON: engine.errors words it)
        raise SpecError(f"{path} is not valid JSON ({str(error).splitlines()[0]}); expected {expected}") from None


def json_records(path: Path, expected: str) -> Iterator[tuple[str, dict]]:
    """(where, record) for each record of a JSON list: where = "record N" (1-based). An empty file holds no
    records, as an empty JSON-lines file does (a split with none is the split checks' to judge)."""
    if is_blank(path):
        return
    records = read_json(path, expected)
    if not isinstance(records, list):
        raise SpecError(f"{path} holds a JSON {type(records).__name__}; expected a list of {expected}")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):  # the record's type, never its contents
            raise malformed(path, f"record {number}", f"expected an object with {expected}, got a {type(record).__name__}")
        yield f"record {number}", record


def jsonl_records(path: Path, expected: str) -> Iterator[tuple[str, dict]]:
    """(where, record) for each non-empty line of a JSON-lines file: where = "line N" (1-based)."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise not_utf8(path, error) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise malformed(path, f"line {number}", f"not JSON ({error.msg}); expected one object with {expected}") from None
        except RecursionError:
            raise malformed(path, f"line {number}", f"nested too deeply; expected one object with {expected}") from None
        if not isinstance(record, dict):
            raise malformed(path, f"line {number}", f"expected an object with {expected}, got a {type(record).__name__}")
        yield f"line {number}", record


def is_blank(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            return not stream.read(4096).strip()  # a longer run of blanks is read, and refused, as JSON
    except OSError:
        return False   # read_json says why it cannot be read


def is_jsonl(path: Path) -> bool:
    """True for JSON lines (one object per line), False for one JSON document; by content, not by name
    (NLVR2 ships its jsonl files as `train.json`)."""
    with path.open(encoding="utf-8-sig", errors="replace") as stream:
        head = stream.read(4096).lstrip()
    return head.startswith("{")


def records(path: Path, expected: str) -> Iterator[tuple[str, dict]]:
    return jsonl_records(path, expected) if is_jsonl(path) else json_records(path, expected)


def find_file(root: Path, names: list[str]) -> Path | None:
    for name in names:
        for candidate in (root / name, root / "annotations" / name):
            if candidate.is_file():
                return candidate
    return None


def write_json(path: Path, payload) -> None:
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(partial, path)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    os.replace(partial, path)


def save_image(image, path: Path) -> None:
    """PNG as given; JPEG at full quality without chroma subsampling (nearly lossless for our pictures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = decoded(image)  # an image file read lazily (engine/data/images.py) is decoded here
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=100, subsampling=0)
    else:
        image.save(path)
