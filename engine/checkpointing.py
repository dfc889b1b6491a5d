"""--grad-checkpointing: transformer layers recompute their activations in the backward pass instead of keeping
them, trading about one more forward pass for activation memory (transformers' activation checkpointing,
non-reentrant torch.utils.checkpoint).

Every family: the outermost transformers model that supports it is switched on (BLIP, CLIP, LLaVA, Qwen2-VL:
the whole model; GCN+BERT, whose own model does not: its BERT side, the GCN being a few cheap layers). Under
LoRA (peft) the embeddings' outputs are made to require grad (`enable_input_require_grads`), as peft's own
`prepare_model_for_kbit_training` does: with reentrant checkpointing and frozen inputs no gradient reaches the
LoRA factors and lora_B stays zero (the loop's first-step check would fail the run). The loop switches it on
for its steps and off after, so evaluation runs as before.
"""
from __future__ import annotations

import torch

from engine.errors import RunFailed


def supporting_models(module: torch.nn.Module) -> list:
    """The outermost transformers models under ``module`` that support activation checkpointing."""
    from transformers import PreTrainedModel

    if isinstance(module, PreTrainedModel) and module.supports_gradient_checkpointing:
        return [module]
    return [found for child in module.children() for found in supporting_models(child)]


def checkpointed_layers(module: torch.nn.Module) -> int:
    return sum(getattr(m, "gradient_checkpointing", False) is True for m in module.modules())


def enable_checkpointing(model: torch.nn.Module) -> int:
    """Switch checkpointing on in ``model``; returns how many modules checkpoint. RunFailed when none can."""
    models = supporting_models(model)
    lora = any("lora_" in name for name, _ in model.named_parameters())
    for found in models:
        if hasattr(found, "activation_checkpointing_enable"):  # transformers >= 5.x's name
            found.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            found.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if lora:
            found.enable_input_require_grads()
    layers = checkpointed_layers(model)
    if not layers:
        raise RunFailed(f"--grad-checkpointing: {type(model).__name__} has no layers that support gradient "
                        "checkpointing; run without it")
    return layers


def disable_checkpointing(model: torch.nn.Module) -> None:
    for found in supporting_models(model):
        disable = getattr(found, "activation_checkpointing_disable", None) or found.gradient_checkpointing_disable
        disable()
        found.disable_input_require_grads()
