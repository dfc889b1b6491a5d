"""Choosing the deletion set Df: random units by seed, an ID file, or a query over the units' texts.

A unit is a training image (an image pair, a graph) with all its texts; its id is the one its format
gives it (a Karpathy record's `image` path, a Flickr30K id for SNLI-VE, a pair identifier for NLVR2).
Returns indices into the world's training units, sorted.
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Callable

from engine.data.labelled import unit_texts
from engine.errors import SpecError


# What a unit id looks like (an image path, a pair identifier): only such ids are ever quoted back.
ID_LIKE = re.compile(r"[\w./+#-]{1,200}")  # '#': a fact id, UNIT_ID#KEY (engine/data/fact_deletion.py)


def read_id_lines(path: str | Path) -> list[tuple[int, str]]:
    """(line number, id) for each line of an ID file that is neither blank nor a `#` comment (a UTF-8 byte-order
    mark, as some editors write one, is not part of the first id); SpecError naming the file (never its text)."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError(f"deletion ID file {path} does not exist; give a file with one unit id per line") from None
    except IsADirectoryError:
        raise SpecError(f"deletion ID file {path} is a directory; give a file with one unit id per line") from None
    except UnicodeDecodeError:
        raise SpecError(f"deletion ID file {path} is not UTF-8 text; give one unit id per line") from None
    except OSError as error:
        raise SpecError(f"deletion ID file {path} cannot be read ({error.strerror})") from None
    ids = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)
           if line.strip() and not line.lstrip().startswith("#")]
    if not ids:
        raise SpecError(f"deletion ID file {path} lists no ids; give one unit id per line")
    return ids


def read_id_file(path: str | Path) -> list[str]:
    return [unit_id for _, unit_id in read_id_lines(path)]


def unknown_ids_error(path, lines: list[tuple[int, str]], unknown: list[str], known_any: bool,
                      example: str, what: str = "unit") -> SpecError:
    """The error for ids that name no unit. They are quoted only where the file is evidently an ID file
    (some of its ids are units) and they look like ids; otherwise the file is named with line numbers, as
    a file given by mistake (a secret, a config) must never reach a message, a log or the catalog."""
    if known_any and all(ID_LIKE.fullmatch(u) for u in unknown[:3]):
        line_of = {}
        for number, unit_id in lines:
            line_of.setdefault(unit_id, number)
        shown = ", ".join(f"{u} (line {line_of[u]})" for u in unknown[:3]) + (
            f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        return SpecError(f"unknown {what} id {shown} in {path}; ids are training {what} ids like {example}")
    wanted = set(unknown)
    numbers = sorted({number for number, unit_id in lines if unit_id in wanted})
    shown = ", ".join(map(str, numbers[:3])) + (f" and {len(numbers) - 3} more" if len(numbers) > 3 else "")
    return SpecError(f"{path} line {shown}: not a training {what} id (the lines are not shown); give one {what} id "
                     f"per line, like {example}")


def refuse_repeated_ids(path, lines: list[tuple[int, str]], known: set[str], what: str) -> None:
    """An id listed twice is refused rather than merged: under `--delete N` (the file's first N ids) a merged
    repeat silently moves which ids are taken, and a repeat is usually a file built by mistake. Only a known id is
    quoted (as in `unknown_ids_error`)."""
    first_line: dict[str, int] = {}
    for number, unit_id in lines:
        if unit_id in first_line:
            shown = f"id {unit_id}" if unit_id in known else "a line"
            raise SpecError(f"{path} lists {shown} twice (lines {first_line[unit_id]} and {number}); list each "
                            f"{what} once")
        first_line[unit_id] = number


def words(text: str) -> list[str]:
    return re.findall(r"[\w-]+", text.lower())


def select_positions(ids: list[str], deletion: dict, matches: Callable[[int, list[str]], bool], what: str,
                     query_hint: str = "") -> list[int]:
    """Positions (in `ids`' order) of what a deletion spec names among `ids`, the training units' or facts' ids:
    `random` N by seed, `ids` from a file, `query` the positions where `matches(position, query words)`
    (N of them, drawn by seed); refused in one line when nothing or everything would be deleted, or when N asks
    for more than the file or the query gives."""
    strategy, n, seed = deletion["strategy"], deletion.get("n"), deletion.get("seed", 42)
    total = len(ids)
    if strategy == "random":
        if n >= total:
            raise SpecError(f"--delete {n} leaves no remaining data: the training set has {total} {what}s; "
                            f"choose N < {total}")
        return sorted(random.Random(seed).sample(range(total), n))
    if strategy == "ids":
        lines = read_id_lines(deletion["file"])
        refuse_repeated_ids(deletion["file"], lines, set(ids), what)
        wanted_ids = [named for _, named in lines]
        if n is not None:
            if n > len(wanted_ids):
                raise SpecError(f"--delete {n} asks for more ids than the {len(wanted_ids)} in {deletion['file']}")
            wanted_ids = wanted_ids[:n]
        position = {named: index for index, named in enumerate(ids)}
        unknown = [named for named in wanted_ids if named not in position]
        if unknown:
            known_any = any(named in position for _, named in lines)
            raise unknown_ids_error(deletion["file"], lines, unknown, known_any, ids[0] if ids else "?", what)
        chosen = sorted(position[named] for named in wanted_ids)
    else:
        wanted = words(deletion["query"])
        chosen = [i for i in range(total) if matches(i, wanted)]
        if not chosen:
            raise SpecError(f"no training {what} has a text matching {deletion['query']!r}; try fewer or other "
                            f"words{query_hint}")
        if n is not None and n > len(chosen):
            raise SpecError(f"--delete {n} asks for more {what}s than the {len(chosen)} whose texts match "
                            f"{deletion['query']!r}; choose --delete {len(chosen)} or fewer, or drop --delete to take "
                            "them all")
        if n is not None and n < len(chosen):
            chosen = sorted(random.Random(seed).sample(chosen, n))
    if len(chosen) >= total:
        raise SpecError(f"the deletion set covers all {total} training {what}s; nothing would remain to keep")
    return chosen


def select_units(units, deletion: dict) -> list[int]:
    def matches(index: int, wanted: list[str]) -> bool:
        return any(all(w in words(text) for w in wanted) for text in unit_texts(units[index]))

    return select_positions([unit.unit_id for unit in units], deletion, matches, "unit")


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
