"""Question-answer items as LMM tensors: the sets `run_loop` draws batches from (`len` + `.batch`).

Each row is one chat prompt in the family's template (`adapter.prompt_ids`; LLaVA: "USER: <image>\\n{q}
ASSISTANT:" or, without an image, "USER: {q} ASSISTANT:") followed by the answer and eos; labels are -100
everywhere but on the answer tokens (and the eos). Images are preprocessed once into a bank; a row points
into it. With `multimodal=True` (MultiDelete) every row carries an image (a text-only question about a
person is shown with the person's portrait) and also the same question asked without the image
(`text_*`), for f_T. With `refusals` (idk, idkdpo) every row also carries its prompt with a refusal answer
(`refusal_*`; row k takes refusal k mod their number).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.data.people_records import PeopleData, QAItem

IGNORE = -100
GENERAL_GROUP = 1_000_000  # image groups of non-person items start here (each image its own group)


@dataclass
class Row:
    question: str
    answer: str
    image: object | None  # a PIL image
    group: int  # whose image: one per person, one per general image (MultiDelete's permutation)


@dataclass
class QASet:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    image_slot: torch.Tensor  # [N] index into pixel_bank, -1 for none
    image_index: torch.Tensor  # [N] group
    pixel_bank: torch.Tensor  # [M, ...] as preprocess_images gives it ([M, 3, H, W]; Qwen2-VL [M, patches, dim])
    text: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # text-only ids, mask, labels
    refusal: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # the prompt with a refusal answer

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def batch(self, indices: torch.Tensor, device) -> dict:
        indices = torch.as_tensor(indices, dtype=torch.long)
        out = _trimmed("", self.input_ids[indices], self.attention_mask[indices], self.labels[indices])
        slots = self.image_slot[indices]
        has_image = slots >= 0
        pixels = torch.zeros((len(indices), *self.pixel_bank.shape[1:]), dtype=self.pixel_bank.dtype)
        if bool(has_image.any()):
            pixels[has_image] = self.pixel_bank[slots[has_image]]
        out.update(pixel_values=pixels, has_image=has_image, image_index=self.image_index[indices])
        for prefix, view in (("text_", self.text), ("refusal_", self.refusal)):
            if view is not None:
                out.update(_trimmed(prefix, *(t[indices] for t in view)))
        return {key: value.to(device) for key, value in out.items()}


def _trimmed(prefix: str, ids, mask, labels) -> dict:
    width = max(int(mask.sum(dim=1).max()), 1) if len(ids) else 1
    return {f"{prefix}input_ids": ids[:, :width], f"{prefix}attention_mask": mask[:, :width],
            f"{prefix}labels": labels[:, :width]}


def item_rows(data: PeopleData, items: list[QAItem], multimodal: bool = False) -> list[Row]:
    """Rows for training items; `multimodal` gives text-only person questions the person's portrait."""
    person_index = {p.person_id: k for k, p in enumerate(data.people)}
    portraits = {p.person_id: p.portrait for p in data.people}
    image_groups: dict[int, int] = {}
    rows = []
    for item in items:
        image = item.image
        if image is None and multimodal and item.person_id is not None:
            image = portraits[item.person_id]
        if item.person_id is not None:
            group = person_index[item.person_id]
        else:
            group = image_groups.setdefault(id(image), GENERAL_GROUP + len(image_groups))
        rows.append(Row(item.question, item.answer, image, group))
    if multimodal:
        rows = [row for row in rows if row.image is not None]
    return rows


def encode_rows(adapter, rows: list[Row], with_text: bool = False, refusals: tuple[str, ...] = ()) -> QASet:
    """Tokenise and pad (right) `rows`; preprocess their images once."""
    bank_slots: dict[int, int] = {}
    bank_images = []
    slots, groups, sequences, text_sequences, refusal_sequences = [], [], [], [], []
    for row in rows:
        if row.image is not None:
            key = id(row.image)
            if key not in bank_slots:
                bank_slots[key] = len(bank_images)
                bank_images.append(row.image)
            slots.append(bank_slots[key])
        else:
            slots.append(-1)
        groups.append(row.group)
        answer = adapter.answer_ids(row.answer)
        prompt = adapter.prompt_ids(row.question, row.image is not None)
        sequences.append((prompt, answer))
        if with_text:
            text_sequences.append((adapter.prompt_ids(row.question, False), answer))
        if refusals:
            refusal_sequences.append((prompt, adapter.answer_ids(refusals[len(refusal_sequences) % len(refusals)])))
    pixel_bank = adapter.preprocess_images(bank_images) if bank_images else torch.zeros(0, 3, 1, 1)
    pad = adapter.tokenizer.pad_token_id or 0
    return QASet(
        *_pad(sequences, pad),
        image_slot=torch.tensor(slots, dtype=torch.long),
        image_index=torch.tensor(groups, dtype=torch.long),
        pixel_bank=pixel_bank,
        text=_pad(text_sequences, pad) if with_text else None,
        refusal=_pad(refusal_sequences, pad) if refusals else None,
    )


def _pad(sequences: list[tuple[list[int], list[int]]], pad: int):
    width = max((len(p) + len(a) for p, a in sequences), default=1)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    labels = torch.full((len(sequences), width), IGNORE, dtype=torch.long)
    for k, (prompt, answer) in enumerate(sequences):
        n = len(prompt) + len(answer)
        ids[k, :n] = torch.tensor(prompt + answer)
        mask[k, :n] = 1
        labels[k, len(prompt):n] = torch.tensor(answer)
    return ids, mask, labels


def encode_items(adapter, data: PeopleData, items: list[QAItem], multimodal: bool = False,
                 refusals: bool = False) -> QASet:
    return encode_rows(adapter, item_rows(data, items, multimodal), with_text=multimodal,
                       refusals=data.refusals if refusals else ())
