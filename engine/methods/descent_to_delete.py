"""Descent-to-Delete (Neel et al. 2021): T descent steps on Dr, then one Gaussian noise step.

sigma from the strongly-convex bound (Theorem 3.1) with Lipschitz L = 1 + wd, smoothness 4 - wd,
strong convexity mu = wd, eps (default 5), delta = 1/n^2, n = |training data|, and T = the descent steps
actually taken: the released MultiDelete baseline's `compute_sigma(num_examples, iterations, ...)` takes T
as an argument, and the bound's gamma^T / (1 - gamma^T) makes sigma fall by orders of magnitude as T grows
(on `shapes`, 1.11 for T = 1 against about 5e-4 for T = 160). By default T = 1 (`max_steps`, the released
setting); under `--budget matched-steps` the loop takes MultiDelete's step count and the noise is drawn for
that T, so the method stays Descent-to-Delete at the budget it was given. Each request's `method_record`
holds `noise_sigma` and `noise_iterations`.
"""
from __future__ import annotations

import math

import torch

from engine.methods.base import Method


def noise_sigma(n: int, weight_decay: float, eps: float, iterations: int = 1) -> float:
    lipschitz, smooth, strong = 1.0 + weight_decay, 4.0 - weight_decay, weight_decay
    if strong <= 0:
        return math.inf
    gamma = (smooth - strong) / (smooth + strong)
    delta = 1.0 / n**2
    log_term = math.log(1.0 / delta)
    numerator = 4.0 * math.sqrt(2.0) * lipschitz * gamma**iterations
    denominator = strong * n * (1.0 - gamma**iterations) * (math.sqrt(log_term + eps) - math.sqrt(log_term))
    return numerator / denominator


class DescentToDelete(Method):
    uses_retain = True
    max_steps = 1  # T = 1 descent iteration

    def losses(self, forget, retain):
        loss = self.model.task_loss(retain)
        return {"total": loss, "task": loss}

    @torch.no_grad()
    def after_training(self, n_train: int, steps: int) -> None:
        sigma = noise_sigma(n_train, self.params["weight_decay"], self.params["eps"], iterations=max(steps, 1))
        if not math.isfinite(sigma):
            raise ValueError("Descent-to-Delete needs --weight-decay > 0 (it is the strong-convexity constant)")
        self.sigma, self.iterations = sigma, max(steps, 1)
        for parameter in self.trainable_parameters():
            noise = torch.randn(parameter.shape, generator=self.generator, dtype=parameter.dtype)
            parameter.add_(noise.to(parameter.device) * sigma)

    def record(self) -> dict:
        return {"noise_sigma": self.sigma, "noise_iterations": self.iterations} if hasattr(self, "sigma") else {}
