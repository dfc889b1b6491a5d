"""Help: every binding of the screen underneath and of the app, with its id (ctrl+p finds the same
actions in the command palette)."""
from __future__ import annotations

from typing import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static


def binding_rows(bindings: Iterable, app=None, screen=None) -> list[tuple[str, str, str]]:
    """(key, description, id) for each Binding (tuples are skipped): the keys as the footer writes them
    (``+ / =``, not ``plus,equals_sign``) when `app` is given, and none that `screen` refuses now (its
    ``check_action``: ctrl+k cancels a live run, not a replay)."""
    rows = []
    for b in bindings:
        if not isinstance(b, Binding) or (screen is not None and screen.check_action(b.action, ()) is False):
            continue
        keys = b.key if app is None else " / ".join(app.get_key_display(Binding(key.strip(), b.action))
                                                   for key in b.key.split(","))
        rows.append((keys, b.description, b.id or ""))
    return rows


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > Vertical {
        width: 90;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen DataTable {
        height: auto;
        max-height: 20;
    }
    """

    BINDINGS = [Binding("escape,q,f1", "close", "Close", id="help.close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        with Vertical():
            name = type(self.under).__name__.replace("Screen", "") or "screen"
            yield Static(f"[b]Keys[/b]: {name} and everywhere.  ctrl+p opens the command palette "
                         "(every action below is there).  escape closes.", id="help-title")
            table: DataTable = DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("key", "action", "id", "where")
            yield table

    def on_mount(self) -> None:
        table = self.query_one("#help-table", DataTable)
        where = type(self.under).__name__
        for key, description, ident in binding_rows(type(self.under).BINDINGS, self.app, self.under):
            table.add_row(key, description, ident, where)
        for key, description, ident in binding_rows(type(self.app).BINDINGS, self.app):
            table.add_row(key, description, ident, "app")
        table.add_row("ctrl+p", "Command palette", "textual.palette", "app")
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
