"""Load a model adapter from a registered tiny name, a local directory or a hub id, by the family rows of
engine/spec/catalog.py: no family is named in code here.

Registered tiny models are created once per world (random weights from the seed, a tokenizer built from
the world's vocabulary), written with `save_pretrained`, and then loaded back through exactly the
`from_pretrained` path that loads a real checkpoint such as `Salesforce/blip-itm-base-flickr`.
"""
from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from pathlib import Path

from engine.errors import SpecError
from engine.spec import FAMILIES, MODELS, TASKS


def adapter_class(family: str, task: str):
    module, _, attribute = FAMILIES[family].adapters[task].partition(":")
    return getattr(importlib.import_module(module), attribute)


def tiny_model_dir(name: str, world, seed: int, cache: Path, task: str) -> Path:
    """Create (once) and return the directory of registered tiny model `name` for this world and task.
    `world` needs `name`, `vocabulary()` and `image_size`."""
    suffix = "" if task == FAMILIES[MODELS[name].family].tasks[0] else f"-{task}"
    directory = cache / "models" / f"{name}-{world.name}{suffix}-seed{seed}"
    if (directory / "config.json").exists():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        adapter_class(MODELS[name].family, task).build_tiny(world.vocabulary(), world.image_size, seed, staging)
        os.replace(staging, directory)
    except OSError:
        if not (directory / "config.json").exists():  # another run made it first: use theirs
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def checkpoint_config(model: str, source: str):
    """The checkpoint's config, quietly (our progress goes to stderr; theirs would garble it), or one line."""
    from transformers import AutoConfig
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    try:
        return AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise SpecError(f"model {model!r} could not be loaded ({str(error).splitlines()[0][:160]}); give a "
                        "registered name (see `mmul-workbench models`), a local checkpoint directory, or a hub id "
                        "already in the local cache", field="model") from None


def family_serving(model: str, model_type: str, task: str) -> str:
    for family in FAMILIES.values():
        if model_type in family.model_types:
            if task not in family.tasks:
                fits = [f.name for f in FAMILIES.values() if task in f.tasks]
                raise SpecError(f"model {model!r} is a {model_type!r} checkpoint, which serves "
                                f"{', '.join(family.tasks)}, not {task}; {TASKS[task].name} runs take "
                                f"{', '.join(fits)} checkpoints", field="model")
            return family.name
    known = sorted(t for f in FAMILIES.values() for t in f.model_types)
    raise SpecError(f"model {model!r} is a {model_type!r} checkpoint; the workbench loads {', '.join(known)} "
                    "checkpoints", field="model")


def load_adapter(model: str, world, seed: int, cache: Path, task: str):
    """The adapter for `model` serving `task`, on the CPU; move it with `.to(device)`."""
    source = str(tiny_model_dir(model, world, seed, cache, task)) if model in MODELS else model
    family = family_serving(model, checkpoint_config(model, source).model_type, task)
    return adapter_class(family, task).from_checkpoint(source, tiny=model in MODELS)
