"""`mmul-workbench plan`: the memory a run needs per device, before anything loads.

The model is built from its config on torch's meta device (no weights read, no memory taken) to count its
parameters exactly and those an update target trains (every weight; or LoRA's factors r x (in + out) on the
language model's q, k, v, o, gate, up and down projections, + the projector for proj+llm: engine/models/lora.py).
Per device, in bytes:

- parameters: every weight at the storage dtype (the loop keeps fp32 master weights; bf16 autocast on CUDA
  changes the activations, not the weights), split over the devices under --strategy fsdp;
- gradients: one per trainable weight, same dtype (fsdp: split);
- optimizer: AdamW's two moments per trainable weight (fsdp: split);
- optimizer step: the foreach AdamW step's temporaries, one trainable-sized buffer (measured, see the test);
- frozen copies: the method's frozen original (Method.needs_original: MultiDelete, NPO, GA+KLR, KL-min,
  IdkDPO), a whole copy of the weights, never sharded;
- activations (estimated): per transformer layer of each tower, what its backward pass keeps, counted as
  Korthikanti et al. 2022 count it but without the dropout they assume everywhere: s b (8 h + 2 i) values (the
  two layer norms' inputs and outputs, Q, K and V, the attention's output, the MLP's two i-wide inner tensors;
  i = the config's intermediate size, 4 h where it names none) and a s^2 b attention probabilities, each at
  the activation dtype; a tower whose config has attention dropout keeps a second a s^2 b copy and its 1-byte
  mask, hidden dropout a 1-byte s b h mask at each of its two sites. b = the Df batch + the Dr batch the method
  reads, s the tower's tokens (image patches + 1; the text's --seq-len, and for an LMM's language model its image
  tokens too: LLaVA-1.5's 576, Qwen2-VL's 256 at 448 px); an LMM's vision tower under LoRA (--update llm,
  proj+llm) is frozen and keeps none; with --grad-checkpointing each layer
  keeps only its input (s b h) and one layer is recomputed at a time. Korthikanti's s b h (34 + 5 a s / h)
  bytes at 16 bits counts two dropout masks and the attention's dropout mask and output on top: for BLIP-base's
  vision tower (577 tokens, no dropout in its config) 1.6x what a layer keeps, which over-planned a BLIP run
  1.4-1.6x (measured on the CPU with random weights: tests/test_plan.py). Attention through SDPA keeps no
  probabilities (a conservative count there). A LLaMA-style decoder (RMS norms, a gated SiLU MLP and rotary
  embeddings: LLaVA's and Qwen2's language models, told by `rms_norm_eps` in their config) keeps s b (10 h + 4 i):
  the gated MLP's gate, up, act(gate) and their product (4 i) and the query and key both before and after their
  rotation (2 h more); its RMS norms' fp32 copies are not counted. An LMM's loss adds its token logits over the
  vocabulary and their log-softmax, in fp32 (2 x 4 b s V bytes).

The parts are summed: the total is a run's steady state, where from the second step on AdamW's moments live
through the forward and backward passes; a first step alone peaks lower (whole BLIP-base MultiDelete on the CPU:
5.30 GiB in its first step, 7.29 GiB in its second, 7.06 GiB planned).

It fits when the total is at most --gpu-memory. The figures are an estimate: the CUDA allocator's caching and
fragmentation, the CUDA context (~0.5 GB) and a method's extra forward passes (the original's targets, cached
after the first pass) come on top.
"""
from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

DTYPE_BYTES = {"fp32": 4, "bf16": 2}
ADAMW_STATES = 2


def parse_bytes(text: str) -> int:
    """``80GB``, ``80 GiB``, ``512MB`` -> bytes (GB as 2**30, as GPUs are sold and nvidia-smi shows them)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]i?B?)?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"--gpu-memory must be a size such as 80GB or 24GiB, got {text!r}")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get((match.group(2) or "B")[0].upper(), 1)
    size = int(float(match.group(1)) * scale)
    if size < 2**20:  # `0GB` was taken, and every plan then did not fit
        raise ValueError(f"--gpu-memory {text.strip()} is less than a megabyte; give the device's memory, e.g. 80GB")
    return size


def load_config(model: str):
    """The transformers config of a checkpoint or config directory (config.json), or of a hub id in the local
    cache (nothing is downloaded). A path that is no model directory is refused before transformers loads."""
    path = Path(model).expanduser()
    if not path.exists() and (model.startswith(("/", ".", "~")) or model.count("/") > 1):
        raise ValueError(f"no such directory {model}; give a model or config directory, or a cached hub id")
    if path.is_dir() and not (path / "config.json").is_file():
        raise ValueError(f"{model}: no config.json in this directory; give a model or config directory")
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(path) if path.is_dir() else model, local_files_only=True)


def meta_model(config):
    """The model of ``config`` on the meta device: shapes only. Its class from ``architectures``, else the
    auto class of its model type (the workbench's own gcn_bert registers with AutoModel on import)."""
    import torch
    import transformers

    import engine.models.gcn_bert_model  # noqa: F401  (registers gcn_bert with the auto classes)

    names = [getattr(transformers, name, None) for name in (getattr(config, "architectures", None) or [])]
    cls = next((c for c in names if c is not None), None)
    with torch.device("meta"):
        if cls is not None:
            return cls(config)
        try:
            return transformers.AutoModelForImageTextToText.from_config(config)
        except ValueError:
            return transformers.AutoModel.from_config(config)


def lora_parameters(model, update: str, r: int) -> int:
    """What LoRA adds and trains: r x (in + out) per adapted linear layer (engine/models/lora.py's targets);
    proj+llm also trains the projector's weights."""
    from engine.models.lora import LLM_TARGETS

    pattern = re.compile(LLM_TARGETS)
    count = sum(r * (m.in_features + m.out_features) for name, m in model.named_modules()
                if pattern.fullmatch(name) and hasattr(m, "in_features"))
    if update == "proj+llm":
        count += sum(p.numel() for name, p in model.named_parameters()
                     if "multi_modal_projector" in name or ".merger." in name)
    return count


def first_of(part, *names, default=None):
    return next((getattr(part, name) for name in names if getattr(part, name, None) is not None), default)


def qwen2_vl_side() -> int:
    """The side a Qwen2-VL checkpoint's images are resized to (its config names no image size)."""
    from engine.models.qwen2_vl import CHECKPOINT_SIDE

    return CHECKPOINT_SIDE


def image_tokens(config) -> int:
    """The tokens an LMM's language model reads for one image beside the text: LLaVA's patches without the
    class token ((336 / 14)^2 = 576 for LLaVA-1.5), Qwen2-VL's patches merged 2 x 2 (at 448 px: 256); 0 for
    models that put no image into the language model."""
    vision = getattr(config, "vision_config", None)
    if config.model_type not in LMM_MODEL_TYPES or vision is None:
        return 0
    patch = getattr(vision, "patch_size", None) or 14
    side = (getattr(vision, "image_size", None) or qwen2_vl_side()) // patch
    merge = getattr(vision, "spatial_merge_size", None) or 1
    return (side // merge) ** 2


def towers(config, seq_len: int) -> list[dict]:
    """Each transformer stack of the model: layers, hidden and MLP sizes, heads, tokens per example (a vision
    tower's patches; a text stack's --seq-len, and an LMM's language model its image tokens too), whether it is
    an LMM's vision tower, and its dropout probabilities."""
    found = []
    lmm = config.model_type in LMM_MODEL_TYPES
    for part in [config, *(getattr(config, key) for key in ("text_config", "vision_config") if
                          getattr(config, key, None) is not None)]:
        layers = first_of(part, "num_hidden_layers", "depth")
        hidden = first_of(part, "hidden_size", "embed_dim")
        heads = first_of(part, "num_attention_heads", "num_heads")
        if not (layers and hidden and heads) or part is config and found:
            continue
        if getattr(part, "embed_dim", None) and getattr(part, "mlp_ratio", None):  # Qwen2-VL's vision blocks
            hidden = part.embed_dim
        inner = first_of(part, "intermediate_size", default=None) or int(first_of(part, "mlp_ratio", default=4) * hidden)
        image, patch = getattr(part, "image_size", None), getattr(part, "patch_size", None)
        vision = part is getattr(config, "vision_config", None)
        if vision and lmm and not image and patch:  # Qwen2-VL: its patches at the side its adapter resizes to
            image = qwen2_vl_side()
        tokens = (image // patch) ** 2 + 1 if image and patch else seq_len + (image_tokens(config) if lmm else 0)
        found.append({"layers": int(layers), "hidden": int(hidden), "inner": int(inner), "heads": int(heads),
                      "tokens": int(tokens), "vision": vision and lmm,
                      "llama_style": getattr(part, "rms_norm_eps", None) is not None,
                      "attention_dropout": float(first_of(part, "attention_dropout", "attention_probs_dropout_prob",
                                                          default=0.0) or 0.0),
                      "hidden_dropout": float(first_of(part, "hidden_dropout_prob", "hidden_dropout", default=0.0)
                                              or 0.0)})
    return found


def layer_activation_bytes(stack: dict, batch: int, value_bytes: int) -> float:
    """What one layer of `stack` keeps for its backward pass (the module docstring's count)."""
    s, h, i, a = stack["tokens"], stack["hidden"], stack["inner"], stack["heads"]
    tokens, scores = s * batch, a * s * s * batch
    per_token = 8 * h + 2 * i
    if stack.get("llama_style"):  # a gated MLP keeps gate, up, act(gate) and their product; rotary q and k twice
        per_token = 10 * h + 4 * i
    kept = tokens * per_token * value_bytes + scores * value_bytes
    if stack["attention_dropout"] > 0:
        kept += scores * (value_bytes + 1)
    if stack["hidden_dropout"] > 0:
        kept += 2 * tokens * h
    return kept


def activation_bytes(stacks: list[dict], batch: int, dtype_bytes: int, checkpointing: bool) -> int:
    total = 0
    for stack in stacks:  # (an LMM's frozen vision tower is left out by the caller: it keeps nothing for backward)
        per_layer = layer_activation_bytes(stack, batch, dtype_bytes)
        inputs = stack["layers"] * stack["tokens"] * batch * stack["hidden"] * dtype_bytes
        total += inputs + per_layer if checkpointing else stack["layers"] * per_layer
    return int(total)


def logits_bytes(config, seq_len: int, batch: int) -> int:
    """An LMM's token logits over its vocabulary at every position (the image tokens' too), which its loss reads in
    fp32 (transformers upcasts them) and keeps with their log-softmax for the backward pass: 2 x 4 bytes per
    token per vocabulary entry."""
    text = getattr(config, "text_config", None)
    vocabulary = getattr(text, "vocab_size", None)
    if config.model_type not in LMM_MODEL_TYPES or not vocabulary:
        return 0
    return 2 * 4 * batch * (seq_len + image_tokens(config)) * int(vocabulary)


def method_info(method: str):
    from engine.spec import METHODS, method_info as lookup

    info = lookup(method)
    module, _, attribute = METHODS[info.name].target.partition(":")
    return info, getattr(importlib.import_module(module), attribute)


def plan(model: str, method: str, update: str = "full", batch_size: int = 16, retain_batch_size: int = 64,
         dtype: str = "fp32", activation_dtype: str | None = None, strategy: str = "ddp", devices: int = 1,
         seq_len: int = 32, lora_r: int = 16, grad_checkpointing: bool = False,
         gpu_memory: int | None = None) -> dict:
    """The per-device memory of a run (bytes per part), and whether it fits ``gpu_memory`` bytes."""
    config = load_config(model)
    if update != "full" and config.model_type not in LMM_MODEL_TYPES:  # as a run refuses them
        raise ValueError(f"--update {update} puts LoRA on a language model, and {config.model_type} has none; give "
                         "--update full")
    if strategy == "fsdp" and devices < 2:
        raise ValueError("--strategy fsdp shards the model over the ranks of --devices N; give --devices 2 or more")
    meta = meta_model(config)
    parameters = sum(p.numel() for p in meta.parameters())
    trainable = parameters if update == "full" else lora_parameters(meta, update, lora_r)
    info, cls = method_info(method)
    weight_bytes = DTYPE_BYTES[dtype]
    shards = devices if strategy == "fsdp" else 1
    stored = parameters + (trainable if update != "full" else 0)  # LoRA's factors sit beside the weights
    batch = (batch_size if cls.uses_forget else 0) + (retain_batch_size if cls.uses_retain else 0)
    activation = DTYPE_BYTES[activation_dtype or dtype]
    parts = {
        "parameters": stored * weight_bytes // shards,
        "gradients": trainable * weight_bytes // shards,
        "optimizer": ADAMW_STATES * trainable * weight_bytes // shards,
        "optimizer_step": trainable * weight_bytes // shards,
        "frozen_copies": parameters * weight_bytes if cls.needs_original else 0,
        # under LoRA (--update llm, proj+llm) an LMM's vision tower is frozen: no gradient reaches it, and it keeps
        # no activations for the backward pass
        "activations": activation_bytes([stack for stack in towers(config, seq_len)
                                         if update == "full" or not stack["vision"]], max(1, batch // devices),
                                        activation, grad_checkpointing)
        + logits_bytes(config, seq_len, max(1, batch // devices)),
    }
    total = sum(parts.values())
    document = {"model": model, "model_type": config.model_type, "method": info.name, "update": update,
                "seq_len": seq_len, "image_tokens": image_tokens(config),
                "dtype": dtype, "activation_dtype": activation_dtype or dtype, "strategy": strategy,
                "devices": devices, "batch": {"forget": batch_size if cls.uses_forget else 0,
                                              "retain": retain_batch_size if cls.uses_retain else 0},
                "batch_sizes": {"forget": batch_size, "retain": retain_batch_size},  # as given (the method reads "batch")
                "lora_r": lora_r,
                "grad_checkpointing": grad_checkpointing, "parameters": parameters, "trainable": trainable,
                "bytes": parts, "total_bytes": total}
    if gpu_memory is not None:
        document["gpu_memory_bytes"] = gpu_memory
        document["fits"] = total <= gpu_memory
    return document


def device_memory(device: str) -> int | None:
    """The memory of the CUDA device a run on ``device`` (auto, cpu, cuda, cuda:N) would use, or None on the CPU."""
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return None
    index = int(device.partition(":")[2] or 0) if device.startswith("cuda") else 0
    return int(torch.cuda.get_device_properties(index).total_memory)


LMM_MODEL_TYPES = ("llava", "qwen2_vl")  # their runs train LoRA on the language model unless --update says


def spec_plan(spec: dict, gpu_memory: int | None = None) -> dict | None:
    """The plan of a validated run spec, against ``gpu_memory`` bytes, else the CUDA device's own memory (none
    on the CPU); None for a registered tiny model (its config is built from the data's vocabulary when the
    run starts: nothing to read before). Its batch sizes, update target, LoRA rank, checkpointing, devices and
    strategy are the spec's; weights fp32 (the loop's master weights), activations bf16 under CUDA's autocast."""
    from engine.spec import MODELS

    model = spec.get("original") or spec["model"]
    if model in MODELS:
        return None
    params = spec.get("params") or {}
    config = load_config(model)
    update = params.get("update") or ("llm" if config.model_type in LMM_MODEL_TYPES else "full")
    if gpu_memory is None and not spec.get("cluster"):
        gpu_memory = device_memory(spec.get("device", "auto"))
    on_cuda = gpu_memory is not None and spec.get("device", "auto") != "cpu"
    document = plan(model, spec["method"], update=update, batch_size=params.get("batch_size", 16),
                retain_batch_size=params.get("retain_batch_size", 64), dtype="fp32",
                activation_dtype="bf16" if on_cuda else "fp32", strategy="ddp" if spec.get("strategy", "ddp") == "ddp" else "fsdp",
                devices=spec.get("devices", 1), lora_r=params.get("lora_r", 16),
                grad_checkpointing=bool(params.get("grad_checkpointing")), gpu_memory=gpu_memory)
    return {**document, "lora": config.model_type in LMM_MODEL_TYPES}  # whether --update llm is open to it


__all__ = ["device_memory", "parse_bytes", "plan", "spec_plan"]


if __name__ == "__main__":  # a quick look: python -m engine.plan CONFIG_DIR METHOD
    import sys

    print(json.dumps(plan(sys.argv[1], sys.argv[2]), indent=2))
