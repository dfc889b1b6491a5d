"""Load data by name: a built-in world (`shapes`, `people`, their `-tiny` variants) or real files as
FORMAT:PATH (`flickr30k:DIR`, `mllmu:DIR`). The one loader for every task."""
from __future__ import annotations

from engine.errors import SpecError
from engine.spec import DATA_FORMATS, PEOPLE_WORLDS, WORLD_SEED, WORLDS


def load_data(ref: str):
    if ref in WORLDS:
        from engine.data.shapes import build_shapes_world

        return build_shapes_world(ref, seed=WORLD_SEED)
    if ref in PEOPLE_WORLDS:
        from engine.data.people import build_people_world

        return build_people_world(ref, seed=WORLD_SEED)
    fmt, _, location = ref.partition(":")
    if fmt == "flickr30k":
        from engine.data.flickr30k import read_flickr30k

        return read_flickr30k(location)
    if fmt == "mllmu":
        from engine.data.mllmu import read_mllmu

        return read_mllmu(location)
    raise SpecError(f"unknown data {ref!r}; choose {', '.join([*WORLDS, *PEOPLE_WORLDS])} or one of "
                    f"{', '.join(f for f in DATA_FORMATS if f != 'mmbench')} as FORMAT:PATH", field="data")
