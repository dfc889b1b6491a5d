"""Units and their texts as tensors: every unit once (an image, an image pair, a graph), every text once,
which unit each text belongs to, and, for classification, one label per text.

The units live in a *media bank*: anything with `__len__()`, `take(indices) -> bank` (the sub-bank of those
units, in that order) and `batch(indices, device) -> dict` (the batch entries of those units, e.g.
`{"pixel_values": tensor}`). `TensorBank` is the bank of one tensor (images [n,3,H,W]; image pairs
[n,2,3,H,W]); other families bring their own (a graph bank batches graphs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from engine.data.labelled import unit_texts


class MediaBank(Protocol):
    def __len__(self) -> int: ...

    def take(self, indices: torch.Tensor) -> "MediaBank": ...

    def batch(self, indices: torch.Tensor, device) -> dict[str, torch.Tensor]: ...


class TensorBank:
    """Units stored as the rows of one tensor, batched under one key (`pixel_values` for images)."""

    def __init__(self, key: str, values: torch.Tensor):
        self.key, self.values = key, values

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def take(self, indices: torch.Tensor) -> "TensorBank":
        return TensorBank(self.key, self.values[indices])

    def batch(self, indices: torch.Tensor, device) -> dict[str, torch.Tensor]:
        return {self.key: self.values[indices].to(device, non_blocking=True)}


@dataclass
class PairSet:
    media: MediaBank  # one entry per unit
    input_ids: torch.Tensor  # [n_pairs, L]
    attention_mask: torch.Tensor  # [n_pairs, L]
    pair_unit: torch.Tensor  # [n_pairs] the unit each text belongs to (index into media)
    unit_ids: list[str]  # one per unit
    texts: list[str]  # one per pair
    labels: torch.Tensor | None = None  # [n_pairs] class index of each pair (classification)

    def __len__(self) -> int:
        return int(self.pair_unit.shape[0])

    @property
    def n_units(self) -> int:
        return len(self.media)

    def batch(self, pair_indices: torch.Tensor, device) -> dict[str, torch.Tensor]:
        units = self.pair_unit[pair_indices]
        batch = {
            **self.media.batch(units, device),
            **self.text_batch(pair_indices, device),
            # which unit each text belongs to: texts of one unit are positives of each other (contrastive
            # loss) and never each other's unrelated pair (MultiDelete's permutation)
            "image_index": units.to(device, non_blocking=True),
        }
        if self.labels is not None:
            batch["labels"] = self.labels[pair_indices].to(device, non_blocking=True)
        return batch

    def text_batch(self, pair_indices, device) -> dict[str, torch.Tensor]:
        """The texts alone of these pairs (indices or a slice), as a text encoder takes them."""
        return {"input_ids": self.input_ids[pair_indices].to(device, non_blocking=True),
                "attention_mask": self.attention_mask[pair_indices].to(device, non_blocking=True)}

    def pairs_of_units(self, unit_indices) -> torch.Tensor:
        """The pairs (texts) of these units, ascending: the pair order of `select_units(unit_indices)`."""
        chosen = torch.as_tensor(list(unit_indices), dtype=torch.long)
        return torch.nonzero(torch.isin(self.pair_unit, chosen)).squeeze(1)

    def select_units(self, unit_indices: list[int]) -> "PairSet":
        """The sub-set holding these units (in ascending order) and all their texts."""
        keep = torch.as_tensor(sorted(unit_indices), dtype=torch.long)
        remap = torch.full((self.n_units,), -1, dtype=torch.long)
        remap[keep] = torch.arange(len(keep))
        pairs = self.pairs_of_units(keep)
        return PairSet(
            media=self.media.take(keep),
            input_ids=self.input_ids[pairs],
            attention_mask=self.attention_mask[pairs],
            pair_unit=remap[self.pair_unit[pairs]],
            unit_ids=[self.unit_ids[i] for i in keep.tolist()],
            texts=[self.texts[i] for i in pairs.tolist()],
            labels=None if self.labels is None else self.labels[pairs],
        )


def encode_units(units, adapter) -> PairSet:
    """Tokenise every text and prepare every unit's media with the adapter's own processors
    (`adapter.prepare_media(units) -> bank`); labels come from `unit.labels` where units have them."""
    texts, pair_unit, labels = [], [], []
    for index, unit in enumerate(units):
        own = unit_texts(unit)
        texts.extend(own)
        pair_unit.extend([index] * len(own))
        if getattr(unit, "labels", None) is not None:
            labels.extend(unit.labels)
    if labels and len(labels) != len(texts):
        raise ValueError(f"{len(labels)} labels for {len(texts)} texts: every unit needs one label per text")
    tokens = adapter.tokenize(texts)
    return PairSet(
        media=adapter.prepare_media(units),
        input_ids=tokens["input_ids"],
        attention_mask=tokens["attention_mask"],
        pair_unit=torch.as_tensor(pair_unit, dtype=torch.long),
        unit_ids=[unit.unit_id for unit in units],
        texts=texts,
        labels=torch.as_tensor(labels, dtype=torch.long) if labels else None,
    )
