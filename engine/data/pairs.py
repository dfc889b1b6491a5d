"""Image-text pairs as tensors: every image once, every caption once, and which image each caption has."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PairSet:
    pixel_values: torch.Tensor  # [n_images, 3, H, W]
    input_ids: torch.Tensor  # [n_pairs, L]
    attention_mask: torch.Tensor  # [n_pairs, L]
    pair_image: torch.Tensor  # [n_pairs] index into pixel_values
    unit_ids: list[str]  # one per image
    captions: list[str]  # one per pair

    def __len__(self) -> int:
        return int(self.pair_image.shape[0])

    @property
    def n_images(self) -> int:
        return int(self.pixel_values.shape[0])

    def batch(self, pair_indices: torch.Tensor, device) -> dict[str, torch.Tensor]:
        images = self.pair_image[pair_indices]
        return {
            "pixel_values": self.pixel_values[images].to(device, non_blocking=True),
            "input_ids": self.input_ids[pair_indices].to(device, non_blocking=True),
            "attention_mask": self.attention_mask[pair_indices].to(device, non_blocking=True),
            "image_index": images.to(device, non_blocking=True),
        }

    def select_images(self, image_indices: list[int]) -> "PairSet":
        """The sub-set holding these images and all their captions."""
        keep = torch.as_tensor(sorted(image_indices), dtype=torch.long)
        remap = torch.full((self.n_images,), -1, dtype=torch.long)
        remap[keep] = torch.arange(len(keep))
        pairs = torch.nonzero(remap[self.pair_image] >= 0).squeeze(1)
        return PairSet(
            pixel_values=self.pixel_values[keep],
            input_ids=self.input_ids[pairs],
            attention_mask=self.attention_mask[pairs],
            pair_image=remap[self.pair_image[pairs]],
            unit_ids=[self.unit_ids[i] for i in keep.tolist()],
            captions=[self.captions[i] for i in pairs.tolist()],
        )


def encode_units(units, adapter) -> PairSet:
    """Tokenise every caption and preprocess every image of `units` with the adapter's own processors."""
    captions, pair_image = [], []
    for image_index, unit in enumerate(units):
        captions.extend(unit.captions)
        pair_image.extend([image_index] * len(unit.captions))
    tokens = adapter.tokenize(captions)
    return PairSet(
        pixel_values=adapter.preprocess_images([unit.image for unit in units]),
        input_ids=tokens["input_ids"],
        attention_mask=tokens["attention_mask"],
        pair_image=torch.as_tensor(pair_image, dtype=torch.long),
        unit_ids=[unit.unit_id for unit in units],
        captions=captions,
    )
