"""CLIP dual encoder (`CLIPModel`).

CLIP has no fusion module, so its fused embedding f(I, T) is defined as the element-wise product of
the normalised image and text embeddings times the dimension: its mean is the pair's cosine, so
pulling it towards another pair's product (modality decoupling) pulls the pair's similarity with it,
dimension by dimension, on the same scale as the other embeddings the retention terms compare.
Pair score = cosine of the pair; ranking = cosine.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from engine.models.base import (
    ITC_TEMPERATURE,
    TINY_HIDDEN,
    TINY_SPECIAL_IDS,
    RetrievalAdapter,
    contrastive_loss,
    tiny_vision_config,
)
from engine.models.tokenizer import build_word_tokenizer


class ClipAdapter(RetrievalAdapter):
    family = "clip"

    @staticmethod
    def model_class():
        from transformers import CLIPModel

        return CLIPModel

    @classmethod
    def build_tiny(cls, vocabulary: list[str], image_size: int, seed: int, directory: Path) -> None:
        """CLIPModel with hidden 64, 2 vision + 2 text layers, patch 8."""
        from transformers import CLIPConfig, CLIPImageProcessorPil

        tokenizer = build_word_tokenizer(vocabulary)
        config = CLIPConfig(
            text_config=dict(vocab_size=len(tokenizer), hidden_size=TINY_HIDDEN, intermediate_size=2 * TINY_HIDDEN,
                             num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64,
                             **TINY_SPECIAL_IDS),
            vision_config=tiny_vision_config(image_size),
            projection_dim=TINY_HIDDEN,
        )
        torch.manual_seed(seed)
        model = cls.model_class()(config)
        processor = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                          crop_size={"height": image_size, "width": image_size},
                                          image_mean=[0.5] * 3, image_std=[0.5] * 3)
        for part in (model, tokenizer, processor):
            part.save_pretrained(directory)

    def parameter_groups(self):
        m = self.model
        vision = list(m.vision_model.parameters()) + list(m.visual_projection.parameters())
        text = list(m.text_model.parameters()) + list(m.text_projection.parameters())
        return {"all": list(m.parameters()), "vision": vision, "text": text}

    def _features(self, output) -> torch.Tensor:
        # transformers v5 returns a model output with pooler_output = the projected features
        return output if isinstance(output, torch.Tensor) else output.pooler_output

    def image_embed(self, batch):
        return self._features(self.model.get_image_features(pixel_values=batch["pixel_values"]))

    def text_embed(self, batch):
        return self._features(
            self.model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        )

    def fused_embed(self, batch):
        return self.fused_of(self.image_embed(batch), self.text_embed(batch))

    def similarity(self, batch):
        return self.similarity_of(self.image_embed(batch), self.text_embed(batch))

    # from f_I and f_T rows alone (a dual encoder's pairs need no network pass: MultiDelete's cached targets)
    def fused_of(self, image_embeds, text_embeds):
        """Each row's f(I, T) from its f_I and f_T."""
        image, text = F.normalize(image_embeds, dim=-1), F.normalize(text_embeds, dim=-1)
        return image * text * image.shape[-1]  # scaled so its mean over dimensions is the cosine

    def unimodal_features(self, embeds, modality):
        """L2-normalised projected features, as the released `get_embed` (F.normalize of encode_image/encode_text)."""
        return F.normalize(embeds, dim=-1)

    def similarity_of(self, image_embeds, text_embeds):
        """[B_images, B_texts] `similarity` from f_I and f_T rows."""
        return F.normalize(image_embeds, dim=-1) @ F.normalize(text_embeds, dim=-1).t()

    def task_loss(self, batch):
        return contrastive_loss(self.similarity_logits(batch), batch["image_index"])

    def pair_scores(self, batch):
        return self.pair_scores_of(self.image_embed(batch), self.text_embed(batch))

    def log_likelihood(self, batch):
        return self.log_likelihood_of(self.image_embed(batch), self.text_embed(batch))

    # every score from f_I and f_T rows alone: an evaluation embeds each image and caption once
    # (engine/tasks/retrieval_scoring.py `EmbeddingScoring`)
    def pair_scores_of(self, image_embeds, text_embeds):
        """[B] each row's cosine (the mean of its f(I, T))."""
        return self.fused_of(image_embeds, text_embeds).mean(dim=-1).float()

    def log_likelihood_of(self, image_embeds, text_embeds):
        # a match "probability" from the cosine through the ITC temperature, for NPO and the MIA loss
        return F.logsigmoid(self.pair_scores_of(image_embeds, text_embeds) / ITC_TEMPERATURE)

    def example_losses_of(self, image_embeds, text_embeds):
        return -self.log_likelihood_of(image_embeds, text_embeds)

    def gallery_scores_of(self, image_embeds, text_embeds) -> "CosineScores":
        """A gallery's scores by rows from its images' and captions' f_I and f_T."""
        return CosineScores(F.normalize(image_embeds, dim=-1), F.normalize(text_embeds, dim=-1))

    @torch.no_grad()
    def gallery_scores(self, pairset, batch_size):
        """Rows of the cosine between every image and every caption, from the gallery's normalised embeddings
        (n_units + n_texts rows of the projection width), a chunk of rows at a time."""
        images = torch.cat([self.image_embed(batch) for batch in self.unit_batches(pairset, batch_size)])
        texts = torch.cat([self.text_embed(pairset.text_batch(slice(s, s + batch_size), self.device))
                           for s in range(0, len(pairset), batch_size)])
        return self.gallery_scores_of(images, texts)

    def score_matrix(self, pairset, batch_size):
        scores = self.gallery_scores(pairset, batch_size)
        cosine = scores.image_rows(torch.arange(scores.n_images))
        return cosine, cosine


class CosineScores:
    """`GalleryScores` of a dual encoder: each row one matrix product of normalised embeddings."""

    def __init__(self, images: torch.Tensor, texts: torch.Tensor):
        self.images, self.texts = images, texts
        self.n_images, self.n_texts = images.shape[0], texts.shape[0]

    def image_rows(self, images: torch.Tensor) -> torch.Tensor:
        return (self.images[images.to(self.images.device)] @ self.texts.t()).float()

    def text_rows(self, texts: torch.Tensor) -> torch.Tensor:
        return (self.images @ self.texts[texts.to(self.texts.device)].t()).float().t()
