"""The deletion-set section of a new run: strategy (random N units by seed, ID file, caption query)
and a preview of what it selects (count and sample captions) for the built-in worlds.

The preview comes from the services (``preview``: the engine's own selection on the built-in world,
built once per process), in a thread worker, so what the preview shows is what the run deletes.
"""
from __future__ import annotations

from typing import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Select, Static

from engine.errors import SpecError
from engine.spec import GRANULARITY
from screens.messages import PreviewReady
from screens.services import DeletionPreview

DEFAULT_UNITS = "16"   # N's default: units of image-text data (on people data the New-run form leaves it blank)
from screens.widgets.form import field

STRATEGIES = (("random N units (by seed)", "random"), ("ID list file", "ids"), ("caption query", "query"))
GRANULARITIES = tuple((choice, choice) for choice in GRANULARITY.choices)  # the catalogue's --granularity
PREVIEW_DEBOUNCE = 0.4

Preview = Callable[[str, dict], "DeletionPreview | None"]


# the command line's names for the section's fields, as a check's message gives them, and the labels the form shows
FORM_WORDS = (("--delete N", "N units"), ("--delete-ids FILE", "ID file"), ("--delete-query TEXT", "query"),
              ("--granularity", "granularity"))
FIX_ABOVE = "preview: nothing selected until the deletion set above is fixed"


def in_form_words(message: str) -> str:
    """A deletion-set check's message with the form's labels for its flags (`--delete N` reads `N units`)."""
    for flag, label in FORM_WORDS:
        message = message.replace(flag, label)
    return message


def preview_text(preview: Preview, data: str, deletion: dict, requests: int = 1) -> str:
    """One or two lines: how many units the deletion set selects and a few of their captions."""
    return preview_outcome(preview, data, deletion, requests)[0]


def preview_outcome(preview: Preview, data: str, deletion: dict, requests: int = 1) -> tuple[str, bool]:
    """The preview's text, and whether the deletion set's check refused it."""
    try:
        return preview_selection(preview, data, deletion, requests), False
    except SpecError as exc:
        return f"[b]preview:[/b] {in_form_words(str(exc))}", True


def preview_selection(preview: Preview, data: str, deletion: dict, requests: int) -> str:
    """What the set selects (SpecError when its check refuses it)."""
    try:
        shown = preview(data, deletion)
    except SpecError:  # a ValueError too: the caller says it as the check's refusal
        raise
    except (KeyError, TypeError, ValueError) as exc:
        return f"preview: {exc}"
    if shown is None:
        return "preview: built-in worlds only (the engine checks real data when the run starts)"
    samples = "; ".join(repr(caption) for caption in shown.samples)
    kind = getattr(shown, "kind", "units")
    what = "facts selected (each with the texts stating it)" if kind == "facts" else \
        "training units selected (each with all its captions)"
    text = f"{shown.selected} of {shown.total} {what}; e.g. {samples}"
    if requests > 1:
        text += f"\nsplit into {requests} sequential requests of ~{shown.selected / requests:.0f} {kind}"
    return text


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

    def __init__(self, preview: Preview, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.preview = preview
        self.data = "shapes-tiny"
        self.seed: object = 42
        self.requests = 1
        # on people data N counts people (or facts), and the form that owns this section says what the run forgets
        self.describe_people: Callable[[], str] | None = None
        self.border_title = "deletion set"
        self._timer = None

    def compose(self) -> ComposeResult:
        yield field("strategy", Select(STRATEGIES, value="random", allow_blank=False, id="del-strategy", compact=True),
                    "err-del-strategy", "strategy: how the deletion set is chosen")
        yield field("granularity", Select(GRANULARITIES, value=GRANULARITY.default, allow_blank=False,
                                          id="del-granularity", compact=True), "err-del-granularity",
                    f"granularity: {GRANULARITY.help}")
        yield field("N units", Input(DEFAULT_UNITS, id="del-n", compact=True), "err-del-n",
                    "N units: how many units random picks (optional cap for an ID file or a query)")
        yield field("ID file", Input(placeholder="e.g. /path/to/ids.txt", id="del-file", compact=True), "err-del-file",
                    "ID file: one unit id per line")
        yield field("query", Input(placeholder="e.g. red circle", id="del-query", compact=True), "err-del-query",
                    "query: the words every matching caption contains")
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
        granularity = self.query_one("#del-granularity", Select).value
        if granularity != GRANULARITY.default:  # a unit deletion's spec stays as it was
            out["granularity"] = granularity
        return out

    def error_target(self) -> str:
        """The field a deletion-set SpecError belongs under: N when it is not a positive whole number,
        else what the strategy reads (the ID file, the query, N)."""
        n = self.deletion()["n"]
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
            return "del-n"
        return {"ids": "del-file", "query": "del-query"}.get(self.query_one("#del-strategy", Select).value, "del-n")

    def _show_fields(self) -> None:
        strategy = self.query_one("#del-strategy", Select).value
        self.query_one("#del-file").parent.display = strategy == "ids"
        self.query_one("#del-query").parent.display = strategy == "query"

    @on(Select.Changed, "#del-granularity")
    def _granularity_changed(self) -> None:
        self.schedule_preview()

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
        if self.describe_people is not None:  # the spec's own check, on this thread: no data to read
            self.query_one("#del-preview", Static).update(self.describe_people())
            return
        self.query_one("#del-preview", Static).update("preview: computing...")
        self.compute_preview(self.data, self.deletion(), self.requests)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def compute_preview(self, data: str, deletion: dict, requests: int) -> None:
        self.post_message(PreviewReady(*preview_outcome(self.preview, data, deletion, requests)))

    def on_preview_ready(self, message: PreviewReady) -> None:
        message.stop()
        labels = self.query(f"#err-{self.error_target()}")
        shown_under_a_field = bool(labels) and labels.first().display
        # a refusal a submit already put under its field is not said twice (the field this refusal is about: another
        # field's stale error, left after a change of strategy, is not this one)
        self.query_one("#del-preview", Static).update(FIX_ABOVE if message.refused and shown_under_a_field
                                                      else message.text)
