"""The deletion-set section of a new run: strategy (random N by seed, ID file, caption query) and a
preview of what it selects (count and sample captions) for the built-in worlds.

The preview builds the world with the torch-free builder (numpy + PIL, ~0.3-0.5 s) in a thread
worker, once per world, and runs the engine's own ``select_units`` on it, so what the preview
shows is what the run deletes. Nothing here imports torch.
"""
from __future__ import annotations

import threading

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

STRATEGIES = (("random N units (by seed)", "random"), ("ID list file", "ids"), ("caption query", "query"))
PREVIEW_DEBOUNCE = 0.4

_worlds: dict[str, object] = {}
_worlds_lock = threading.Lock()


def cached_world(name: str):
    from engine.data.registry import load_world

    with _worlds_lock:
        world = _worlds.get(name)
        if world is None:
            world = _worlds[name] = load_world(name)
        return world


def preview_text(data: str, deletion: dict, requests: int = 1) -> str:
    """One or two lines: how many units the deletion set selects and a few of their captions."""
    from engine.errors import SpecError
    from engine.spec import WORLDS

    if data not in WORLDS:
        return "preview: built-in worlds only (the engine checks real data when the run starts)"
    try:
        world = cached_world(data)
        from engine.data.deletion import select_units

        chosen = select_units(world.train, deletion)
    except SpecError as exc:
        return f"[b]preview:[/b] {exc}"
    except (KeyError, TypeError, ValueError) as exc:
        return f"preview: {exc}"
    total = len(world.train)
    samples = "; ".join(repr(world.train[i].captions[0]) for i in chosen[:3])
    text = f"{len(chosen)} of {total} training units selected (each with all its captions); e.g. {samples}"
    if requests > 1:
        per = len(chosen) / requests
        text += f"\nsplit into {requests} sequential requests of ~{per:.0f} units"
    return text


class PreviewReady(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


def field(label: str, widget, error_id: str, help_text: str = "") -> Vertical:
    box = Vertical(Label(label, classes="field-label"), widget,
                   Static("", id=error_id, classes="field-error"), classes="field")
    if help_text:
        box.tooltip = help_text
    return box


class DeletionForm(Vertical):
    """Strategy, N, ID file, query, and the preview. The parent sets ``data`` and ``seed``."""

    DEFAULT_CSS = """
    DeletionForm {
        height: auto;
        border: round $panel;
        padding: 0 1;
    }
    DeletionForm #del-preview {
        height: auto;
        color: $text-muted;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data = "shapes-tiny"
        self.seed: object = 42
        self.requests = 1
        self.border_title = "deletion set"
        self._timer = None

    def compose(self) -> ComposeResult:
        yield field("strategy", Select(STRATEGIES, value="random", allow_blank=False, id="del-strategy", compact=True),
                    "err-del-strategy")
        yield field("N units (random; optional cap for ids/query)", Input("16", id="del-n", compact=True), "err-del-n")
        yield field("ID file (one unit id per line)", Input(placeholder="/path/to/ids.txt", id="del-file", compact=True),
                    "err-del-file")
        yield field("query (words every matching caption contains)", Input(placeholder="red circle",
                                                                           id="del-query", compact=True), "err-del-query")
        yield Static("preview: ...", id="del-preview")

    def on_mount(self) -> None:
        self._show_fields()
        self.schedule_preview()

    def deletion(self) -> dict:
        strategy = self.query_one("#del-strategy", Select).value
        n_text = self.query_one("#del-n", Input).value.strip()
        out: dict = {"strategy": strategy, "seed": self.seed}
        if n_text:
            try:
                out["n"] = int(n_text)
            except ValueError:
                out["n"] = n_text  # validate() names it: "--delete N must be a positive whole number"
        else:
            out["n"] = None
        if strategy == "ids":
            out["file"] = self.query_one("#del-file", Input).value.strip()
        if strategy == "query":
            out["query"] = self.query_one("#del-query", Input).value.strip()
        return out

    def _show_fields(self) -> None:
        strategy = self.query_one("#del-strategy", Select).value
        self.query_one("#del-file").parent.display = strategy == "ids"
        self.query_one("#del-query").parent.display = strategy == "query"

    @on(Select.Changed, "#del-strategy")
    def _strategy_changed(self) -> None:
        self._show_fields()
        self.schedule_preview()

    @on(Input.Changed)
    def _input_changed(self) -> None:
        self.schedule_preview()

    def schedule_preview(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(PREVIEW_DEBOUNCE, self._start_preview)

    def _start_preview(self) -> None:
        self.query_one("#del-preview", Static).update("preview: computing...")
        self.compute_preview(self.data, self.deletion(), self.requests)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def compute_preview(self, data: str, deletion: dict, requests: int) -> None:
        try:
            from engine.spec import check_deletion

            deletion = check_deletion(deletion)
        except Exception as exc:
            self.post_message(PreviewReady(f"preview: {exc}"))
            return
        self.post_message(PreviewReady(preview_text(data, deletion, requests)))

    def on_preview_ready(self, message: PreviewReady) -> None:
        message.stop()
        self.query_one("#del-preview", Static).update(message.text)
