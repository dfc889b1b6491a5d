"""LLaVA (`LlavaForConditionalGeneration`) as a PULSE model; the answer-token losses, LoRA targets and
embeddings it shares with the other LMM families live in engine/models/lmm.py.

Its forward: CLIP vision tower (the configured feature layer and strategy) -> multi-modal projector ->
the `<image>` placeholders of the language model's input embeddings -> language model -> lm_head.

Tiny configuration `llava-tiny`: a CLIP vision tower (hidden 64, 2 layers, 32x32 images, patch 8, so
(32/8)^2 = 16 patch tokens; strategy "default" drops the CLS token, so exactly 16 image tokens per image)
and a Llama language model (hidden 64, 2 layers), with a word tokenizer built offline from the data's
vocabulary plus the chat words and an in-vocabulary `<image>` token. It is saved with `save_pretrained`
(model + LlavaProcessor) and loaded back with the same `from_pretrained` / `AutoProcessor` calls that load
a local copy of `llava-hf/llava-1.5-7b-hf`. Prompts follow LLaVA-1.5: "USER: <image>\\n{q} ASSISTANT:".
"""
from __future__ import annotations

from pathlib import Path

import torch

from engine.models.lmm import LmmAdapter

IMAGE_TOKEN = "<image>"
IMAGE_PROMPT = "USER: <image>\n{question} ASSISTANT:"
TEXT_PROMPT = "USER: {question} ASSISTANT:"
CHAT_TOKENS = (IMAGE_TOKEN, "user", "assistant", ":", "?", ".", ",", "'")
TINY_IMAGE_SIZE = 32
TINY_PATCH = 8
TINY_HIDDEN = 64


def build_tiny_llava(vocabulary: list[str], seed: int, directory: Path, image_size: int = TINY_IMAGE_SIZE) -> None:
    """Write a randomly initialised tiny LLaVA (model + processor) to `directory`."""
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from engine.models.tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(vocabulary, list(CHAT_TOKENS), max_length=256)
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})  # keeps its in-vocabulary id
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    vision = CLIPVisionConfig(hidden_size=TINY_HIDDEN, intermediate_size=2 * TINY_HIDDEN, num_hidden_layers=2,
                              num_attention_heads=2, image_size=image_size, patch_size=TINY_PATCH)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=TINY_HIDDEN, intermediate_size=2 * TINY_HIDDEN,
                       num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                       max_position_embeddings=256, tie_word_embeddings=False, **ids)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token_id,
                         image_seq_length=(image_size // TINY_PATCH) ** 2,
                         vision_feature_select_strategy="default", vision_feature_layer=-1, **ids)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                            crop_size={"height": image_size, "width": image_size},
                                            image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=TINY_PATCH,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               image_token=IMAGE_TOKEN)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)


def n_image_tokens(config) -> int:
    """Placeholders per image: (image/patch)^2 patches, +1 when strategy "full" keeps the CLS token."""
    vision = config.vision_config
    count = (vision.image_size // vision.patch_size) ** 2
    return count + (1 if config.vision_feature_select_strategy == "full" else 0)


class LlavaAdapter(LmmAdapter):
    """A LlavaForConditionalGeneration and its LlavaProcessor."""

    family = "llava"
    image_prompt = IMAGE_PROMPT
    text_prompt = TEXT_PROMPT

    @classmethod
    def build_tiny(cls, vocabulary: list[str], image_size: int, seed: int, directory: Path) -> None:
        build_tiny_llava(vocabulary, seed, directory)  # its own image size: the people world's 32 px

    @classmethod
    def from_checkpoint(cls, source: str, tiny: bool) -> "LlavaAdapter":
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        return cls(LlavaForConditionalGeneration.from_pretrained(source), AutoProcessor.from_pretrained(source),
                   source, tiny=tiny)

    def __init__(self, model, processor, source: str, tiny: bool = False):
        super().__init__(model, processor.tokenizer, processor.image_processor, (processor,), source, tiny)
        self.processor = processor

    def count_image_tokens(self, config) -> int:
        return n_image_tokens(config)

    @property
    def projector(self) -> torch.nn.Module:
        return self.core.model.multi_modal_projector

    @property
    def vision_tower(self) -> torch.nn.Module:
        return self.core.model.vision_tower

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, n_image_tokens, H] multi-modal projector outputs (LLaVA's feature layer and strategy)."""
        out = self.core.model.get_image_features(pixel_values=pixel_values, return_dict=True)
        return torch.stack(list(out.pooler_output))
