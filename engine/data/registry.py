"""Load data by name: a built-in world (`shapes`, `shapes-ve`, `shapes-nlvr2`, `people`, their `-tiny`
variants) or real files as FORMAT:PATH (`flickr30k:DIR`, `coco:DIR`, `snli-ve:DIR`, `nlvr2:DIR`, `mllmu:DIR`).
The one loader for every task: a catalogue row's `target` names the builder or reader."""
from __future__ import annotations

import importlib

from engine.data.preloaded import take as take_preloaded
from engine.data.split_checks import check_splits
from engine.errors import SpecError
from engine.spec import DATA_FORMATS, PEOPLE_WORLDS, WORLD_SEED, WORLDS


def target_function(target: str):
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def load_data(ref: str):
    checked = take_preloaded(ref)  # read by the engine's preflight moments ago, files unchanged since
    if checked is not None:
        return checked
    world = WORLDS.get(ref) or PEOPLE_WORLDS.get(ref)
    if world is not None:
        return target_function(world.target)(ref, seed=WORLD_SEED)
    fmt, _, location = ref.partition(":")
    if fmt in DATA_FORMATS and (problem := DATA_FORMATS[fmt].path_problem(location)) is not None:
        raise SpecError(problem, field="data")
    if fmt in DATA_FORMATS and not DATA_FORMATS[fmt].target:   # read elsewhere (MMBench: pulse --general)
        raise SpecError(DATA_FORMATS[fmt].elsewhere(), field="data")
    if fmt in DATA_FORMATS and DATA_FORMATS[fmt].target:
        data = target_function(DATA_FORMATS[fmt].target)(location)
        if hasattr(data, "split"):  # image-text, labelled and graph-text data (people data is checked as read)
            check_splits(ref, data)
        return data
    raise SpecError(f"unknown data {ref!r}; choose {', '.join([*WORLDS, *PEOPLE_WORLDS])} or one of "
                    f"{', '.join(f for f in DATA_FORMATS if f != 'mmbench')} as FORMAT:PATH", field="data")
