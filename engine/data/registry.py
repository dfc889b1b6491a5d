"""Load a world by name (`shapes`, `shapes-tiny`) or real files by FORMAT:PATH."""
from __future__ import annotations

from engine.errors import SpecError
from engine.spec import DATA_FORMATS, WORLDS

WORLD_SEED = 0  # the built-in world is fixed; --seed varies deletion sets and model init


def load_world(ref: str):
    if ref in WORLDS:
        from engine.data.shapes import build_shapes_world

        return build_shapes_world(ref, seed=WORLD_SEED)
    fmt, _, location = ref.partition(":")
    if fmt == "flickr30k":
        from engine.data.flickr30k import read_flickr30k

        return read_flickr30k(location)
    raise SpecError(f"unknown data {ref!r}; choose {', '.join(WORLDS)} or one of {', '.join(DATA_FORMATS)} as FORMAT:PATH")
