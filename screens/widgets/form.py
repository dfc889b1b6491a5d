"""A form field: its short label, the input widget and the line under it where its error is shown.

The label is a word or two, so it is never cut mid-word in a narrow column; ``help_text`` is the full
description, shown on the form's help line while the field has focus (screens.form_base) and as its tooltip.
"""
from __future__ import annotations

from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Label, Static


class Field(Vertical):
    """One labelled input; ``help_text`` is what the form's help line says while it has focus."""

    def __init__(self, label: str, widget: Widget, error_id: str, help_text: str = "") -> None:
        super().__init__(Label(label, classes="field-label"), widget,
                         Static("", id=error_id, classes="field-error"), classes="field")
        self.help_text = help_text or label
        if help_text:
            self.tooltip = help_text


def field(label: str, widget: Widget, error_id: str, help_text: str = "") -> Field:
    return Field(label, widget, error_id, help_text)
