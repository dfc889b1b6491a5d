"""New run: model, data, method with its hyperparameters (fields generated from the ``engine.spec``
Params), protocol, device, seed and the deletion set. The services validate the whole spec before
anything is sent; a SpecError's message is shown under the field its ``field`` names, and nothing is
submitted while the form is invalid. Submit goes to the engine, then the monitor follows the run live.
Errors, the help line, the deletion set's context and the buttons come from ``screens.form_base``."""
from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Input, Select, Static

from engine import spec as specs
from engine.errors import SpecError
from screens.deletion import DEFAULT_UNITS, FIX_ABOVE, DeletionForm, in_form_words
from screens.form_base import FormScreen, int_or_text, number_or_text
from screens.services import ServiceError, Services
from screens.widgets.footer import Footer
from screens.widgets.form import Field, field

PROTOCOLS = (("single request", "single"), ("k sequential requests", "sequential"))
# the tiny model that learns the built-in world best (blip-tiny's text [CLS] learns it poorly; README)
DEFAULT_MODEL = "clip-tiny" if "clip-tiny" in specs.MODELS else next(iter(specs.MODELS))
# SpecError.field -> the form's widget id, where they differ (a parameter `x` is `p-x`)
FIELD_WIDGETS = {"forget": "del-n", "granularity": "del-granularity"}
DATA_TASK = "-"  # the task Select's value for "the data's own task" (a Select value cannot be None)


def form_params() -> tuple[specs.Param, ...]:
    """Every parameter any method (or the LMM) takes, once each, in the order they first appear."""
    by_name: dict[str, specs.Param] = {}
    for param in (*specs.COMMON_PARAMS, *(p for m in specs.METHODS.values() for p in m.params), *specs.LMM_PARAMS):
        by_name.setdefault(param.name, param)
    return tuple(by_name.values())


class NewRunScreen(FormScreen):
    SCOPED_CSS = False  # the -compact rule starts at the App
    DEFAULT_CSS = """
    NewRunScreen #method-summary {
        color: $text-muted;
        margin: 1 0 0 0;
    }
    NewRunScreen #params {
        height: auto;
        layout: grid;
        grid-size: 2;
        grid-gutter: 0 1;
        grid-rows: auto;
    }
    .-compact NewRunScreen #params {
        grid-size: 1;
    }
    """
    AUTO_FOCUS = "#model"
    BINDINGS = [
        Binding("ctrl+s", "submit", "Submit", id="new_run.submit"),
        Binding("escape", "back", "Back", id="new_run.back"),
    ]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.method = "multidelete"
        self._shown_for: tuple | None = None  # (method, people data) whose fields show_params last showed
        self._defaults_shown: dict = {}  # the default each hyperparameter field was last given
        self._fields: dict[str, Field] = {}  # the hyperparameter fields mounted so far, by name
        self._param_widgets: dict = {}       # and their inputs

    def compose(self) -> ComposeResult:
        yield Static("[b]New run[/b]  ctrl+s submits, escape goes back; hyperparameters left empty use "
                     "their defaults", id="form-title")
        with VerticalScroll(id="form"):
            with Horizontal(classes="row"):
                yield field("model", Input(DEFAULT_MODEL, id="model", compact=True,
                                           suggester=SuggestFromList(list(specs.MODELS), case_sensitive=False)),
                            "err-model", "model: a registered name, a hub id or a local directory")
                yield field("data", Input("shapes-tiny" if "shapes-tiny" in specs.WORLDS else next(iter(specs.WORLDS)),
                                          id="data", compact=True,
                                          suggester=SuggestFromList([*specs.WORLDS,
                                                                     *(f + ":" for f in specs.DATA_FORMATS)])),
                            "err-data", "data: a built-in world or FORMAT:PATH")
            with Horizontal(classes="row"):
                yield field("method", Select([(f"{m.title} ({m.name})", m.name) for m in specs.METHODS.values()],
                                             value=self.method, allow_blank=False, id="method", compact=True),
                            "err-method", "method: the unlearning method; its hyperparameters follow below")
                yield field("device", Select([(d, d) for d in specs.DEVICES], value="auto", allow_blank=False,
                                             id="device", compact=True), "err-device",
                            "device: where the run trains (auto: a GPU when there is one)")
                yield field("seed", Input(str(specs.DEFAULT_SEED), id="seed", compact=True), "err-seed",
                            "seed: fixes the deletion set, the data order and the initialisation")
            with Horizontal(classes="row"):
                yield field("protocol", Select(PROTOCOLS, value="single", allow_blank=False, id="protocol",
                                               compact=True), "err-protocol",
                            "protocol: one deletion request, or the deletion set split into k sequential requests")
                yield field("requests k", Input("2", id="requests", compact=True), "err-requests",
                            "requests k: how many sequential requests the deletion set is split into")
                yield field("resume every", Input(f"{specs.DEFAULT_RESUME_MINUTES:g}", placeholder="minutes", id="resume_every",
                                                     compact=True),
                            "err-resume_every", "resume every: minutes between resume points, from which a stopped "
                            "run goes on (R on the home); 0: after every request; off: none")
                yield field("task", Select([("the data's own", DATA_TASK)] + [(t, t) for t in specs.RUN_TASKS],
                                           value=DATA_TASK, allow_blank=False, id="task", compact=True), "err-task",
                            "task: which of the data's tasks the run unlearns and measures")
                yield field("knowledge", Select([(k, k) for k in specs.KNOWLEDGE_SOURCES],
                                                value=specs.KNOWLEDGE_SOURCES[0],
                                                allow_blank=False, id="knowledge", compact=True), "err-knowledge",
                            "knowledge: where the people's knowledge comes from (people data, PULSE)")
                yield field("name", Input(placeholder="e.g. my run", id="name", compact=True), "err-name",
                            "name (optional): how the home, replay and reports name the session")
            # what to forget before how: the deletion set came after every hyperparameter, about 37 tabs down
            yield DeletionForm(self.services.preview_deletion, id="deletion")
            yield Static(id="method-summary")
            with Vertical(id="params"):  # the default method's fields and every choice; other inputs are mounted
                first = {param.name for param in specs.COMMON_PARAMS + specs.METHODS[self.method].params}
                # a Select mounted later could be mid-mount when the screen closed, and raised inside Textual's
                # Select (escape right after choosing NPO): all 13 are composed here, hidden until shown
                yield from (self.param_field(param) for param in form_params()
                            if param.name in first or param.choices or param.kind is bool)
            yield from self.form_end("Submit (ctrl+s)")
        yield self.help_line()
        yield Footer()

    def on_mount(self) -> None:
        self.show_params()
        self.sync_deletion()

    # generated hyperparameter fields -------------------------------------------------------------

    def sequential(self) -> bool:
        return self.query_one("#protocol", Select).value == "sequential"

    def people_data(self) -> bool:
        """People data (four-option QA on an LMM): runs as a PULSE spec, with the LMM's parameters."""
        data = self.query_one("#data", Input).value.strip()
        return data in specs.PEOPLE_WORLDS or data.partition(":")[0] == "mllmu"

    def all_params(self) -> tuple[specs.Param, ...]:
        if not self.people_data():
            return specs.COMMON_PARAMS + specs.METHODS[self.method].params
        common = tuple(p for p in specs.COMMON_PARAMS if p.name not in specs.NOT_ON_PEOPLE)  # as `pulse` offers
        return common + specs.METHODS[self.method].params + specs.LMM_PARAMS

    def param_field(self, param: specs.Param, default=None) -> Field:
        """The field of `param`, holding `default` (None: the parameter's own), remembered by name."""
        choices = param.choices or ((True, False) if param.kind is bool else ())
        if choices:
            widget = Select([(str(c), c) for c in choices], value=param.default, allow_blank=False,
                            id=f"p-{param.name}", classes="param", compact=True)
        else:
            default = param.default if default is None else default
            placeholder = "default" if default is None else f"default {default}"
            widget = Input("" if default is None else str(default), placeholder=placeholder,
                           id=f"p-{param.name}", classes="param", compact=True)
            self._defaults_shown[param.name] = default
        self._param_widgets[param.name] = widget
        self._fields[param.name] = field(param.name, widget, f"err-p-{param.name}", f"{param.name}: {param.help}")
        return self._fields[param.name]

    def mount_params(self, names: set[str]) -> None:
        """Mount the fields of `names` not mounted yet, in the form's order. Only the default method's inputs and
        every choice field are composed (all 46 made the form take 1.6 s to open); a field once mounted stays, shown or hidden, so a
        value typed stays when the method changes and no Select is removed (removing one whose mount was
        still settling raised inside Textual's Select)."""
        order = [param.name for param in form_params()]
        container = self.query_one("#params", Vertical)
        defaults = self.defaults()
        for param in form_params():
            if param.name in names and param.name not in self._fields:
                later = [self._fields[name] for name in order[order.index(param.name) + 1:] if name in self._fields]
                container.mount(self.param_field(param, defaults.get(param.name)), before=later[0] if later else None)

    def show_params(self) -> None:
        """Show the fields of the chosen method's parameters (and the LMM's on people data), hide the rest.
        Every field is composed once and only shown or hidden: a value typed stays when the method changes
        (a name has one default whatever the method), and no Select is mounted or removed while the form is
        in use (removing one whose mount was still settling raised inside Textual's Select). A keystroke in the
        data, seed or requests field that changes neither the method, people data nor a format with its own
        defaults (NLVR2 files) changes nothing here."""
        data = self.query_one("#data", Input).value.strip()
        with_own_defaults = data.partition(":")[0] if specs.format_default_params(data) else None
        shown_for = (self.method, self.people_data(), with_own_defaults)
        if shown_for == self._shown_for:
            return
        self._shown_for = shown_for
        self.show_defaults()
        info = specs.METHODS[self.method]
        self.query_one("#method-summary", Static).update(f"{info.title}: {info.summary}")
        shown = {param.name: param for param in self.all_params()}
        self.mount_params(set(shown))
        for name, param_field in self._fields.items():
            param_field.display = name in shown
            if name in shown:  # a name's help can say what it does in this method
                param_field.help_text = param_field.tooltip = f"{name}: {shown[name].help}"
            elif f"p-{name}" in self.errors:
                self.show_error(f"p-{name}", "")

    def show_defaults(self) -> None:
        """Each untouched field holds the default that applies to the run it builds: on people data the PULSE
        batch sizes (engine.spec.validate.PULSE_DEFAULT_PARAMS), not CLIP's 16 and 64, which were sent as given; on
        NLVR2 files the released Df batch (format_default_params)."""
        defaults = self.defaults()
        for name, widget in self._param_widgets.items():
            if not isinstance(widget, Input):
                continue
            default, shown = defaults[name], self._defaults_shown[name]
            if widget.value.strip() == ("" if shown is None else str(shown)):  # untouched: follow the data
                widget.value = "" if default is None else str(default)
            widget.placeholder = "default" if default is None else f"default {default}"
            self._defaults_shown[name] = default

    def defaults(self) -> dict:
        defaults = {param.name: param.default for param in form_params()}
        if self.people_data():
            defaults.update(specs.PULSE_DEFAULT_PARAMS)
        else:
            defaults.update(specs.format_default_params(self.query_one("#data", Input).value.strip()))
        return defaults

    @on(Select.Changed, "#method")
    def _method_changed(self, event: Select.Changed) -> None:
        if event.value != self.method and event.value in specs.METHODS:
            self.method = str(event.value)
            self.show_params()

    @on(Input.Changed, ".param")
    def _param_changed(self, event: Input.Changed) -> None:
        """Check one hyperparameter as it is typed (the full check runs on submit)."""
        name = (event.input.id or "")[2:]
        param = next((p for p in self.all_params() if p.name == name), None)
        if param is None:
            return
        text = event.value.strip()
        try:
            if text:
                param.coerce(text, self.method)
        except SpecError as exc:
            self.show_error(f"p-{name}", str(exc))
        else:
            self.show_error(f"p-{name}", "")

    @on(Input.Changed, "#data, #seed, #requests, #model")
    def _deletion_context(self) -> None:
        self.show_params()
        self.sync_deletion()

    @on(Select.Changed, "#protocol, #knowledge")
    def _protocol_changed(self) -> None:
        self.show_params()
        self.sync_deletion()

    def sync_deletion(self) -> None:
        data = self.query_one("#data", Input).value.strip()
        requests = int_or_text(self.query_one("#requests", Input).value)
        sequential = self.sequential()
        self.query_one("#requests").parent.display = sequential
        self.query_one("#resume_every").parent.display = sequential
        people = self.people_data()
        self.query_one("#knowledge").parent.display = people
        form = self.query_one("#deletion", DeletionForm)
        n = form.query_one("#del-n", Input)
        if people and form.describe_people is None and n.value.strip() == DEFAULT_UNITS:
            n.value = ""  # the units' default is more people than a world has; blank: half of them
        elif not people and form.describe_people is not None and not n.value.strip():
            n.value = DEFAULT_UNITS  # back to units: their default
        form.describe_people = self.people_preview if people else None
        info = specs.data_info(data)
        self.query_one("#task").parent.display = bool(info and info.also)  # only data serving several tasks
        self.sync_deletion_form(data, int_or_text(self.query_one("#seed", Input).value),
                                requests if sequential and isinstance(requests, int) and requests > 0 else 1)

    def people_preview(self) -> str:
        """What the PULSE run the form describes forgets, as its spec's check resolves it (N blank: the larger of
        K and half the set), or the check's refusal of N, K or the granularity."""
        try:
            normal = specs.validate_pulse(self.spec())
        except SpecError as exc:
            if exc.field in ("forget", "requests", "granularity"):
                return f"[b]preview:[/b] {exc}"
            return "preview: N people to forget (blank: half the set); the rest of the form is checked on submit"
        if normal["forget"] is None:  # a checkpoint's pretrained people: found by scoring when the run starts
            return f"forgets half of the people {normal['model']} answers, found when the run starts"
        what = "facts of the" if normal.get("granularity") == "fact" else ""
        pool = specs.people_pool(normal["data"], normal["knowledge"])
        words = ["forgets", str(normal["forget"]), what, normal["knowledge"], "people of", normal["data"],
                 f"(it has {pool})" if pool is not None else ""]
        text = " ".join(word for word in words if word)
        return text + (f", in {normal['requests']} requests" if normal["requests"] > 1 else "")

    # errors --------------------------------------------------------------------------------------

    def error_target(self, name: str | None) -> str | None:
        """The widget id a SpecError's ``field`` is shown under (None: the whole form)."""
        if name is None:
            return None
        if name == "deletion":
            return self.query_one("#deletion", DeletionForm).error_target()
        if any(p.name == name for p in self.all_params()):
            return f"p-{name}"
        target = FIELD_WIDGETS.get(name, name)
        return target if self.query(f"#err-{target}") else None

    def show_spec_error(self, error: SpecError) -> None:
        target = self.error_target(error.field)
        message = str(error)
        if target is not None and target.startswith("del-"):
            # said once, under its field in the form's words: the preview said the same sentence again below it
            message = in_form_words(message)
            self.query_one("#del-preview", Static).update(FIX_ABOVE)
        self.show_error(target or "form-error", message)
        if target:
            self.query_one(f"#{target}").focus()

    # building and submitting the spec ------------------------------------------------------------

    def raw_spec(self) -> dict:
        params: dict = {}
        for param in self.all_params():
            widget = self._param_widgets[param.name]
            if isinstance(widget, Select):
                params[param.name] = widget.value
            else:
                text = widget.value.strip()
                if text:
                    params[param.name] = text   # validate() coerces and names what is wrong
        seed = int_or_text(self.query_one("#seed", Input).value)
        deletion = self.query_one("#deletion", DeletionForm).deletion()
        deletion["seed"] = seed
        spec = {
            "method": self.method,
            "model": self.query_one("#model", Input).value.strip(),
            "data": self.query_one("#data", Input).value.strip(),
            "task": None if (task := self.query_one("#task", Select).value) == DATA_TASK else task,
            "device": self.query_one("#device", Select).value,
            "seed": seed,
            "deletion": deletion,
            "params": params,
            "name": self.query_one("#name", Input).value.strip() or None,
        }
        return spec

    def spec(self) -> dict:
        """The raw spec: a run spec, with k requests when sequential; on people data a PULSE spec
        (forget N people over k requests on an LMM)."""
        raw = self.raw_spec()
        requests = int_or_text(self.query_one("#requests", Input).value) if self.sequential() else 1
        every = self.query_one("#resume_every", Input).value.strip()
        # a K-request run started here had no way to write a point before 10 minutes had passed
        resuming = {"resume_every": number_or_text(every)} if self.sequential() and every and requests != 1 else {}
        if not self.people_data():
            return {**raw, "requests": requests, **resuming}
        return {"kind": "pulse", "method": raw["method"], "model": raw["model"], "data": raw["data"],
                "requests": requests, **resuming, "knowledge": self.query_one("#knowledge", Select).value,
                "forget": raw["deletion"].get("n"), "device": raw["device"], "seed": raw["seed"],
                "params": raw["params"], "name": raw["name"],
                **({"granularity": raw["deletion"]["granularity"]} if "granularity" in raw["deletion"] else {})}

    def build_spec(self) -> dict | None:
        """The validated spec, or None after showing what is wrong (inline)."""
        self.clear_errors()
        try:
            return self.services.validate(self.spec())
        except SpecError as exc:
            self.show_spec_error(exc)
            return None

    def action_submit(self) -> None:
        spec = self.build_spec()
        if spec is not None:
            self.set_busy(True)
            self.submit(spec)

    @work(exclusive=True, group="submit", exit_on_error=False)
    async def submit(self, spec: dict) -> None:
        try:
            reply = await self.services.submit(spec)
        except SpecError as exc:
            self.show_spec_error(exc)
            return
        except ServiceError as exc:
            self.show_error("form-error", f"engine: {exc}")
            return
        finally:
            self.set_busy(False)
        session = reply["session"]
        self.notify(f"queued {session}")
        from screens.monitor import MonitorScreen

        self.app.switch_screen(MonitorScreen(self.services.live_source(session), services=self.services,
                                             replay=False, device=reply.get("device") or spec.get("device")))
