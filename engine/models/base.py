"""What every model adapter offers the methods, tasks and the loop (DESIGN.md section 3): the
`ModelAdapter` protocol, the plumbing every family shares (`AdapterBase`), the image-text base and the
retrieval base (ITC similarity, own-pair scores, ranking).

An image-text batch is a dict (engine/data/pairs.py): `pixel_values` [B,3,H,W] ([B,2,3,H,W] for image pairs),
`input_ids` / `attention_mask` [B,L], `image_index` [B] (which unit each text belongs to, so texts of one
unit are all positives of each other) and, for classification, `labels` [B].
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from engine.data.image_bank import ImageBank
    from engine.data.pairs import TensorBank

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

    def mean_log_likelihood(self, batch) -> torch.Tensor: ...  # log pi(y|x) / |y| (SimNPO)

    def update_weights(self) -> list[torch.nn.Parameter]: ...  # the weights themselves an update covers

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

    def update_weights(self) -> list[torch.nn.Parameter]:
        """The weights themselves that an update covers (methods that mask single weights train these);
        default: every trainable parameter. LMMs under LoRA give the base weights LoRA adapts."""
        return self.parameter_groups()["all"]

    def unimodal_features(self, embeds: torch.Tensor, modality: str) -> torch.Tensor:
        """What MultiDelete's L_UKR compares of f_I (`modality` "image") or f_T ("text") rows. Default: the rows
        as they are, as the released classification code compares the raw encoder states (and LMMs, which no
        released MultiDelete covers, compare their pooled states as the other terms do); retrieval adapters
        give the L2-normalised projections of the released `get_embed`."""
        return embeds

    def mean_log_likelihood(self, batch) -> torch.Tensor:
        """[B] log pi(y|x) / |y|, SimNPO's length-normalised log-likelihood; default: `log_likelihood`, for
        answers that are one decision (an image-text match, a class), |y| = 1."""
        return self.log_likelihood(batch)


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

    def prepare_media(self, units) -> "TensorBank | ImageBank":
        """The media bank of `units` (engine/data/pairs.py): each unit's image through the image processor, up
        front for images in memory, at draw time for image files (engine/data/image_bank.py)."""
        from engine.data.image_bank import image_media

        return image_media(units, self.preprocess_images, processor_key=self.image_processor.to_json_string())

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
        """Rows of logits whose softmax GA+KLR keeps close to the original's, and a row mask (None = all)."""
        raise NotImplementedError

    def task_loss(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def log_likelihood(self, batch) -> torch.Tensor:
        """[B] log pi(y|x): the log-probability the model gives each example's own answer (NPO)."""
        raise NotImplementedError

    def example_losses(self, batch) -> torch.Tensor:
        """[B] per-example loss used by the membership-inference attack."""
        return -self.log_likelihood(batch)


class RetrievalAdapter(ImageTextAdapter):
    """Image-text retrieval: ITC similarity between every image and every caption of a batch, the score of
    each example's own pair, and ranking. Only retrieval adapters have `similarity`: MultiDelete regresses
    it where it exists and the fused embedding elsewhere."""

    def retention_logits(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each image over the batch's captions and each caption over the batch's images."""
        logits = self.similarity_logits(batch)
        return torch.cat([logits, logits.t()]), None

    def similarity(self, batch) -> torch.Tensor:
        """[B_images, B_texts] ITC cosine similarity between every image and every caption of the batch."""
        raise NotImplementedError

    def similarity_logits(self, batch) -> torch.Tensor:
        return self.similarity(batch) / ITC_TEMPERATURE

    def pair_scores(self, batch) -> torch.Tensor:
        """[B] the score of each example's OWN pair, used by Df/Dr AUC (match probability / cosine)."""
        raise NotImplementedError

    def score_matrix(self, pairset, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores [n_units, n_texts] ranking texts for each image, and images for each text."""
        raise NotImplementedError

    def gallery_scores(self, pairset, batch_size: int):
        """The gallery's scores by rows (engine/metrics/retrieval.py `GalleryScores`), for recall computed a chunk
        of queries at a time; default: the whole `score_matrix`. Adapters whose galleries grow large give rows
        computed on demand from the gallery's embeddings."""
        from engine.metrics.retrieval import MatrixScores

        return MatrixScores(*self.score_matrix(pairset, batch_size))

    def unit_batches(self, pairset, batch_size: int):
        """The pair set's units in order, `batch_size` at a time, as batch dicts of their media."""
        device = self.device
        for start in range(0, pairset.n_units, batch_size):
            yield pairset.media.batch(torch.arange(start, min(start + batch_size, pairset.n_units)), device)
