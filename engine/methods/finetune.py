"""FT: keep training the original on Dr (1 epoch by default), hoping Df fades (catastrophic forgetting)."""
from __future__ import annotations

from engine.methods.base import Method


class FineTune(Method):
    uses_retain = True

    def losses(self, forget, retain):
        loss = self.model.task_loss(retain)
        return {"total": loss, "task": loss}
