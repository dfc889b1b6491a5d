"""RMU, representation misdirection for unlearning (Li et al. 2024, "The WMDP Benchmark: Measuring and
Reducing Malicious Use With Unlearning", arXiv 2403.03218):

    L = E_Df || h'_l(x) - c * u ||^2 + alpha * E_Dr || h'_l(x) - h_l(x) ||^2

h_l = the hidden states decoder layer l of the language model outputs (h of the model before the request,
h' of the model being trained), u a fixed random unit vector (uniform [0, 1) entries, normalised; drawn once
per request from the run's seed), c the steering coefficient. ||.||^2 is the squared error averaged over the
hidden dimension, then over the answer tokens of a row, then over rows (OpenUnlearning's masked form of
WMDP's mean squared error). Only the MLP down projections of layers l-k+1..l are updated (under LoRA: their
LoRA factors). WMDP's defaults (rmu/unlearn.py on Zephyr-7B: 32 layers, hidden 4096): l = 7, k = 3 (layers 5,
6, 7), c = 6.5, alpha = 1200. The family provides h_l and those parameters (`layer_states`, `steer_parameters`,
`num_layers`, `hidden_size`: FamilyInfo provides "layers").

Scaled to the model (the defaults only; an explicit --rmu-layer / --rmu-coeff is taken as given):
- layer: the one at WMDP's relative depth. Layer 7 (0-based) is the output of 8 of 32 layers, a quarter of the
  depth, so l = max(1, round(N / 4)) - 1 for N layers (7 of 32, 5 of 24, 0 of 2 or 3).
- coefficient: u is a unit vector, so each of the target's H entries has size about c / sqrt(H); WMDP's 6.5 at
  H = 4096 gives 0.10 per dimension. The same per-dimension target at width H is c = 6.5 * sqrt(H / 4096)
  (0.81 at H = 64). An unscaled 6.5 on a 64-wide model asks for 0.81 per dimension, 8x WMDP's.
Both are recorded in the document (`resolved`).
"""
from __future__ import annotations

import math

import torch

from engine.errors import SpecError
from engine.methods.base import Method
from engine.spec.inputs import check_layer_within

WMDP_LAYER = 7  # of WMDP_DEPTH decoder layers
WMDP_DEPTH = 32
WMDP_COEFF = 6.5  # at WMDP_HIDDEN
WMDP_HIDDEN = 4096


def default_layer(count: int) -> int:
    """The layer at WMDP's relative depth: the output of a quarter of the model's `count` layers."""
    return max(1, round(count * (WMDP_LAYER + 1) / WMDP_DEPTH)) - 1


def default_coefficient(hidden: int) -> float:
    """WMDP's c scaled so that the target's per-dimension size (c / sqrt(hidden)) is WMDP's."""
    return WMDP_COEFF * math.sqrt(hidden / WMDP_HIDDEN)


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
            layer = default_layer(count)
        check_layer_within(layer, count)
        self.layer = layer
        self.updated = list(range(max(0, layer - params["rmu_update_layers"] + 1), layer + 1))
        self.direction: torch.Tensor | None = None
        coefficient = params.get("rmu_coeff")
        self.coefficient = default_coefficient(model.hidden_size) if coefficient is None else coefficient

    def resolved(self) -> dict:
        """The layer, the layers updated and c this run uses (the defaults scaled to the model, see above)."""
        return {"rmu_layer": self.layer, "rmu_updated_layers": self.updated, "rmu_coeff": self.coefficient}

    def trainable_parameters(self):
        parameters = self.model.steer_parameters(self.updated)
        if not parameters:
            raise SpecError(f"RMU found nothing to train in layers {self.updated} under --update "
                            f"{self.params.get('update', 'full')}", field="update")
        return parameters

    def losses(self, forget, retain):
        states, mask = self.model.layer_states(forget, self.layer)
        if self.direction is None:
            self.direction = steering_direction(states.shape[-1], self.coefficient, self.generator)
        forget_loss = activation_loss(states, self.direction.to(states.device).expand_as(states), mask)
        with torch.no_grad():
            reference, _ = self.original.layer_states(retain, self.layer)
        kept, retain_mask = self.model.layer_states(retain, self.layer)
        retain_loss = activation_loss(kept, reference, retain_mask)
        total = forget_loss + self.params["rmu_alpha"] * retain_loss
        return {"total": total, "steer": forget_loss, "retain_states": retain_loss}
