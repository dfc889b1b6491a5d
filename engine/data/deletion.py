"""Choosing the deletion set Df: random units by seed, an ID file, or a caption query.

A unit is a training image with all its captions; its id is the image's relative path (the `image`
value of a Karpathy record). Returns indices into the world's training units, sorted.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

from engine.errors import SpecError


def read_id_file(path: str | Path) -> list[str]:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"deletion ID file {path} does not exist; give a file with one unit id per line") from None
    except UnicodeDecodeError:
        raise SpecError(f"deletion ID file {path} is not UTF-8 text; give one unit id per line") from None
    except OSError as error:
        raise SpecError(f"deletion ID file {path} cannot be read ({error.strerror})") from None
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise SpecError(f"deletion ID file {path} lists no ids; give one unit id per line")
    return ids


def _words(text: str) -> list[str]:
    return re.findall(r"[\w-]+", text.lower())


def select_units(units, deletion: dict) -> list[int]:
    strategy, n, seed = deletion["strategy"], deletion.get("n"), deletion.get("seed", 42)
    total = len(units)
    if strategy == "random":
        if n >= total:
            raise SpecError(f"--delete {n} leaves no remaining data: the training set has {total} units; choose N < {total}")
        return sorted(random.Random(seed).sample(range(total), n))
    if strategy == "ids":
        ids = list(dict.fromkeys(read_id_file(deletion["file"])))
        if n is not None:
            if n > len(ids):
                raise SpecError(f"--delete {n} asks for more ids than the {len(ids)} in {deletion['file']}")
            ids = ids[:n]
        position = {unit.unit_id: index for index, unit in enumerate(units)}
        unknown = [unit_id for unit_id in ids if unit_id not in position]
        if unknown:
            shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
            example = units[0].unit_id if units else "?"
            raise SpecError(f"unknown unit id {shown} in {deletion['file']}; ids are training image paths like {example}")
        chosen = sorted(position[unit_id] for unit_id in ids)
    else:
        wanted = _words(deletion["query"])
        matching = [i for i, unit in enumerate(units)
                    if any(all(w in _words(c) for w in wanted) for c in unit.captions)]
        if not matching:
            raise SpecError(f"no training unit has a caption matching {deletion['query']!r}; try fewer or other words")
        if n is not None and n < len(matching):
            matching = sorted(random.Random(seed).sample(matching, n))
        chosen = matching
    if len(chosen) >= total:
        raise SpecError(f"the deletion set covers all {total} training units; nothing would remain to keep")
    return chosen


def split_requests(units: list, k: int) -> list[list]:
    """`k` sequential deletion requests of near-equal size (the larger ones first), order preserved."""
    n = len(units)
    if k < 1:
        raise SpecError(f"--requests K={k} must be at least 1", field="requests")
    if k > n:
        raise SpecError(f"--requests K={k} is larger than the {n} units to forget; choose K <= {n}", field="requests")
    size, extra = divmod(n, k)
    requests, start = [], 0
    for index in range(k):
        end = start + size + (index < extra)
        requests.append(list(units[start:end]))
        start = end
    return requests
