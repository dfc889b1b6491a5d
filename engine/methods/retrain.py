"""Retrain: the gold standard. Train from the starting weights on Dr only, with the original's recipe."""
from __future__ import annotations

from engine.methods.base import Method


class Retrain(Method):
    uses_retain = True
    starts_from = "init"

    def losses(self, forget, retain):
        loss = self.model.task_loss(retain)
        return {"total": loss, "task": loss}
