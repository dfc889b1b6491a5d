"""BLIP image-text classification (SNLI-VE, NLVR2): BLIP's vision encoder, its text encoder with
cross-attention to the image tokens, and a head on the fused [CLS], as ALBEF and BLIP fine-tune them.

- SNLI-VE (one image and a hypothesis, 3 classes): head on the [CLS] of the text fused with the image;
- NLVR2 (two images and a statement, True/False): the text is fused with each image and the head reads
  both [CLS] states, concatenated (left, right).
The head is an MLP (Linear, ReLU, Linear) in `BlipForImageTextClassification`, a `BlipPreTrainedModel`
saved and loaded through `save_pretrained` / `from_pretrained` with the encoders, so a real BLIP
directory (e.g. blip-itm-base-flickr: `vision_model.*`, `text_encoder.*`) loads into the same class and
its head, absent there, starts freshly initialised (`head_initialised`; the task logs it).

f_I = the vision [CLS] state (both images' concatenated for pairs), f_T = the text encoder's [CLS]
without the image, f(I, T) = the fused [CLS] the head reads (MultiDelete's L_MD regresses it, as the
released classification code does: this adapter has no `similarity`). A batch of captioned images
without labels trains f_I and f_T contrastively (BLIP's ITC): how the task pre-trains a tiny model.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BlipConfig
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.models.blip.modeling_blip import BlipPreTrainedModel, BlipVisionModel
from transformers.models.blip.modeling_blip_text import BlipTextModel

from engine.data.image_bank import ImageBank, image_media
from engine.data.pairs import TensorBank
from engine.models.base import ITC_TEMPERATURE, ImageTextAdapter, contrastive_loss
from engine.models.blip import tiny_blip_config
from engine.models.tokenizer import build_word_tokenizer


class BlipForImageTextClassification(BlipPreTrainedModel):
    """BLIP encoders + an MLP head over the fused [CLS] of each of `config.images_per_example` images."""

    def __init__(self, config: BlipConfig):
        super().__init__(config)
        self.vision_model = BlipVisionModel(config.vision_config)
        self.text_encoder = BlipTextModel(config.text_config, add_pooling_layer=False)
        width = config.text_config.hidden_size
        images = getattr(config, "images_per_example", 1)
        self.classifier = nn.Sequential(nn.Linear(images * width, width), nn.ReLU(), nn.Linear(width, config.num_labels))
        self.post_init()

    def get_input_embeddings(self):
        return self.text_encoder.get_input_embeddings()

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B*k, N, D] for pixel values [B,3,H,W] (k = 1) or [B,k,3,H,W], images in order within an example."""
        return self.vision_model(pixel_values=pixel_values.reshape(-1, *pixel_values.shape[-3:])).last_hidden_state

    def text_cls(self, input_ids, attention_mask) -> torch.Tensor:
        return self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]

    def fused_cls(self, input_ids, attention_mask, pixel_values) -> torch.Tensor:
        """[B, k*H]: the text's [CLS] with cross-attention to each of its k images, concatenated."""
        batch = input_ids.shape[0]
        tokens = self.image_tokens(pixel_values)
        images = tokens.shape[0] // batch
        out = self.text_encoder(
            input_ids=input_ids.repeat_interleave(images, 0),
            attention_mask=attention_mask.repeat_interleave(images, 0),
            encoder_hidden_states=tokens,
            encoder_attention_mask=torch.ones(tokens.shape[:-1], dtype=torch.long, device=tokens.device),
        )
        return out.last_hidden_state[:, 0].reshape(batch, -1)

    def forward(self, input_ids, pixel_values, attention_mask=None, labels=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        logits = self.classifier(self.fused_cls(input_ids, attention_mask, pixel_values))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def head_config(config: BlipConfig, labels, images: int) -> bool:
    """Set the labels and images per example the data needs; True when the checkpoint's head does not fit them."""
    labels = list(labels)
    fits = getattr(config, "images_per_example", None) == images and [config.id2label[i] for i in
                                                                       sorted(config.id2label)] == labels
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: index for index, label in enumerate(labels)}
    config.images_per_example = images
    return not fits


class BlipClassifierAdapter(ImageTextAdapter):
    family = "blip"
    head_initialised = False  # True when the checkpoint had no head for this data (a fresh one was made)

    @staticmethod
    def model_class():
        return BlipForImageTextClassification

    @classmethod
    def build_tiny(cls, vocabulary: list[str], image_size: int, seed: int, directory: Path, *,
                   labels=("entailment", "neutral", "contradiction"), images_per_example: int = 1) -> None:
        """Hidden 64, 2 vision + 2 text layers, patch 8, a head for `labels` over `images_per_example` images."""
        from transformers import BlipImageProcessorPil

        tokenizer = build_word_tokenizer(vocabulary)
        config = tiny_blip_config(len(tokenizer), image_size)
        head_config(config, labels, images_per_example)
        torch.manual_seed(seed)
        model = BlipForImageTextClassification(config)
        processor = BlipImageProcessorPil(size={"height": image_size, "width": image_size},
                                          image_mean=[0.5] * 3, image_std=[0.5] * 3)
        for part in (model, tokenizer, processor):
            part.save_pretrained(directory)

    @classmethod
    def from_checkpoint(cls, source: str, tiny: bool, *, labels=None, images_per_example: int | None = None):
        """Load through `from_pretrained`; a head that does not fit the data's labels and images (or is not
        in the checkpoint, as in a retrieval BLIP) is initialised afresh."""
        from transformers import AutoImageProcessor, AutoTokenizer

        config = BlipConfig.from_pretrained(source)
        refit = False
        if labels is not None:
            refit = head_config(config, labels, images_per_example or getattr(config, "images_per_example", 1))
        model, info = BlipForImageTextClassification.from_pretrained(
            source, config=config, ignore_mismatched_sizes=refit, output_loading_info=True)
        adapter = cls(model, AutoTokenizer.from_pretrained(source), AutoImageProcessor.from_pretrained(source, backend="pil"),
                      source)
        missing = [key for key in [*info.get("missing_keys", ()), *info.get("mismatched_keys", ())]
                   if str(key if isinstance(key, str) else key[0]).startswith("classifier.")]
        adapter.head_initialised = bool(missing)
        return adapter

    @property
    def images_per_example(self) -> int:
        return getattr(self.model.config, "images_per_example", 1)

    def prepare_media(self, units) -> TensorBank | ImageBank:
        """Images [n,3,H,W], or image pairs [n,2,3,H,W] when the head reads two images per example (captioned
        single images, the pre-training corpus, stay single)."""
        k = self.images_per_example
        if k == 1 or not all(hasattr(unit, "images") for unit in units):
            return super().prepare_media(units)
        return image_media(units, self.preprocess_images, per_unit=k, processor_key=self.image_processor.to_json_string())

    def parameter_groups(self):
        m = self.model
        vision = list(m.vision_model.parameters())
        text = list(m.text_encoder.parameters()) + list(m.classifier.parameters())
        return {"all": list(m.parameters()), "vision": vision, "text": text}

    # --- adapter contract ---------------------------------------------------------------------------
    def image_embed(self, batch):  # f_I: vision [CLS] (of each image, concatenated)
        pixels = batch["pixel_values"]
        return self.model.image_tokens(pixels)[:, 0].reshape(pixels.shape[0], -1)

    def text_embed(self, batch):  # f_T
        return self.model.text_cls(batch["input_ids"], batch["attention_mask"])

    def fused_embed(self, batch):  # f(I, T): what the head reads
        return self.model.fused_cls(batch["input_ids"], batch["attention_mask"], batch["pixel_values"])

    def class_logits(self, batch) -> torch.Tensor:
        return self.model.classifier(self.fused_embed(batch))

    def task_loss(self, batch):
        """Cross-entropy of the labels; a batch without labels (captioned images) trains the alignment."""
        if "labels" not in batch:
            return self.alignment_loss(batch)
        return F.cross_entropy(self.class_logits(batch).float(), batch["labels"])

    def alignment_loss(self, batch):
        """BLIP's image-text contrastive pre-training (ITC) on f_I and f_T: every caption of an image is its
        positive, the batch's other captions its negatives. (ITC + ITM was tried too: on the built-in worlds
        it tuned no better on the validation split, at three times the cost.)"""
        image = F.normalize(self.image_embed(batch), dim=-1)
        text = F.normalize(self.text_embed(batch), dim=-1)
        return contrastive_loss(image @ text.t() / ITC_TEMPERATURE, batch["image_index"])

    def log_likelihood(self, batch):
        """[B] log p(label | image, text): NPO's log pi(y|x)."""
        log_probs = F.log_softmax(self.class_logits(batch).float(), dim=-1)
        return log_probs.gather(1, batch["labels"][:, None]).squeeze(1)

    def retention_logits(self, batch):
        """The class distribution of each example (GA+KLR keeps it close to the original's on Dr)."""
        return self.class_logits(batch), None
