"""Errors the engine raises on purpose; the CLI turns them into one line and an exit code."""
from __future__ import annotations


class SpecError(ValueError):
    """Bad input (a name, a file, a hyperparameter): exit 2, nothing queued or written.

    `field` names the spec entry at fault (`model`, `data`, `deletion`, `requests`, a parameter such as
    `alpha`) so a form can put the message beside it; None when no single field is to blame."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class RunFailed(RuntimeError):
    """A run that started and failed mid-way (NaN loss, out of memory): exit 1, session kept."""


class Cancelled(RuntimeError):
    """The run was asked to stop between steps."""
