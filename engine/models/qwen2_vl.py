"""Qwen2-VL (`Qwen2VLForConditionalGeneration`) as a PULSE model; what it shares with LLaVA lives in
engine/models/lmm.py.

Its forward: the image as flattened patches (`temporal_patch_size` frames of `patch_size`^2 pixels each)
with its grid (t, h, w) -> the vision transformer (2-D rotary positions) -> the patch merger (2x2 patches ->
one token in the language model's width: the projector) -> the `<|image_pad|>` placeholders -> the Qwen2
language model with multimodal rotary positions (M-RoPE: image tokens get (t, h, w) positions, text
tokens the same index on all three; `get_rope_index`) -> lm_head.

Image grid: the processor resizes each image to multiples of patch_size x merge_size within [min_pixels,
max_pixels], so different sizes give different token counts. A batch row keeps its placeholders at fixed
positions (MultiDelete permutes rows), so every image is resized to one square side first: 32 px for the
tiny model, 448 px (32x32 patches of 14, 256 tokens) for a checkpoint. The bank keeps each image's patches
as [patches, patch_dim]; the forward flattens the batch's images and repeats their common grid.

Loading: tokenizer and image processor through `AutoTokenizer` / `AutoImageProcessor.from_pretrained` (the
two parts of a checkpoint's processor). `AutoProcessor` would also build Qwen2-VL's video processor, which
needs torchvision; the workbench reads images only.

Tiny configuration `qwen2-vl-tiny`: vision transformer embed 64, 2 blocks, patch 4, temporal patch 2, merge 2
(32 px images: 8x8 patches, 16 image tokens); Qwen2 language model hidden 64, 2 layers, M-RoPE sections
(4, 6, 6) of its 32-wide heads; a word tokenizer from the data's vocabulary plus the chat markers. Prompts
follow Qwen2-VL's chat template: "<|im_start|>user\\n<|vision_start|><|image_pad|><|vision_end|>{q}<|im_end|>
\\n<|im_start|>assistant\\n", the answer closed by <|im_end|>.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from engine.models.lmm import LmmAdapter

IMAGE_PAD = "<|image_pad|>"
MARKERS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", IMAGE_PAD, "<|video_pad|>")
CHAT_WORDS = ("user", "assistant", ":", "?", ".", ",", "'")
IMAGE_PROMPT = ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\n"
                "<|im_start|>assistant\n")
TEXT_PROMPT = "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
TINY_IMAGE_SIZE = 32
TINY_PATCH = 4
TINY_HIDDEN = 64
CHECKPOINT_SIDE = 448


def build_tiny_qwen2_vl(vocabulary: list[str], seed: int, directory: Path, image_size: int = TINY_IMAGE_SIZE) -> None:
    """Write a randomly initialised tiny Qwen2-VL (model, tokenizer, image processor) to `directory`."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from engine.models.tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(vocabulary, [*MARKERS, *CHAT_WORDS], max_length=256)
    tokenizer.add_special_tokens({"additional_special_tokens": list(MARKERS)})  # they keep their vocabulary ids
    tokenizer.eos_token = "<|im_end|>"  # an answer closes the assistant's turn, as in the chat template
    marker = {token: tokenizer.convert_tokens_to_ids(token) for token in MARKERS}
    text = dict(vocab_size=len(tokenizer), hidden_size=TINY_HIDDEN, intermediate_size=2 * TINY_HIDDEN,
                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=marker["<|im_end|>"])
    vision = dict(depth=2, embed_dim=TINY_HIDDEN, hidden_size=TINY_HIDDEN, num_heads=2, mlp_ratio=2,
                  patch_size=TINY_PATCH, temporal_patch_size=2, spatial_merge_size=2, in_channels=3)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=marker[IMAGE_PAD],
                           video_token_id=marker["<|video_pad|>"], vision_start_token_id=marker["<|vision_start|>"],
                           vision_end_token_id=marker["<|vision_end|>"])
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=image_size**2, max_pixels=image_size**2,
                                               patch_size=TINY_PATCH, temporal_patch_size=2, merge_size=2,
                                               image_mean=[0.5] * 3, image_std=[0.5] * 3)
    for part in (model, tokenizer, image_processor):
        part.save_pretrained(directory)


class Qwen2VLAdapter(LmmAdapter):
    """A Qwen2VLForConditionalGeneration with its tokenizer and image processor."""

    family = "qwen2_vl"
    image_prompt = IMAGE_PROMPT
    text_prompt = TEXT_PROMPT
    answer_prefix = ""  # the answer starts the line after "assistant"
    prepend_bos = False

    @classmethod
    def build_tiny(cls, vocabulary: list[str], image_size: int, seed: int, directory: Path) -> None:
        build_tiny_qwen2_vl(vocabulary, seed, directory)  # its own image size: the people world's 32 px

    @classmethod
    def from_checkpoint(cls, source: str, tiny: bool) -> "Qwen2VLAdapter":
        from transformers import AutoImageProcessor, AutoTokenizer, Qwen2VLForConditionalGeneration

        tokenizer = AutoTokenizer.from_pretrained(source)
        image_processor = AutoImageProcessor.from_pretrained(source, backend="pil")
        return cls(Qwen2VLForConditionalGeneration.from_pretrained(source), tokenizer, image_processor, source, tiny)

    def __init__(self, model, tokenizer, image_processor, source: str, tiny: bool = False):
        vision = model.config.vision_config
        self.factor = vision.patch_size * vision.spatial_merge_size
        largest = int(math.isqrt(int(image_processor.size["longest_edge"])))
        self.image_side = max(self.factor, min(CHECKPOINT_SIDE, largest) // self.factor * self.factor)
        super().__init__(model, tokenizer, image_processor, (tokenizer, image_processor), source, tiny)

    def count_image_tokens(self, config) -> int:
        return (self.image_side // self.factor) ** 2

    @property
    def grid(self) -> tuple[int, int, int]:
        """(t, h, w) of one image in patches: one temporal patch (the image repeated), a square side."""
        side = self.image_side // self.core.config.vision_config.patch_size
        return (1, side, side)

    @property
    def projector(self) -> torch.nn.Module:
        return self.core.model.visual.merger

    @property
    def vision_tower(self) -> torch.nn.Module:
        return self.core.model.visual  # the patch merger (the projector) is inside it

    def grids(self, count: int, device) -> torch.Tensor:
        return torch.tensor([self.grid] * count, dtype=torch.long, device=device)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, n_image_tokens, H] patch-merger outputs of n images given as [n, patches, patch_dim]."""
        count = pixel_values.shape[0]
        flat = pixel_values.reshape(-1, pixel_values.shape[-1])
        out = self.core.model.get_image_features(pixel_values=flat, image_grid_thw=self.grids(count, flat.device),
                                                 return_dict=True)
        return torch.stack(list(out.pooler_output))

    def position_ids(self, input_ids, attention_mask, has_image):
        """M-RoPE positions [3, B, L] from Qwen2-VL's own `get_rope_index` (None without images: 0..L-1)."""
        if has_image is None or not bool(has_image.any()):
            return None
        token_types = (input_ids == self.image_token_id).int()
        positions, _ = self.core.model.get_rope_index(
            input_ids, token_types, image_grid_thw=self.grids(int(has_image.sum()), input_ids.device),
            attention_mask=attention_mask)
        return positions

    def preprocess_images(self, images) -> torch.Tensor:
        """[n, patches, patch_dim]: every image resized to one square side, then the processor's patches."""
        side = self.image_side
        resized = [image.convert("RGB").resize((side, side)) for image in images]
        out = self.image_processor(images=resized, return_tensors="pt")
        if not bool((out["image_grid_thw"] == torch.tensor(self.grid)).all()):
            raise ValueError(f"the image processor made grids {out['image_grid_thw'].tolist()}, expected {self.grid}")
        return out["pixel_values"].reshape(len(images), -1, out["pixel_values"].shape[-1])
