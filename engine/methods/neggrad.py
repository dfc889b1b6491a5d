"""NegGrad: gradient ascent on the task loss over Df. (The released code descends by mistake; we ascend.)"""
from __future__ import annotations

from engine.methods.base import Method


class NegGrad(Method):
    uses_forget = True

    def losses(self, forget, retain):
        task = self.model.task_loss(forget)
        return {"total": -task, "forget_task": task}
