"""Quantisation: round the unlearned weights to 8 or 4 bits and re-evaluate. Unlearned LLMs quantised to
4 bits recover much of what they forgot (ANCHORS.md s. 9): the unlearning updates are small beside the
rounding step, so rounding lands the weights back near the original's.

Which weights and how: the weight of every `torch.nn.Linear` in the model (attention projections, MLPs,
projection and classification heads; the LoRA factors of an LMM are folded in after each request, so its
merged linear weights), each output channel (row) quantised on its own, symmetric, round to nearest, with
torch's own quantisation: `torch.ao.quantization.observer.PerChannelMinMaxObserver` (`per_channel_symmetric`,
int range [-128, 127] for 8 bits, [-8, 7] for 4) picks each row's scale, max|w| / ((qmax - qmin) / 2), and
`torch.fake_quantize_per_channel_affine` rounds and clamps the row to that grid (the values a real int8/int4
kernel would hold, kept in float so every family evaluates through its own code on any device). Biases,
embeddings, norms and convolutions (CLIP's patch embedding) stay in full precision, as weight-only
quantisers (bitsandbytes, GPTQ, AWQ) leave them. No library beyond torch: torchao and optimum-quanto are not
installed here.
"""
from __future__ import annotations

import torch
from torch.ao.quantization.observer import PerChannelMinMaxObserver

def quantize_linear_weights(module: torch.nn.Module, bits: int) -> int:
    """Fake-quantise every nn.Linear weight of `module` in place; returns how many weight values were rounded."""
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    count = 0
    with torch.no_grad():
        for layer in module.modules():
            if not isinstance(layer, torch.nn.Linear):
                continue
            weight = layer.weight
            observer = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                                quant_min=qmin, quant_max=qmax).to(weight.device)
            observer(weight.float())
            scale, zero_point = observer.calculate_qparams()
            rounded = torch.fake_quantize_per_channel_affine(weight.float(), scale.to(weight.device),
                                                            zero_point.to(weight.device, torch.int32), 0, qmin, qmax)
            weight.copy_(rounded.to(weight.dtype))
            count += weight.numel()
    return count


def quantize(task, model, params: dict, seed: int, emit, should_stop):
    """Quantise `model` in place; returns (the task that evaluates it, what was done)."""
    total = sum(p.numel() for p in model.model.parameters())
    rounded = quantize_linear_weights(model.model, params["bits"])
    emit("log", level="info", message=f"quantised {rounded:,} of {total:,} weights ({rounded / max(total, 1):.0%}: "
         f"every Linear weight) to {params['bits']} bits, per output channel")
    return task, {"bits": params["bits"], "quantised_weights": rounded, "weights": total,
                  "scheme": "per-channel symmetric round-to-nearest (torch.fake_quantize_per_channel_affine)"}
