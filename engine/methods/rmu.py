"""RMU, representation misdirection for unlearning (Li et al. 2024, "The WMDP Benchmark: Measuring and
Reducing Malicious Use With Unlearning", arXiv 2403.03218):

    L = E_Df || h'_l(x) - c * u ||^2 + alpha * E_Dr || h'_l(x) - h_l(x) ||^2

h_l = the hidden states decoder layer l of the language model outputs (h of the model before the request,
h' of the model being trained), u a fixed random unit vector (uniform [0, 1) entries, normalised; drawn once
per request from the run's seed), c the steering coefficient. ||.||^2 is the squared error averaged over the
hidden dimension, then over the answer tokens of a row, then over rows (OpenUnlearning's masked form of
WMDP's mean squared error). Only the MLP down projections of layers l-k+1..l are updated (under LoRA: their
LoRA factors). Defaults as WMDP on Zephyr-7B: l = 7, k = 3 (layers 5, 6, 7), c = 6.5, alpha = 1200; a model
with fewer than 8 decoder layers steers its last. The family provides h_l and those parameters
(`layer_states`, `steer_parameters`, `num_layers`: FamilyInfo provides "layers").
"""
from __future__ import annotations

import torch

from engine.errors import SpecError
from engine.methods.base import Method

WMDP_LAYER = 7


def activation_loss(states: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over rows of (sum over masked tokens of the mean over dims of (states - target)^2) / tokens."""
    squared = (states.float() - target.float()).pow(2).mean(dim=-1)
    weights = mask.to(squared.dtype)
    return ((squared * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)).mean()


def steering_direction(width: int, coefficient: float, generator: torch.Generator) -> torch.Tensor:
    """c * u: u uniform in [0, 1)^width, normalised to unit length (WMDP's control vector)."""
    u = torch.rand(width, generator=generator)
    return u / u.norm() * coefficient


class RMU(Method):
    uses_forget = True
    uses_retain = True
    needs_original = True

    def __init__(self, params, model, original=None, generator=None):
        super().__init__(params, model, original, generator)
        count = model.num_layers
        layer = params["rmu_layer"]
        if layer is None:
            layer = min(WMDP_LAYER, count - 1)
        elif layer >= count:
            raise SpecError(f"--rmu-layer {layer} is past the model's {count} decoder layers; choose 0..{count - 1}",
                            field="rmu_layer")
        self.layer = layer
        self.updated = list(range(max(0, layer - params["rmu_update_layers"] + 1), layer + 1))
        self.direction: torch.Tensor | None = None

    def trainable_parameters(self):
        parameters = self.model.steer_parameters(self.updated)
        if not parameters:
            raise SpecError(f"RMU found nothing to train in layers {self.updated} under --update "
                            f"{self.params.get('update', 'full')}", field="update")
        return parameters

    def losses(self, forget, retain):
        states, mask = self.model.layer_states(forget, self.layer)
        if self.direction is None:
            self.direction = steering_direction(states.shape[-1], self.params["rmu_coeff"], self.generator)
        forget_loss = activation_loss(states, self.direction.to(states.device).expand_as(states), mask)
        with torch.no_grad():
            reference, _ = self.original.layer_states(retain, self.layer)
        kept, retain_mask = self.model.layer_states(retain, self.layer)
        retain_loss = activation_loss(kept, reference, retain_mask)
        total = forget_loss + self.params["rmu_alpha"] * retain_loss
        return {"total": total, "steer": forget_loss, "retain_states": retain_loss}
