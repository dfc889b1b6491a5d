"""Update targets for an LMM: LoRA on the language model (`llm`), + the projector (`proj+llm`), or `full`.

LoRA goes through peft (r 16, alpha 16, dropout 0.05 by default, MLLMU-Bench's setting) on the language
model's linear layers q, k, v, o, gate, up and down only. `proj+llm` also trains the family's projector
(LLaVA's multi-modal projector, Qwen2-VL's patch merger) fully: its weights themselves, not a LoRA copy.
After a request, `merge` folds the LoRA factors into the weights, so the next request (and its reference
model) starts from the plain model.
"""
from __future__ import annotations

import re
import warnings

UPDATES = ("llm", "proj+llm", "full")
LLM_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LLM_TARGETS = r".*language_model\..*\.(" + "|".join(LLM_LINEAR) + r")"


def attach(adapter, update: str, r: int = 16, alpha: float = 16.0, dropout: float = 0.05) -> list:
    """Prepare `adapter` for training with `update`; returns (and records) the parameters to train."""
    if update not in UPDATES:
        raise ValueError(f"unknown update target {update!r}; choose one of {', '.join(UPDATES)}")
    merge(adapter)
    adapter.update = update
    if update == "full":
        adapter.trainable = list(adapter.core.parameters())
        return adapter.trainable
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=LLM_TARGETS, bias="none")
    with warnings.catch_warnings():  # peft reads transformers' deprecated `is_gradient_checkpointing`: its
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        adapter.model = get_peft_model(adapter.core, config)  # warning is theirs, and our stderr is progress
    trainable = [p for name, p in adapter.core.named_parameters() if "lora_" in name]
    if update == "proj+llm":
        trainable += list(adapter.projector.parameters())
    adapter.trainable = trainable
    return trainable


def covered_weights(adapter) -> list:
    """The weights themselves that the adapter's update target covers: under `llm` / `proj+llm` the base
    weights of the LoRA-adapted layers (+ the projector), under `full` every weight."""
    if adapter.update == "full":
        return list(adapter.core.parameters())
    pattern = re.compile(LLM_TARGETS + r"(\.base_layer)?\.(weight|bias)")
    weights = [p for name, p in adapter.core.named_parameters() if pattern.fullmatch(name)]
    if adapter.update == "proj+llm":
        weights += list(adapter.projector.parameters())
    return weights


def merge(adapter) -> None:
    """Fold attached LoRA factors into the weights and drop peft's wrapper (no-op without LoRA)."""
    if adapter.model is not adapter.core:
        adapter.core = adapter.model.merge_and_unload()
        adapter.model = adapter.core
    adapter.trainable = None
    adapter.update = "full"
    for parameter in adapter.core.parameters():
        parameter.requires_grad_(False)
