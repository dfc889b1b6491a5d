"""LLaVA (`LlavaForConditionalGeneration`) as a PULSE model: answer-token losses, LoRA targets, embeddings.

A batch (see engine/data/people_batches.py) is one prompt+answer sequence per row:
`input_ids` / `attention_mask` / `labels` [B, L] (labels -100 on the prompt, the image tokens and the
padding, so only answer tokens, and the closing eos, count), `pixel_values` [B, 3, H, W] with `has_image`
[B] saying which rows carry an image (its `n_image_tokens` placeholders sit right after "USER:", at the
same positions in every image row), `image_index` [B] (whose image: rows of one person share it), and
for MultiDelete the same question asked without the image: `text_input_ids` / `text_attention_mask` /
`text_labels`.

The forward pass is LLaVA's own (vision tower -> multi-modal projector -> placeholders of the language
model's input embeddings -> language model -> lm_head), written out here so that a batch can mix image
and text-only rows and so that the projector outputs and the language model's last hidden states are at
hand for MultiDelete:
- f_I (image_embed)  = the projector outputs of the row's image, mean-pooled over its image tokens;
- f(I,T) (fused_embed) = the last hidden states (after the final norm) at the positions that predict the
  answer tokens, mean-pooled, with the image in the prompt;
- f_T (text_embed)   = the same with the question asked without the image (the text-only prompt).

Tiny configuration `llava-tiny`: a CLIP vision tower (hidden 64, 2 layers, 32x32 images, patch 8, so
(32/8)^2 = 16 patch tokens; strategy "default" drops the CLS token, so exactly 16 image tokens per image)
and a Llama language model (hidden 64, 2 layers), with a word tokenizer built offline from the data's
vocabulary plus the chat words and an in-vocabulary `<image>` token. It is saved with `save_pretrained`
(model + LlavaProcessor) and loaded back with the same `from_pretrained` / `AutoProcessor` calls that load
a local copy of `llava-hf/llava-1.5-7b-hf`. Prompts follow LLaVA-1.5: "USER: <image>\\n{q} ASSISTANT:".
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.models.base import AdapterBase

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


def answer_positions(labels: torch.Tensor):
    """For each row, the positions t whose next token labels[t+1] is an answer token.

    Returns (positions [B, A], targets [B, A], mask [B, A]) with A the longest answer in the batch;
    shorter answers are padded (mask 0)."""
    shifted = labels[:, 1:]
    valid = shifted != -100
    counts = valid.sum(dim=1)
    width = max(int(counts.max()), 1) if labels.numel() else 1
    order = torch.sort((~valid).to(torch.int8), dim=1, stable=True).indices[:, :width]
    mask = torch.arange(width, device=labels.device)[None, :] < counts[:, None]
    targets = shifted.gather(1, order).masked_fill(~mask, 0)
    return order, targets, mask


class LlavaAdapter(AdapterBase):
    """Wraps a LlavaForConditionalGeneration (possibly with LoRA layers injected by peft) and its processor.
    Placement, copies and saving act on `core`, the model without LoRA wrappers."""

    family = "llava"

    @classmethod
    def build_tiny(cls, vocabulary: list[str], image_size: int, seed: int, directory: Path) -> None:
        build_tiny_llava(vocabulary, seed, directory)  # its own image size: the people world's 32 px

    @classmethod
    def from_checkpoint(cls, source: str, tiny: bool) -> "LlavaAdapter":
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        return cls(LlavaForConditionalGeneration.from_pretrained(source), AutoProcessor.from_pretrained(source),
                   source, tiny=tiny)

    def __init__(self, model, processor, source: str, tiny: bool = False):
        self.core = model  # the LlavaForConditionalGeneration; LoRA layers, when attached, live inside it
        self.model = model  # what the loop trains and switches train/eval: the core or its PeftModel
        self.processor = processor
        self.processors = (processor,)
        self.tokenizer = processor.tokenizer
        self.image_processor = processor.image_processor
        self.source = source
        self.tiny = tiny
        self.update = "full"
        self.trainable: list[torch.nn.Parameter] | None = None  # None: every parameter
        config = model.config
        self.image_token_id = config.image_token_id
        self.n_image_tokens = n_image_tokens(config)

    # --- plumbing -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.core.parameters()).device

    def to(self, device) -> "LlavaAdapter":
        self.core.to(device)
        return self

    def frozen_copy(self) -> "LlavaAdapter":
        """The model before this request (f / pi_ref): an eval-mode copy without LoRA and without gradients."""
        if self.model is not self.core:
            raise RuntimeError("merge the LoRA layers before taking a frozen copy")
        twin = copy.copy(self)
        twin.core = twin.model = copy.deepcopy(self.core).eval()
        twin.trainable = None
        for parameter in twin.core.parameters():
            parameter.requires_grad_(False)
        return twin

    def begin_update(self, params: dict) -> None:
        """LoRA on the language model (`llm`), + the projector (`proj+llm`), or `full` (engine/models/lora.py)."""
        from engine.models import lora

        lora.attach(self, params.get("update", "full"), r=params.get("lora_r", 16),
                    alpha=params.get("lora_alpha", 16.0), dropout=params.get("lora_dropout", 0.05))

    def end_update(self) -> None:
        from engine.models import lora

        lora.merge(self)

    def save(self, directory: Path) -> None:
        if self.model is not self.core:
            raise RuntimeError("merge the LoRA layers before saving")
        super().save(directory)

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        """`all` = what the update target trains (LoRA factors, + the projector for proj+llm, or every
        weight for full); `vision` / `text` = its part in the vision tower + projector / the language model."""
        names = dict(self.core.named_parameters())
        chosen = {id(p) for p in (self.trainable if self.trainable is not None else names.values())}
        groups = {"all": [], "vision": [], "text": []}
        for name, parameter in names.items():
            if id(parameter) not in chosen:
                continue
            groups["all"].append(parameter)
            groups["text" if ("language_model" in name or name.startswith("lm_head")) else "vision"].append(parameter)
        return groups

    # --- the forward pass -----------------------------------------------------------------------
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, n_image_tokens, H] multi-modal projector outputs (LLaVA's feature layer and strategy)."""
        out = self.core.model.get_image_features(pixel_values=pixel_values, return_dict=True)
        return torch.stack(list(out.pooler_output))

    def hidden_states(self, input_ids, attention_mask, pixel_values=None, has_image=None):
        """Last hidden states [B, L, H] of the language model, image features scattered into the placeholders."""
        embeds = self.core.get_input_embeddings()(input_ids)
        placeholders = input_ids == self.image_token_id
        if pixel_values is not None and has_image is not None and bool(has_image.any()):
            features = self.image_features(pixel_values[has_image])
            if int(placeholders.sum()) != features.shape[0] * features.shape[1]:
                raise ValueError(f"{int(placeholders.sum())} image tokens in the batch but {features.shape[0]} "
                                 f"images x {features.shape[1]} features")
            embeds = embeds.masked_scatter(placeholders.unsqueeze(-1), features.to(embeds.dtype))
        elif bool(placeholders.any()):
            raise ValueError("image tokens in a batch without images")
        return self.core.model.language_model(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state

    def _answer_states(self, batch: dict, text_only: bool = False):
        if text_only:
            ids, mask, labels = batch["text_input_ids"], batch["text_attention_mask"], batch["text_labels"]
            hidden = self.hidden_states(ids, mask)
        else:
            ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
            hidden = self.hidden_states(ids, mask, batch.get("pixel_values"), batch.get("has_image"))
        positions, targets, answer_mask = answer_positions(labels)
        states = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        return states, targets, answer_mask

    def answer_logits(self, batch: dict):
        """(logits [B, A, V] at the answer-predicting positions, targets [B, A], mask [B, A])."""
        states, targets, mask = self._answer_states(batch)
        return self.core.lm_head(states), targets, mask

    def token_log_probs(self, batch: dict):
        logits, targets, mask = self.answer_logits(batch)
        log_probs = F.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return log_probs * mask, mask

    # --- what the methods use ---------------------------------------------------------------------
    def task_loss(self, batch: dict) -> torch.Tensor:
        """l(x, y): the mean token NLL of each answer, averaged over the batch."""
        log_probs, mask = self.token_log_probs(batch)
        return (-log_probs.sum(dim=1) / mask.sum(dim=1).clamp_min(1)).mean()

    def log_likelihood(self, batch: dict) -> torch.Tensor:
        """[B] log pi(y|x): the sum of the answer tokens' log-probabilities (NPO's sequence log-prob)."""
        log_probs, _ = self.token_log_probs(batch)
        return log_probs.sum(dim=1)

    def example_losses(self, batch: dict) -> torch.Tensor:
        return -self.log_likelihood(batch)

    def retention_logits(self, batch: dict):
        """Next-token logits at the answer positions only [B, A, V] and their mask [B, A] (prompt and padding out)."""
        logits, _, mask = self.answer_logits(batch)
        return logits, mask

    def image_embed(self, batch: dict) -> torch.Tensor:
        """f_I [B, H]: mean-pooled projector outputs of each row's image (zeros for rows without one)."""
        has_image = batch["has_image"]
        pooled = torch.zeros(has_image.shape[0], self.core.config.text_config.hidden_size,
                             device=has_image.device)
        if bool(has_image.any()):
            features = self.image_features(batch["pixel_values"][has_image]).mean(dim=1)
            pooled = pooled.to(features.dtype).index_put((has_image.nonzero().squeeze(1),), features)
        return pooled

    @staticmethod
    def _pool(states, mask):
        weights = mask.to(states.dtype).unsqueeze(-1)
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)

    def fused_embed(self, batch: dict) -> torch.Tensor:
        """f(I, T) [B, H]: mean-pooled last hidden states at the answer positions, image in the prompt."""
        states, _, mask = self._answer_states(batch)
        return self._pool(states, mask)

    def text_embed(self, batch: dict) -> torch.Tensor:
        """f_T [B, H]: the same with the question asked without the image (the text-only prompt)."""
        states, _, mask = self._answer_states(batch, text_only=True)
        return self._pool(states, mask)

    def permute_texts(self, batch: dict, permutation: torch.Tensor) -> dict:
        """Each row's image with another row's question and answer (modality decoupling's T_pi). Every image
        row puts its image tokens at the same positions, so the permuted rows stay valid."""
        permuted = dict(batch)
        for key in ("input_ids", "attention_mask", "labels", "text_input_ids", "text_attention_mask", "text_labels"):
            if key in batch:
                permuted[key] = batch[key][permutation]
        image_rows = batch["has_image"]
        if not bool(image_rows.all()):
            raise ValueError("permute_texts needs an image in every row (build the set with multimodal=True)")
        return permuted

    # --- tokenisation -----------------------------------------------------------------------------
    def prompt_ids(self, question: str, with_image: bool) -> list[int]:
        """[bos] + the chat prompt, the one `<image>` expanded to `n_image_tokens` placeholders."""
        text = (IMAGE_PROMPT if with_image else TEXT_PROMPT).format(question=question)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        expanded: list[int] = [] if self.tokenizer.bos_token_id is None else [self.tokenizer.bos_token_id]
        for token in ids:
            expanded.extend([token] * self.n_image_tokens if token == self.image_token_id else [token])
        return expanded

    def answer_ids(self, answer: str) -> list[int]:
        ids = self.tokenizer(" " + answer, add_special_tokens=False)["input_ids"]
        if not self.tiny and ids and self.tokenizer.convert_ids_to_tokens(ids[0]) in ("▁", "Ġ"):
            ids = ids[1:]  # sentencepiece / BPE: a lone space piece before the first word
        eos = self.tokenizer.eos_token_id
        return ids + ([] if eos is None else [eos])

    def preprocess_images(self, images) -> torch.Tensor:
        return self.image_processor(images=images, return_tensors="pt")["pixel_values"]
