"""What the LMM families (LLaVA, Qwen2-VL) share: chat prompts with expanded image placeholders, answer-token
losses, LoRA update targets, the representations MultiDelete reads and the layer RMU steers.

A batch (see engine/data/people_batches.py) is one prompt+answer sequence per row:
`input_ids` / `attention_mask` / `labels` [B, L] (labels -100 on the prompt, the image tokens and the
padding, so only answer tokens, and the closing eos, count), `pixel_values` [B, ...] with `has_image` [B]
saying which rows carry an image (its `n_image_tokens` placeholders sit at the same positions in every
image row), `image_index` [B] (whose image: rows of one person share it); for MultiDelete the same
question asked without the image (`text_input_ids` / `text_attention_mask` / `text_labels`); for the
refusal methods the same prompt with a refusal answer (`refusal_*`).

The forward pass is the family's own (vision encoder -> projector -> placeholders of the language model's
input embeddings -> language model -> lm_head), written out so that a batch can mix image and text-only
rows and so that the projector outputs and the language model's hidden states are at hand:
- f_I (image_embed)  = the projector outputs of the row's image, mean-pooled over its image tokens;
- f(I,T) (fused_embed) = the last hidden states (after the final norm) at the positions that predict the
  answer tokens, mean-pooled, with the image in the prompt;
- f_T (text_embed)   = the last hidden states at the question's own tokens of the text-only prompt (the
  template's words and the answer left out), mean-pooled: the unimodal text encoding of the input T, as
  MultiDelete's f_T encodes a caption alone. The positions that predict the answer would be the fact
  itself, and L_UKR on Df would then pin exactly what is to be forgotten.

A family subclasses `LmmAdapter` and supplies `build_tiny` / `from_checkpoint`, its chat templates
(`image_prompt`, `text_prompt`, `answer_prefix`, `prepend_bos`), `count_image_tokens(config)`, `projector`,
`image_features(pixel_values)` and, where its positions are not 0..L-1, `position_ids(...)`.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.models.base import AdapterBase

DOWN_PROJ = re.compile(r"language_model\.layers\.(\d+)\.mlp\.down_proj\.")


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


def question_mask(labels: torch.Tensor, attention_mask: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """[B, L] True at each row's question tokens: past the template's `before` tokens, short of the `after`
    tokens that close the prompt (the prompt ends where the answer's labels begin)."""
    answered = labels != -100
    prompt_length = torch.where(answered.any(dim=1), answered.int().argmax(dim=1), attention_mask.sum(dim=1))
    positions = torch.arange(labels.shape[1], device=labels.device)[None, :]
    return (positions >= before) & (positions < (prompt_length - after)[:, None])


def pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)


class LmmAdapter(AdapterBase):
    """Wraps a `...ForConditionalGeneration` LMM (possibly with LoRA layers injected by peft), its tokenizer
    and image processor. Placement, copies and saving act on `core`, the model without LoRA wrappers."""

    family = ""
    image_prompt = "{question}"  # with the family's image placeholder (one; expanded to n_image_tokens)
    text_prompt = "{question}"
    answer_prefix = " "  # what separates the prompt from the answer in the family's template
    prepend_bos = True

    def __init__(self, model, tokenizer, image_processor, processors: tuple, source: str, tiny: bool = False):
        self.core = model  # the ...ForConditionalGeneration; LoRA layers, when attached, live inside it
        self.model = model  # what the loop trains and switches train/eval: the core or its PeftModel
        self.tokenizer, self.image_processor, self.processors = tokenizer, image_processor, processors
        self.source = source
        self.tiny = tiny
        self.update = "full"
        self.trainable: list[torch.nn.Parameter] | None = None  # None: every parameter
        self.image_token_id = model.config.image_token_id
        self.n_image_tokens = self.count_image_tokens(model.config)

    # --- what a family supplies -----------------------------------------------------------------
    def count_image_tokens(self, config) -> int:
        raise NotImplementedError

    @property
    def projector(self) -> torch.nn.Module:
        """The module that maps vision features into the language model's space (`proj+llm` trains it)."""
        raise NotImplementedError

    @property
    def vision_tower(self) -> torch.nn.Module:
        """The image encoder before the projector (it may hold the projector, as Qwen2-VL's `visual` does)."""
        raise NotImplementedError

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, n_image_tokens, H] projector outputs, one row per image."""
        raise NotImplementedError

    def position_ids(self, input_ids, attention_mask, has_image) -> torch.Tensor | None:
        """Position ids for the language model; None = 0..L-1 (right padding keeps that valid)."""
        return None

    def preprocess_images(self, images) -> torch.Tensor:
        return self.image_processor(images=images, return_tensors="pt")["pixel_values"]

    # --- plumbing -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.core.parameters()).device

    @property
    def language_model(self) -> torch.nn.Module:
        return self.core.model.language_model

    @property
    def num_layers(self) -> int:
        return len(self.language_model.layers)

    @property
    def hidden_size(self) -> int:
        """The width of the language model's hidden states (RMU scales its coefficient to it)."""
        return self.core.config.text_config.hidden_size

    def to(self, device):
        self.core.to(device)
        return self

    def frozen_copy(self):
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

    def update_weights(self) -> list[torch.nn.Parameter]:
        """The weights themselves that the update target covers: under LoRA the base weights it adapts."""
        from engine.models import lora

        return lora.covered_weights(self)

    def vision_weights(self) -> list[torch.nn.Parameter]:
        """Every weight of the vision tower and the projector (MMUnlearner's vision mask covers them, whatever
        the update target is), each once."""
        seen: dict[int, torch.nn.Parameter] = {}
        for module in (self.vision_tower, self.projector):
            for parameter in module.parameters():
                seen.setdefault(id(parameter), parameter)
        return list(seen.values())

    def language_weights(self) -> list[torch.nn.Parameter]:
        """The weights themselves that the update target covers inside the language model (under LoRA its
        adapted projections; under `full` all of it), without the projector and the lm_head."""
        inside = {id(p) for p in self.language_model.parameters()}
        return [p for p in self.update_weights() if id(p) in inside]

    # --- the forward pass -----------------------------------------------------------------------
    def input_embeddings(self, input_ids, pixel_values=None, has_image=None) -> torch.Tensor:
        """Token embeddings with each image's projector outputs scattered into its placeholders."""
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
        return embeds

    def hidden_states(self, input_ids, attention_mask, pixel_values=None, has_image=None):
        """Last hidden states [B, L, H] of the language model (after its final norm)."""
        embeds = self.input_embeddings(input_ids, pixel_values, has_image)
        positions = self.position_ids(input_ids, attention_mask, has_image)
        return self.language_model(inputs_embeds=embeds, attention_mask=attention_mask,
                                   position_ids=positions).last_hidden_state

    def _answer_states(self, batch: dict):
        hidden = self.hidden_states(batch["input_ids"], batch["attention_mask"], batch.get("pixel_values"),
                                    batch.get("has_image"))
        positions, targets, answer_mask = answer_positions(batch["labels"])
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

    def mean_log_likelihood(self, batch: dict) -> torch.Tensor:
        """[B] log pi(y|x) / |y| (SimNPO's length-normalised log-likelihood)."""
        log_probs, mask = self.token_log_probs(batch)
        return log_probs.sum(dim=1) / mask.sum(dim=1).clamp_min(1)

    def example_losses(self, batch: dict) -> torch.Tensor:
        return -self.log_likelihood(batch)

    def retention_logits(self, batch: dict):
        """Next-token logits at the answer positions only [B, A, V] and their mask [B, A] (prompt and padding out)."""
        logits, _, mask = self.answer_logits(batch)
        return logits, mask

    def sequence_logits(self, batch: dict) -> torch.Tensor:
        """Next-token logits at every position [B, L, V]: template, image tokens, question, answer and padding
        (KL_Min's KL, as the released code takes `outputs.logits` whole)."""
        hidden = self.hidden_states(batch["input_ids"], batch["attention_mask"], batch.get("pixel_values"),
                                    batch.get("has_image"))
        return self.core.lm_head(hidden)

    def image_embed(self, batch: dict) -> torch.Tensor:
        """f_I [B, H]: mean-pooled projector outputs of each row's image (zeros for rows without one)."""
        has_image = batch["has_image"]
        pooled = torch.zeros(has_image.shape[0], self.core.config.text_config.hidden_size, device=has_image.device)
        if bool(has_image.any()):
            features = self.image_features(batch["pixel_values"][has_image]).mean(dim=1)
            pooled = pooled.to(features.dtype).index_put((has_image.nonzero().squeeze(1),), features)
        return pooled

    def fused_embed(self, batch: dict) -> torch.Tensor:
        """f(I, T) [B, H]: mean-pooled last hidden states at the answer positions, image in the prompt."""
        states, _, mask = self._answer_states(batch)
        return pool(states, mask)

    def text_embed(self, batch: dict) -> torch.Tensor:
        """f_T [B, H]: mean-pooled last hidden states at the question's tokens of the text-only prompt."""
        ids, mask, labels = batch["text_input_ids"], batch["text_attention_mask"], batch["text_labels"]
        before, after = self.text_template_lengths
        return pool(self.hidden_states(ids, mask), question_mask(labels, mask, before, after))

    def permute_texts(self, batch: dict, permutation: torch.Tensor) -> dict:
        """Each row's image with another row's question and answer (modality decoupling's T_pi). Every image
        row puts its image tokens at the same positions, so the permuted rows stay valid."""
        if not bool(batch["has_image"].all()):
            raise ValueError("permute_texts needs an image in every row (build the set with multimodal=True)")
        permuted = dict(batch)
        for key in ("input_ids", "attention_mask", "labels", "text_input_ids", "text_attention_mask", "text_labels"):
            if key in batch:
                permuted[key] = batch[key][permutation]
        return permuted

    # --- the layer RMU steers (FamilyInfo provides "layers") --------------------------------------
    def layer_states(self, batch: dict, layer: int):
        """(hidden states [B, L, H] that decoder layer `layer` of the language model outputs, mask [B, L] of
        the answer tokens), caught with a forward hook as RMU's reference code does."""
        caught = []
        hook = self.language_model.layers[layer].register_forward_hook(
            lambda module, inputs, output: caught.append(output[0] if isinstance(output, tuple) else output))
        try:
            self.hidden_states(batch["input_ids"], batch["attention_mask"], batch.get("pixel_values"),
                               batch.get("has_image"))
        finally:
            hook.remove()
        return caught[0], batch["labels"] != -100

    def steer_parameters(self, layers) -> list[torch.nn.Parameter]:
        """What the update target trains in the MLP down projections of decoder `layers` (WMDP's RMU updates
        those weights; under LoRA, their LoRA factors)."""
        chosen = {id(p) for p in self.parameter_groups()["all"]}
        wanted = set(layers)
        return [p for name, p in self.core.named_parameters()
                if id(p) in chosen and (match := DOWN_PROJ.search(name)) and int(match.group(1)) in wanted]

    # --- tokenisation -----------------------------------------------------------------------------
    @property
    def text_template_lengths(self) -> tuple[int, int]:
        """Tokens of the text-only prompt before the question (bos included) and after it."""
        def count(text: str) -> int:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

        before, _, after = self.text_prompt.partition("{question}")
        bos = 1 if self.prepend_bos and self.tokenizer.bos_token_id is not None else 0
        return bos + count(before), count(after)

    def prompt_ids(self, question: str, with_image: bool) -> list[int]:
        """The family's chat prompt (after bos where it has one), its image placeholder expanded to
        `n_image_tokens` copies."""
        text = (self.image_prompt if with_image else self.text_prompt).format(question=question)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        bos = self.tokenizer.bos_token_id if self.prepend_bos else None
        expanded: list[int] = [] if bos is None else [bos]
        for token in ids:
            expanded.extend([token] * self.n_image_tokens if token == self.image_token_id else [token])
        return expanded

    def answer_ids(self, answer: str) -> list[int]:
        ids = self.tokenizer(self.answer_prefix + answer, add_special_tokens=False)["input_ids"]
        if not self.tiny and ids and self.tokenizer.convert_ids_to_tokens(ids[0]) in ("▁", "Ġ"):
            ids = ids[1:]  # sentencepiece / BPE: a lone space piece before the first word
        eos = self.tokenizer.eos_token_id
        return ids + ([] if eos is None else [eos])
