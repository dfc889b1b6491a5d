"""What the New-run and New-study forms share: errors under their fields, the deletion set's context, the
help line, the submit and back buttons, and the form's look.

A subclass composes its fields (``screens.widgets.form.field``: a short label, the widget, its error line and
its full help text) inside ``#form`` and ends with ``form_end``; it names its first field in ``AUTO_FOCUS``,
so keys typed the moment the form opens land there (Textual focuses it right after compose, before the
slower on_mount work), and implements ``action_submit``.

Errors: ``show_error(target, message)`` puts a one-line message under the field whose widget id is
``target`` (its widget marked ``-invalid``), or under the whole form (``form-error``) when no such field
exists; ``errors`` holds what is shown. Focus is drawn on the whole field (label and input), so it is seen
at a glance; the focused field's full description is on the help line at the bottom.
"""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual import events
from textual.events import DescendantFocus
from textual.screen import Screen
from textual.widgets import Button, Input, Select, Static

from screens.deletion import DeletionForm
from screens.widgets.confirm import ConfirmScreen
from screens.widgets.form import Field


EDITING_ACTIONS = {"end": "end", "home": "home", "left": "cursor_left", "right": "cursor_right",
                   "backspace": "delete_left", "delete": "delete_right"}  # Input's bindings of these keys


class FormScreen(Screen):
    """A form screen: fields in ``#form``, errors under them, a help line, submit and back."""

    SCOPED_CSS = False  # the -compact rules start at the App, above the screen
    DEFAULT_CSS = """
    FormScreen #form-title {
        height: auto;
        padding: 0 1;
        background: $boost;
    }
    FormScreen #form {
        padding: 0 1;
    }
    FormScreen #form .row {
        height: auto;
    }
    FormScreen .field {
        height: auto;
        width: 1fr;
        margin-right: 1;
    }
    FormScreen .field-label {
        color: $text-muted;
    }
    FormScreen .field:focus-within {
        background: $accent 20%;
    }
    FormScreen .field:focus-within .field-label {
        color: $text;
        text-style: bold;
    }
    FormScreen .field Input, FormScreen .field Select {
        margin-bottom: 0;
    }
    FormScreen .field Input:focus, FormScreen .field Select:focus > SelectCurrent {
        background: $accent 40%;
    }
    FormScreen Input > .input--placeholder {
        color: $text-muted;
        text-style: italic;
    }
    FormScreen .field-error {
        display: none;
        height: auto;
        color: $error;
    }
    FormScreen Input.-invalid, FormScreen Select.-invalid {
        background: $error 40%;
    }
    FormScreen #form-buttons {
        height: auto;
        margin: 1 0;
    }
    FormScreen #form-buttons Button {
        margin-right: 1;
    }
    FormScreen #form-error {
        margin-top: 1;
    }
    FormScreen #form-help {
        height: auto;
        max-height: 2;
        padding: 0 1;
        background: $boost;
        color: $text-muted;
    }
    .-compact FormScreen #form .row {
        layout: vertical;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, str] = {}
        self.edited = False            # the operator changed a field (back asks before it drops the form)
        self.watching_edits = False    # from the first refresh on: what mounting filled in is not an edit

    def on_mount(self) -> None:
        # focusing the first field scrolls it to the top, its label above the fold; show the form's start
        self.call_after_refresh(self.query_one("#form").scroll_home, animate=False)
        self.call_after_refresh(setattr, self, "watching_edits", True)

    def on_key(self, event: events.Key) -> None:
        """A key that reaches the screen itself while nothing has focus yet (typed the moment the form opened,
        on a busy machine before Textual focused ``AUTO_FOCUS``) goes to the first field instead of being lost:
        it is queued on that field behind the field's own Focus (so it lands as if focus had been there), and
        the keys after it go to the field directly, so their order holds."""
        if self.focused is not None or not self.AUTO_FOCUS or not (event.is_printable or event.key in EDITING_ACTIONS):
            return
        found = self.query(self.AUTO_FOCUS)
        if not found:
            return
        event.stop()
        first = found.first()
        self.set_focus(first)  # at once (Widget.focus defers it): its Focus is queued on it before the key
        if event.is_printable:
            first.post_message(events.Key(event.key, event.character))
        else:  # an Input binding: run it through the field's queue, after its Focus
            first.call_later(first.run_action, EDITING_ACTIONS[event.key])

    def form_end(self, submit_label: str) -> ComposeResult:
        """The form's last lines inside ``#form``: the whole-form error and the two buttons."""
        yield Static("", id="form-error", classes="field-error")
        with Horizontal(id="form-buttons"):
            yield Button(submit_label, variant="primary", id="submit")
            yield Button("Back", id="back")

    def help_line(self) -> Static:
        """The help line under the form (compose it after ``#form``, before the footer)."""
        return Static("", id="form-help", markup=False)

    @on(DescendantFocus)
    def _show_help(self, event: DescendantFocus) -> None:
        """The focused field's full description on the help line (blank off a field)."""
        owner = next((node for node in event.widget.ancestors_with_self if isinstance(node, Field)), None)
        self.query_one("#form-help", Static).update(owner.help_text if owner is not None else "")

    # errors --------------------------------------------------------------------------------------

    def show_error(self, target: str, message: str) -> None:
        """``message`` under the field whose widget id is ``target`` (else under the form); "" clears it."""
        labels = self.query(f"#err-{target}")
        label = labels.first(Static) if labels else self.query_one("#form-error", Static)
        widgets = self.query(f"#{target}") if labels else None
        label.update(message)
        label.display = bool(message)
        if widgets:
            widgets.first().set_class(bool(message), "-invalid")
        elif message:  # a whole-form error sits under the form, out of view on a small terminal: bring it in
            self.call_after_refresh(label.scroll_visible, animate=False)
            self.notify(message, severity="error", timeout=10)
        if message:
            self.errors[target] = message
        else:
            self.errors.pop(target, None)

    def clear_errors(self) -> None:
        for label in self.query(".field-error"):
            label.update("")
            label.display = False
        for widget in self.query(".-invalid"):
            widget.remove_class("-invalid")
        self.errors.clear()

    # the deletion set ----------------------------------------------------------------------------

    def sync_deletion_form(self, data: str, seed: object, requests: int = 1) -> None:
        """Give the deletion-set section what its preview depends on, and refresh the preview."""
        form = self.query_one("#deletion", DeletionForm)
        form.data = data
        form.seed = seed
        form.requests = requests
        form.schedule_preview()

    # submit and back -----------------------------------------------------------------------------

    def set_busy(self, busy: bool) -> None:
        """While a submit is under way its button is disabled (the fields keep taking keys)."""
        self.query_one("#submit", Button).disabled = busy

    def action_submit(self) -> None:
        raise NotImplementedError

    @on(Input.Changed)
    @on(Select.Changed)
    def _edited(self) -> None:
        self.edited = self.edited or self.watching_edits

    @on(Input.Changed)
    def _error_edited_away(self, event: Input.Changed) -> None:
        """A field's error goes as soon as its value is edited (it stayed until the next submit); the next submit
        says again what is still wrong."""
        if event.input.id and event.input.id in self.errors:
            self.show_error(event.input.id, "")

    @on(Button.Pressed, "#submit")
    def _submit_pressed(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#back")
    def _back_pressed(self) -> None:
        self.action_back()

    def action_back(self) -> None:
        """Back; a form the operator has filled in asks first (escape threw the settings away without a word)."""
        if not self.edited:
            self.app.pop_screen()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.pop_screen()

        self.app.push_screen(ConfirmScreen("Leave this form? What you filled in is not kept.", yes="Yes, leave"), answered)


def int_or_text(text: str):
    """A field's whole number, or its text as typed (the validation names what is wrong with it)."""
    return read_as(int, text)


def number_or_text(text: str):
    """A field's number (whole or not), or its text as typed ("off", or what the validation names as wrong)."""
    return read_as(float, text)


def read_as(kind, text: str):
    text = text.strip()
    try:
        return kind(text)
    except ValueError:
        return text
