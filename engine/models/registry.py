"""Load a model adapter from a registered tiny name, a local directory or a hub id, by the family rows of
engine/spec/catalog.py: no family is named in code here.

Registered tiny models are created once per world (random weights from the seed, a tokenizer built from
the world's vocabulary), written with `save_pretrained`, and then loaded back through exactly the
`from_pretrained` path that loads a real checkpoint such as `Salesforce/blip-itm-base-flickr`.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from engine.cache import entry_matches, producing, publish, slug
from engine.data.fingerprint import digest
from engine.errors import SpecError
from engine.spec import FAMILIES, MODELS, RECIPES, TASKS
from engine.spec.checkpoints import config_model_type, family_of, known_model_types


def adapter_class(family: str, task: str):
    module, _, attribute = FAMILIES[family].adapters[task].partition(":")
    return getattr(importlib.import_module(module), attribute)


def model_options(world) -> dict:
    """What the data tells a model beyond its words and image size (a classifier's labels and images per
    example), from the world's optional `model_options()`; passed to `build_tiny` and `from_checkpoint`."""
    options = getattr(world, "model_options", None)
    return dict(options()) if callable(options) else {}


def taking(function, options: dict) -> dict:
    """The options `function` takes as keywords (a retrieval model built on classification data has no head)."""
    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return options
    return {key: value for key, value in options.items() if key in parameters}


# Bump when a family's build_tiny changes what it builds: cached tiny models then rebuild. An original's key
# holds the recipe, not this version (engine/protocols/originals.py), so change the recipe with it, or clear
# $MMUL_HOME/cache/originals.
TINY_BUILD_VERSION = 1


def initial_scale(name: str, task: str) -> dict:
    """The weight scale a family's tiny retrieval recipe draws its starting weights at (RECIPES["tiny:<family>"]
    `*init_range`, which the retrieval adapter's build_tiny reads): part of what the tiny model is built from."""
    recipe = RECIPES.get(f"tiny:{MODELS[name].family}", {}) if task == "retrieval" else {}
    return {key: value for key, value in recipe.items() if key.endswith("init_range")}


def tiny_model_dir(name: str, world, seed: int, cache: Path, task: str) -> Path:
    """Create (once) and return the directory of registered tiny model `name` for this world and task.
    `world` needs `name`, `vocabulary()` and `image_size` (and may offer `model_options()`).

    The entry is keyed by what the model and its tokenizer are built from (the vocabulary, image size,
    options, seed, task), not by the data's name: two data sets of one name never share a tokenizer."""
    options = model_options(world)
    vocabulary = world.vocabulary()
    fingerprint = {"model": name, "task": task, "seed": seed, "image_size": world.image_size, "options": options,
                   "vocabulary": digest(vocabulary), "build": TINY_BUILD_VERSION}
    scale = initial_scale(name, task)
    if scale:  # only where a recipe sets it, so every other entry keeps its key (and its cached weights)
        fingerprint["init"] = scale
    suffix = "" if task == FAMILIES[MODELS[name].family].tasks[0] else f"-{task}"
    directory = cache / "models" / f"{name}-{slug(world.name)}{suffix}-seed{seed}-{digest(fingerprint)}"
    if entry_matches(directory, fingerprint):
        return directory
    with producing(directory):
        if not entry_matches(directory, fingerprint):  # another run may have made it while we waited
            build = adapter_class(MODELS[name].family, task).build_tiny
            publish(directory, lambda staging: build(vocabulary, world.image_size, seed, staging,
                                                     **taking(build, options)), fingerprint)
    return directory


def quiet_transformers() -> None:
    """No progress bars or warnings from transformers: our progress goes to stderr and theirs would garble it
    (issue 25: building a tiny model or saving an original printed "Writing model shards" on stderr)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()


def checkpoint_model_type(model: str, source: str) -> str:
    """The checkpoint's `model_type`, quietly (our progress goes to stderr; theirs would garble it), or one
    line: a local directory's config.json (engine/spec/checkpoints.py, what validation reads), else a hub id's
    config from the local cache."""
    from transformers import AutoConfig

    quiet_transformers()
    try:
        return config_model_type(source) or AutoConfig.from_pretrained(source).model_type
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SpecError(f"model {model!r} could not be loaded ({str(error).splitlines()[0][:160]}); give a "
                        "registered name (see `mmul-workbench models`), a local checkpoint directory, or a hub id "
                        "already in the local cache", field="model") from None


def family_serving(model: str, model_type: str, task: str) -> str:
    family = family_of(model_type)
    if family is None:
        raise SpecError(f"model {model!r} is a {model_type!r} checkpoint; the workbench loads "
                        f"{known_model_types()} checkpoints", field="model")
    if task not in family.tasks:
        fits = [f.name for f in FAMILIES.values() if task in f.tasks]
        raise SpecError(f"model {model!r} is a {model_type!r} checkpoint, which serves {', '.join(family.tasks)}, "
                        f"not {task}; {TASKS[task].name} runs take {', '.join(fits)} checkpoints", field="model")
    return family.name


def load_adapter(model: str, world, seed: int, cache: Path, task: str):
    """The adapter for `model` serving `task`, on the CPU; move it with `.to(device)`."""
    quiet_transformers()  # before a tiny model is built and saved
    source = str(tiny_model_dir(model, world, seed, cache, task)) if model in MODELS else model
    family = family_serving(model, checkpoint_model_type(model, source), task)
    load = adapter_class(family, task).from_checkpoint
    return load(source, tiny=model in MODELS, **taking(load, model_options(world)))
