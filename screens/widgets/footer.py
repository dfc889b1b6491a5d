"""Textual's Footer, rebuilt only when the bindings it shows change, and without restyling each key twice.

Textual's footer rebuilds all its keys whenever the screen says its bindings may have changed: twice for every
focus move (textual 8.2), though a Tab from one Input to the next shows the same keys. Each rebuild mounts new
``FooterKey`` widgets and lays the screen out again. And each new key starts with ``compact = True`` (the
class default) before it is bound to the footer's ``compact`` (``False`` here), so its watcher toggles the
``-compact`` class on and off, and each toggle restyles the key: a third of an app's start (cProfile).

This footer keeps what its keys were built from (every active binding, whether it is enabled, its tooltip and
key display, and the command palette's) and rebuilds only when that changed; and it gives each bound key the
footer's ``compact``, and the class that goes with it, before the key is mounted.

And it draws Help, Back and Quit first: Textual orders keys from the focused widget out to the app, so the
app's own keys came last and, with each screen's Back, were the first cut on an 80-column terminal, where an
operator over SSH needs them most (Help lists every key the footer has no room for).
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer as TextualFooter
from textual.widgets._footer import FooterKey


FIRST_ACTIONS = ("help", "back", "quit")   # drawn before the screen's other keys


class Footer(TextualFooter):
    _built_from: tuple | None = None

    def shown_bindings(self) -> tuple:
        """Everything the keys are built from (compose reads no more)."""
        app = self.app
        return (self.show_command_palette, app.ENABLE_COMMAND_PALETTE,
                *((key, active.binding, active.enabled, active.tooltip, app.get_key_display(active.binding))
                  for key, active in self.screen.active_bindings.items()))

    def bindings_changed(self, screen: Screen) -> None:
        if self._bindings_ready and self.is_attached and screen is self.screen \
                and self.shown_bindings() == self._built_from:
            return
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        if self._bindings_ready:
            self._built_from = self.shown_bindings()
        first, rest = [], []
        for widget in super().compose():
            if isinstance(widget, FooterKey) and not widget.has_class("-command-palette"):  # the bound keys
                widget.set_reactive(FooterKey.compact, self.compact)
                widget.set_class(self.compact, "-compact", update=False)
            (first if isinstance(widget, FooterKey) and widget.action in FIRST_ACTIONS else rest).append(widget)
        yield from sorted(first, key=lambda key: FIRST_ACTIONS.index(key.action))
        yield from rest
