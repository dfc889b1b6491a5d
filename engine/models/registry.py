"""Load a model adapter from a registered tiny name, a local directory or a hub id.

Registered tiny models are created once per world (random weights from the seed, a tokenizer built
from the world's vocabulary), written with `save_pretrained`, and then loaded back through exactly the
`from_pretrained` path that loads a real checkpoint such as `Salesforce/blip-itm-base-flickr`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from engine.errors import SpecError
from engine.spec import MODELS

FAMILY_BY_MODEL_TYPE = {"blip": "blip", "clip": "clip", "llava": "llava"}


def _tiny_image_text(family: str, vocabulary: list[str], image_size: int, seed: int, directory: Path) -> None:
    import torch
    from transformers import (
        BlipConfig,
        BlipForImageTextRetrieval,
        BlipImageProcessorPil,
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
    )

    from engine.models.tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(vocabulary)
    ids = dict(pad_token_id=0, bos_token_id=2, eos_token_id=3)
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                  image_size=image_size, patch_size=8)
    torch.manual_seed(seed)
    if family == "blip":
        config = BlipConfig(
            text_config=dict(vocab_size=len(tokenizer), hidden_size=64, encoder_hidden_size=64,
                             intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                             max_position_embeddings=64, sep_token_id=3, **ids),
            vision_config=dict(vision, initializer_range=0.02),
            image_text_hidden_size=64,
            projection_dim=64,
        )
        model = BlipForImageTextRetrieval(config)
        processor = BlipImageProcessorPil(size={"height": image_size, "width": image_size},
                                       image_mean=[0.5] * 3, image_std=[0.5] * 3)
    else:
        config = CLIPConfig(
            text_config=dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64, **ids),
            vision_config=vision,
            projection_dim=64,
        )
        model = CLIPModel(config)
        processor = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                       crop_size={"height": image_size, "width": image_size},
                                       image_mean=[0.5] * 3, image_std=[0.5] * 3)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    processor.save_pretrained(directory)


def tiny_model_dir(name: str, world, seed: int, cache: Path) -> Path:
    """Create (once) and return the directory of a registered tiny model for this world."""
    directory = cache / "models" / f"{name}-{world.name}-seed{seed}"
    if (directory / "config.json").exists():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        if MODELS[name].family == "llava":  # LLaVA branch (pulse); BLIP/CLIP below unchanged
            from engine.models.llava import build_tiny_llava

            build_tiny_llava(world.vocabulary(), seed, staging)
        else:
            _tiny_image_text(MODELS[name].family, world.vocabulary(), world.image_size, seed, staging)
        os.replace(staging, directory)
    except OSError:
        if not (directory / "config.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def resolve_model_dir(model: str, world, seed: int, cache: Path) -> str:
    if model in MODELS:
        return str(tiny_model_dir(model, world, seed, cache))
    return model  # a local directory or a hub id; from_pretrained reports what is missing


def _checkpoint_config(model: str, source, what_works: str):
    """The checkpoint's config, quietly (our progress goes to stderr; theirs would garble it), or one line."""
    from transformers import AutoConfig
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    try:
        return AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise SpecError(
            f"model {model!r} could not be loaded ({str(error).splitlines()[0][:160]}); give {what_works}"
        ) from None


def load_adapter(model: str, world, seed: int, cache: Path):
    """The adapter for `model`, on the CPU; move it with `.to(device)`."""
    from transformers import AutoImageProcessor, AutoTokenizer

    source = resolve_model_dir(model, world, seed, cache)
    config = _checkpoint_config(model, source, "a registered name (see `mmul-workbench models`), a local "
                                               "checkpoint directory, or a hub id already in the local cache")
    family = FAMILY_BY_MODEL_TYPE.get(config.model_type)
    if family not in ("blip", "clip"):
        raise SpecError(
            f"model {model!r} is a {config.model_type!r} checkpoint; image-text runs need a BLIP "
            "retrieval or CLIP checkpoint (LLaVA checkpoints go to `mmul-workbench pulse`)"
        )
    tokenizer = AutoTokenizer.from_pretrained(source)
    image_processor = AutoImageProcessor.from_pretrained(source, backend="pil")
    if family == "blip":
        from transformers import BlipForImageTextRetrieval

        from engine.models.blip import BlipRetrievalAdapter

        model_obj = BlipForImageTextRetrieval.from_pretrained(source)
        return BlipRetrievalAdapter(model_obj, tokenizer, image_processor, source)
    from transformers import CLIPModel

    from engine.models.clip import ClipAdapter

    model_obj = CLIPModel.from_pretrained(source)
    return ClipAdapter(model_obj, tokenizer, image_processor, source)


def load_llava_adapter(model: str, world, seed: int, cache: Path):
    """The LLaVA adapter for `model` (registered tiny name, LLaVA checkpoint directory or hub id), on the CPU.

    `world` needs `name` and `vocabulary()` (used only to build a registered tiny model once)."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from engine.models.llava import LlavaAdapter

    source = resolve_model_dir(model, world, seed, cache)
    config = _checkpoint_config(model, source, "llava-tiny, a local LLaVA checkpoint directory, or a hub id "
                                               "already in the local cache")
    if config.model_type != "llava":
        raise SpecError(f"model {model!r} is a {config.model_type!r} checkpoint; pulse needs a LLaVA checkpoint "
                        "(LlavaForConditionalGeneration, e.g. llava-hf/llava-1.5-7b-hf)")
    processor = AutoProcessor.from_pretrained(source)
    model_obj = LlavaForConditionalGeneration.from_pretrained(source)
    return LlavaAdapter(model_obj, processor, source, tiny=model in MODELS)
