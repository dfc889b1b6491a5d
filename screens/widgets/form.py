"""A form field: its label, the input widget and the line under it where its error is shown."""
from __future__ import annotations

from textual.containers import Vertical
from textual.widgets import Label, Static


def field(label: str, widget, error_id: str, help_text: str = "") -> Vertical:
    box = Vertical(Label(label, classes="field-label"), widget,
                   Static("", id=error_id, classes="field-error"), classes="field")
    if help_text:
        box.tooltip = help_text
    return box
