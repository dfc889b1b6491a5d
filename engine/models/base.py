"""What every model adapter offers the methods, tasks and the loop (DESIGN.md section 3): the
`ModelAdapter` protocol, the plumbing every family shares (`AdapterBase`), and the image-text base.

An image-text batch is a dict: `pixel_values` [B,3,H,W], `input_ids` / `attention_mask` [B,L] and `image_index` [B]
(which image each caption belongs to, so captions of one image are all positives of each other).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

# ITC temperature: BLIP initialises its learned temperature at 0.07; our adapters hold it fixed so the
# similarity logits that modality decoupling regresses mean the same thing before and after unlearning.
ITC_TEMPERATURE = 0.07

# Tiny configurations (tests, the built-in world): hidden 64, 2 layers, patch 8; the word tokenizer puts
# pad, bos and eos at these ids.
TINY_HIDDEN = 64
TINY_SPECIAL_IDS = dict(pad_token_id=0, bos_token_id=2, eos_token_id=3)


def tiny_vision_config(image_size: int) -> dict:
    return dict(hidden_size=TINY_HIDDEN, intermediate_size=2 * TINY_HIDDEN, num_hidden_layers=2,
                num_attention_heads=2, image_size=image_size, patch_size=8)


def positive_mask(image_index: torch.Tensor) -> torch.Tensor:
    return (image_index[:, None] == image_index[None, :]).float()


def contrastive_loss(logits_i2t: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
    """InfoNCE in both directions with every caption of the same image counted as a positive."""
    targets = positive_mask(image_index)
    targets = targets / targets.sum(dim=1, keepdim=True)
    loss_i2t = -(F.log_softmax(logits_i2t, dim=1) * targets).sum(dim=1).mean()
    loss_t2i = -(F.log_softmax(logits_i2t.t(), dim=1) * targets).sum(dim=1).mean()
    return (loss_i2t + loss_t2i) / 2


class ModelAdapter(Protocol):
    """One per family (engine/models/<family>.py), listed by a `FamilyInfo` row in engine/spec/catalog.py."""

    model: torch.nn.Module  # what the loop trains and switches between train and eval
    source: str

    @classmethod
    def build_tiny(cls, vocabulary: list[str], image_size: int, seed: int, directory: Path) -> None:
        """Write a randomly initialised tiny model (config built offline, tokenizer from `vocabulary`)."""

    @classmethod
    def from_checkpoint(cls, source: str, tiny: bool) -> "ModelAdapter":
        """Load a `save_pretrained` directory or a cached hub id through `from_pretrained`."""

    @property
    def device(self) -> torch.device: ...

    def to(self, device) -> "ModelAdapter": ...

    def frozen_copy(self) -> "ModelAdapter": ...

    def save(self, directory: Path) -> None: ...

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]: ...

    def image_embed(self, batch) -> torch.Tensor: ...  # f_I

    def text_embed(self, batch) -> torch.Tensor: ...  # f_T

    def fused_embed(self, batch) -> torch.Tensor: ...  # f(I, T)

    def task_loss(self, batch) -> torch.Tensor: ...

    def log_likelihood(self, batch) -> torch.Tensor: ...

    def begin_update(self, params: dict) -> None: ...

    def end_update(self) -> None: ...


class AdapterBase:
    """Device placement, frozen copies and saving, for adapters whose `model` is the whole network and
    whose `processors` are saved beside it (tokenizer, image processor or a combined processor)."""

    model: torch.nn.Module
    processors: tuple

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device):
        self.model.to(device)
        return self

    def frozen_copy(self):
        """The original model f: an eval-mode copy that never receives gradients."""
        twin = copy.copy(self)
        twin.model = copy.deepcopy(self.model).eval()
        for parameter in twin.model.parameters():
            parameter.requires_grad_(False)
        return twin

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        for processor in self.processors:
            processor.save_pretrained(directory)

    def begin_update(self, params: dict) -> None:
        """Make ready what one training phase or request updates (LMMs attach LoRA here); default: all weights."""

    def end_update(self) -> None:
        """Fold the phase's update into the weights (LMMs merge LoRA here)."""


class ImageTextAdapter(AdapterBase):
    """Wraps a transformers image-text model with its tokenizer and image processor."""

    def __init__(self, model, tokenizer, image_processor, source: str, max_text_length: int = 32):
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.processors = (tokenizer, image_processor)
        self.source = source
        self.max_text_length = max_text_length

    @classmethod
    def from_checkpoint(cls, source: str, tiny: bool):
        from transformers import AutoImageProcessor, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        image_processor = AutoImageProcessor.from_pretrained(source, backend="pil")
        return cls(cls.model_class().from_pretrained(source), tokenizer, image_processor, source)

    @staticmethod
    def model_class():
        raise NotImplementedError

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            texts,
            padding="longest",
            truncation=True,
            max_length=self.max_text_length,
            return_tensors="pt",
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def preprocess_images(self, images) -> torch.Tensor:
        return self.image_processor(images=images, return_tensors="pt")["pixel_values"]

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        """Named sets of parameters a method may choose to train (`all`, `vision`, `text`)."""
        raise NotImplementedError

    # --- representations (DESIGN.md section 3) -----------------------------------------------------
    def image_embed(self, batch) -> torch.Tensor:  # f_I
        raise NotImplementedError

    def text_embed(self, batch) -> torch.Tensor:  # f_T
        raise NotImplementedError

    def fused_embed(self, batch) -> torch.Tensor:  # f(I, T)
        raise NotImplementedError

    def permute_texts(self, batch, permutation: torch.Tensor) -> dict:
        """The same images paired with the batch's texts in another order (modality decoupling's T_pi)."""
        return {**batch, "input_ids": batch["input_ids"][permutation],
                "attention_mask": batch["attention_mask"][permutation]}

    def retention_logits(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Rows of logits whose softmax GA+KLR keeps close to the original's, and a row mask (None = all).
        Image-text: each image over the batch's captions and each caption over the batch's images."""
        logits = self.similarity_logits(batch)
        return torch.cat([logits, logits.t()]), None

    def similarity(self, batch) -> torch.Tensor:
        """[B_images, B_texts] ITC cosine similarity between every image and every caption of the batch."""
        raise NotImplementedError

    def similarity_logits(self, batch) -> torch.Tensor:
        return self.similarity(batch) / ITC_TEMPERATURE

    def task_loss(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def log_likelihood(self, batch) -> torch.Tensor:
        """[B] log pi(y|x): the log-probability the model gives each example's own image-text pair matching."""
        raise NotImplementedError

    def pair_scores(self, batch) -> torch.Tensor:
        """[B] the score of each example's OWN pair, used by Df/Dr AUC (match probability / cosine)."""
        raise NotImplementedError

    def example_losses(self, batch) -> torch.Tensor:
        """[B] per-example loss used by the membership-inference attack."""
        return -self.log_likelihood(batch)

    def score_matrix(self, pairset, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores [n_images, n_texts] ranking texts for each image, and images for each text."""
        raise NotImplementedError
