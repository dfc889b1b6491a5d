"""New study: methods, seeds, model, data, task, deletion set, requests, device, tolerance, attacks and method flags,
as `mmul-workbench study` takes them. Submit sends the study to the engine through the services (as
`mmul-workbench study ... --engine` does: the engine runs it as a job) and, once the engine has accepted it,
switches to its grid. The form checks what it can at once (method
names, seeds, the flags' shell quoting); the rest the study command checks, and its one-line error is
shown here. Errors, the help line, the deletion set's context and the buttons come from ``screens.form_base``."""
from __future__ import annotations

import shlex

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Input, Select, Static

from engine import spec as specs
from engine.errors import SpecError
from screens.deletion import DeletionForm
from screens.form_base import FormScreen, int_or_text
from screens.new_run import DATA_TASK, DEFAULT_MODEL
from screens.services import ServiceError, Services, StudyLaunch
from screens.widgets.form import field
from screens.widgets.footer import Footer

DEFAULT_METHODS = "retrain,ft,multidelete"
DEFAULT_SEEDS = specs.PAPER_SEEDS  # the MultiDelete paper's three seeds, as `study` defaults
WAIT_SECONDS = 0.25         # how often the form looks for the started study's id


class FormError(ValueError):
    """A field of the study form that is wrong: ``field`` is the widget id, the message one line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def study_args(values: dict[str, str], deletion: dict) -> list[str]:
    """The `mmul-workbench study` arguments of the form's ``values`` (text of each field, by widget id)
    and its ``deletion`` (screens.deletion.DeletionForm.deletion); FormError naming the field."""
    # read as `study` reads them (engine.spec.lists): `42,,87` passed here and was refused there
    for name, parse in (("methods", specs.parse_methods), ("seeds", specs.parse_seeds)):
        try:
            parse(values[name])
        except SpecError as exc:
            raise FormError(name, str(exc)) from None
    methods = [m.strip() for m in values["methods"].split(",")]
    seeds = [s.strip() for s in values["seeds"].split(",")]
    args = ["--methods", ",".join(methods), "--seeds", ",".join(seeds),
            "--model", values["model"].strip(), "--data", values["data"].strip(), "--device", values["device"]]
    if values.get("task", DATA_TASK) != DATA_TASK:
        args += ["--task", values["task"]]
    n = deletion.get("n")
    if n is not None:
        args += ["--delete", str(n)]
    if deletion.get("strategy") == "ids":
        args += ["--delete-ids", deletion.get("file") or ""]
    elif deletion.get("strategy") == "query":
        args += ["--delete-query", deletion.get("query") or ""]
    if deletion.get("granularity"):
        args += ["--granularity", deletion["granularity"]]
    for name, flag in (("requests", "--requests"), ("tolerance", "--tolerance")):
        if values.get(name, "").strip():
            args += [flag, values[name].strip()]
    attacks = [a.strip() for a in values.get("attacks", "").split(",") if a.strip()]
    if attacks:
        if unknown := [a for a in attacks if a not in specs.ATTACK_KINDS]:
            raise FormError("attacks", f"unknown attack {unknown[0]!r}; choose from {', '.join(specs.ATTACK_KINDS)}")
        args += ["--attacks", ",".join(dict.fromkeys(attacks))]
    try:
        extra = shlex.split(values.get("flags", ""))
    except ValueError as exc:
        raise FormError("flags", f"method flags: {exc} (write them as on the command line: --epochs 1 --lr 1e-4)")
    if any(word in ("--json", "--engine") for word in extra):
        raise FormError("flags", "method flags: leave out --json and --engine (the form sets them)")
    return args + extra


class StudyFormScreen(FormScreen):
    AUTO_FOCUS = "#methods"
    BINDINGS = [
        Binding("ctrl+s", "submit", "Start study", id="study_form.submit"),
        Binding("escape", "back", "Back", id="study_form.back"),
    ]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.launch: StudyLaunch | None = None
        self._timer = None

    def compose(self) -> ComposeResult:
        yield Static("[b]New study[/b]  methods x seeds on one protocol, each run a session; ctrl+s starts it "
                     "in the background, escape goes back", id="form-title")
        with VerticalScroll(id="form"):
            with Horizontal(classes="row"):
                yield field("methods", Input(DEFAULT_METHODS, id="methods", compact=True), "err-methods",
                            "methods: comma-separated method names; retrain gives the gaps to Retrain")
                yield field("seeds", Input(DEFAULT_SEEDS, id="seeds", compact=True), "err-seeds",
                            "seeds: comma-separated whole numbers; every method runs once per seed")
            with Horizontal(classes="row"):
                yield field("method flags", Input("", placeholder="e.g. --epochs 1 --lr 1e-4", id="flags",
                                                  compact=True),
                            "err-flags", "method flags: as on the command line, e.g. --epochs 1 --lr 1e-4")
                yield field("attacks", Input("", placeholder="none; e.g. quantize,rephrase", id="attacks",
                                             compact=True), "err-attacks",
                            "attacks: run on every finished cell once the study ends (its grid gains their recovery)")
            with Horizontal(classes="row"):
                yield field("model", Input(DEFAULT_MODEL, id="model", compact=True,
                                           suggester=SuggestFromList(list(specs.MODELS), case_sensitive=False)),
                            "err-model", "model: a registered name, a hub id or a local directory")
                yield field("data", Input("shapes-tiny" if "shapes-tiny" in specs.WORLDS else next(iter(specs.WORLDS)),
                                          id="data", compact=True, suggester=SuggestFromList(list(specs.WORLDS))),
                            "err-data", "data: a built-in world or FORMAT:PATH")
                yield field("task", Select([("the data's own", DATA_TASK)] + [(t, t) for t in specs.RUN_TASKS],
                                           value=DATA_TASK, allow_blank=False, id="task", compact=True), "err-task",
                            "task: which of the data's tasks the study unlearns and measures")
            with Horizontal(classes="row"):
                yield field("requests k", Input("", placeholder="1", id="requests", compact=True), "err-requests",
                            "requests k: split the deletion set into k sequential requests (empty: 1)")
                yield field("device", Select([(d, d) for d in specs.DEVICES], value="auto", allow_blank=False,
                                             id="device", compact=True), "err-device",
                            "device: where the cells train (auto: a GPU when there is one)")
                yield field("tolerance", Input("", placeholder="default 5", id="tolerance", compact=True),
                            "err-tolerance", "tolerance (points): the test gap to Retrain within which methods are ranked "
                            "by their Df/Dr AUC gap to Retrain")
            yield DeletionForm(self.services.preview_deletion, id="deletion")
            yield from self.form_end("Start study (ctrl+s)")
        yield self.help_line()
        yield Footer()

    def on_mount(self) -> None:
        self.sync_deletion()

    @on(Input.Changed, "#data, #seeds")
    def sync_deletion(self) -> None:
        first = self.query_one("#seeds", Input).value.split(",")[0].strip()
        self.sync_deletion_form(self.query_one("#data", Input).value.strip(), int_or_text(first))

    def values(self) -> dict[str, str]:
        out = {name: self.query_one(f"#{name}", Input).value
               for name in ("methods", "seeds", "model", "data", "requests", "tolerance", "flags", "attacks")}
        out.update(task=str(self.query_one("#task", Select).value), device=str(self.query_one("#device", Select).value))
        return out

    def action_submit(self) -> None:
        if self.launch is not None:
            return
        self.clear_errors()
        try:
            args = study_args(self.values(), self.query_one("#deletion", DeletionForm).deletion())
        except FormError as exc:
            self.show_error(exc.field, str(exc))
            return
        try:
            self.launch = self.services.launch_study(args)
        except ServiceError as exc:
            self.show_error("form-error", str(exc))
            return
        self.show_error("form-error", "starting the study...")
        self.set_busy(True)
        self._timer = self.set_interval(WAIT_SECONDS, self.wait_for_study)

    def wait_for_study(self) -> None:
        """Until the study says its id (then its grid) or ends without one (then its error, here)."""
        launch = self.launch
        if launch is None:
            return
        study_id = launch.study_id()
        error = launch.error() if study_id is None else None
        if study_id is None and error is None and launch.poll() is None:
            return
        self._timer.stop()
        if study_id is None:
            self.launch = None
            self.set_busy(False)
            self.clear_errors()
            self.show_error("form-error", f"study: {error or 'it ended without saying its id'}")
            return
        watch = getattr(self.app, "watch_study", None)
        if watch is not None:
            watch(study_id, launch)
        from screens.study_grid import StudyGridScreen

        self.app.switch_screen(StudyGridScreen(study_id, self.services))
