"""New run: model, data, method with its hyperparameters (fields generated from engine.spec),
protocol, device, seed and the deletion set. ``engine.spec.validate`` checks the whole spec before
anything is sent; its one-line message is shown under the field it names, and nothing is submitted
while the form is invalid. Submit goes to the engine, then the monitor follows the run live."""
from __future__ import annotations

import re

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Footer, Input, Select, Static

from engine import spec as specs
from engine.errors import SpecError
from screens.deletion import DeletionForm, field

PROTOCOLS = (("single request", "single"), ("k sequential requests (PULSE, LLaVA)", "sequential"))
PULSE = hasattr(specs, "validate_pulse")
# the tiny model that learns the built-in world best (blip-tiny's text [CLS] learns it poorly; README)
DEFAULT_MODEL = "clip-tiny" if "clip-tiny" in specs.MODELS else next(iter(specs.MODELS))

# the start of a SpecError message -> the field it is about (when it names no --option)
_PREFIXES = (
    ("unknown model", "model"), ("model directory", "model"), ("a run needs --model", "model"),
    ("unknown data format", "data"), ("unknown data", "data"), ("data path", "data"),
    ("a run needs --data", "data"), ("deletion ID file", "del-file"), ("choose a deletion set", "del-strategy"),
    ("unknown method", "method"), ("--delete-query", "del-query"), ("--delete", "del-n"),
    ("pulse runs one of", "method"), ("pulse needs --model", "model"), ("pulse needs --data", "data"),
    ("unknown people data", "data"), ("MLLMU-Bench path", "data"), ("cannot forget", "del-n"),
    ("--forget", "del-n"), ("--requests", "requests"), ("--knowledge", "knowledge"),
)


def error_field(message: str, params: set[str]) -> str | None:
    """Which form field a validation message is about (None: the whole form)."""
    text = message.split(": ", 1)[1] if re.match(r"^[\w-]+: --", message) else message
    for prefix, target in _PREFIXES:
        if text.startswith(prefix):
            return target
    found = re.search(r"--([a-z][a-z-]*)", text)
    if found:
        name = found.group(1).replace("-", "_")
        if name in params:
            return f"p-{name}"
        if name in ("seed", "device", "requests", "knowledge"):
            return name
        if name == "delete":
            return "del-n"
    return None


class NewRunScreen(Screen):
    BINDINGS = [
        Binding("ctrl+s", "submit", "Submit", id="new_run.submit"),
        Binding("escape", "back", "Back", id="new_run.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.method = "multidelete"
        self.errors: dict[str, str] = {}
        self._params_key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static("[b]New run[/b]  ctrl+s submits, escape goes back; hyperparameters left empty use "
                     "their defaults", id="nr-title")
        with VerticalScroll(id="nr-form"):
            with Horizontal(classes="row"):
                yield field("model (registered name, hub id or local dir)",
                            Input(DEFAULT_MODEL, id="model", compact=True,
                                  suggester=SuggestFromList(list(specs.MODELS), case_sensitive=False)),
                            "err-model")
                yield field("data (built-in world or FORMAT:PATH)",
                            Input("shapes-tiny" if "shapes-tiny" in specs.WORLDS else next(iter(specs.WORLDS)),
                                  id="data", compact=True,
                                  suggester=SuggestFromList([*specs.WORLDS, *(f + ":" for f in specs.DATA_FORMATS)])),
                            "err-data")
            with Horizontal(classes="row"):
                yield field("method", Select([(f"{m.title} ({m.name})", m.name) for m in specs.METHODS.values()],
                                             value=self.method, allow_blank=False, id="method", compact=True), "err-method")
                yield field("device", Select([(d, d) for d in specs.DEVICES], value="auto", allow_blank=False,
                                             id="device", compact=True), "err-device")
                yield field("seed", Input(str(specs.DEFAULT_SEED), id="seed", compact=True), "err-seed")
            with Horizontal(classes="row"):
                yield field("protocol", Select(PROTOCOLS, value="single", allow_blank=False, id="protocol", compact=True),
                            "err-protocol")
                yield field("requests k", Input("2", id="requests", compact=True), "err-requests")
                yield field("knowledge", Select([(k, k) for k in getattr(specs, "KNOWLEDGE_SOURCES", ("pretrained",))],
                                                value=getattr(specs, "KNOWLEDGE_SOURCES", ("pretrained",))[0],
                                                allow_blank=False, id="knowledge", compact=True), "err-knowledge")
                yield field("name (optional)", Input(placeholder="my run", id="name", compact=True), "err-name")
            yield Static(id="method-summary")
            yield Vertical(id="params")
            yield DeletionForm(id="deletion")
            yield Static("", id="form-error", classes="field-error")
            with Horizontal(id="nr-buttons"):
                yield Button("Submit (ctrl+s)", variant="primary", id="submit")
                yield Button("Back", id="back")
        yield Footer()

    async def on_mount(self) -> None:
        await self.build_params()
        self.sync_deletion()

    # generated hyperparameter fields -------------------------------------------------------------

    def sequential(self) -> bool:
        return self.query_one("#protocol", Select).value == "sequential"

    def all_params(self) -> tuple[specs.Param, ...]:
        extra = getattr(specs, "LMM_PARAMS", ()) if self.sequential() else ()
        return specs.COMMON_PARAMS + specs.METHODS[self.method].params + tuple(extra)

    async def build_params(self) -> None:
        key = (self.method, self.sequential())
        if key == self._params_key:
            return
        self._params_key = key
        box = self.query_one("#params", Vertical)
        await box.remove_children()
        info = specs.METHODS[self.method]
        self.query_one("#method-summary", Static).update(f"{info.title}: {info.summary}")
        fields = []
        for param in self.all_params():
            label = f"{param.name} - {param.help}"
            if param.choices:
                widget = Select([(str(c), c) for c in param.choices], value=param.default, allow_blank=False,
                                id=f"p-{param.name}", classes="param", compact=True)
            else:
                placeholder = "default" if param.default is None else f"default {param.default}"
                widget = Input("" if param.default is None else str(param.default), placeholder=placeholder,
                               id=f"p-{param.name}", classes="param", compact=True)
            fields.append(field(label, widget, f"err-p-{param.name}", param.help))
        await box.mount_all(fields)
        self.errors = {k: v for k, v in self.errors.items() if not k.startswith("p-")}

    @on(Select.Changed, "#method")
    async def _method_changed(self, event: Select.Changed) -> None:
        if event.value != self.method and event.value in specs.METHODS:
            self.method = str(event.value)
            await self.build_params()

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

    @on(Input.Changed, "#data, #seed, #requests")
    def _deletion_context(self) -> None:
        self.sync_deletion()

    @on(Select.Changed, "#protocol")
    async def _protocol_changed(self) -> None:
        await self.build_params()
        self.sync_deletion()

    def sync_deletion(self) -> None:
        form = self.query_one("#deletion", DeletionForm)
        form.data = self.query_one("#data", Input).value.strip()
        form.seed = _int_or_text(self.query_one("#seed", Input).value)
        requests = _int_or_text(self.query_one("#requests", Input).value)
        sequential = self.query_one("#protocol", Select).value == "sequential"
        form.requests = requests if sequential and isinstance(requests, int) and requests > 0 else 1
        self.query_one("#requests").parent.display = sequential
        self.query_one("#knowledge").parent.display = sequential
        form.schedule_preview()

    # errors --------------------------------------------------------------------------------------

    def show_error(self, target: str, message: str) -> None:
        try:
            label = self.query_one(f"#err-{target}", Static)
            widget = self.query_one(f"#{target}")
        except Exception:
            label, widget = self.query_one("#form-error", Static), None
        label.update(message)
        label.display = bool(message)
        if widget is not None:
            widget.set_class(bool(message), "-invalid")
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

    def show_spec_error(self, message: str) -> None:
        target = error_field(message, {p.name for p in self.all_params()})
        self.show_error(target or "form-error", message)
        if target:
            try:
                self.query_one(f"#{target}").focus()
            except Exception:
                pass

    # building and submitting the spec ------------------------------------------------------------

    def raw_spec(self) -> dict:
        params: dict = {}
        for param in self.all_params():
            widget = self.query_one(f"#p-{param.name}")
            if isinstance(widget, Select):
                params[param.name] = widget.value
            else:
                text = widget.value.strip()
                if text:
                    params[param.name] = text   # validate() coerces and names what is wrong
        seed = _int_or_text(self.query_one("#seed", Input).value)
        deletion = self.query_one("#deletion", DeletionForm).deletion()
        deletion["seed"] = seed
        spec = {
            "method": self.method,
            "model": self.query_one("#model", Input).value.strip(),
            "data": self.query_one("#data", Input).value.strip(),
            "device": self.query_one("#device", Select).value,
            "seed": seed,
            "deletion": deletion,
            "params": params,
            "name": self.query_one("#name", Input).value.strip() or None,
        }
        return spec

    def protocol(self) -> dict:
        if self.query_one("#protocol", Select).value != "sequential":
            return {"kind": "single"}
        k = _int_or_text(self.query_one("#requests", Input).value)
        if not isinstance(k, int) or k < 1:
            raise SpecError(f"--requests must be a whole number >= 1, got {k!r}")
        return {"kind": "sequential", "requests": k}

    def pulse_spec(self) -> dict:
        """k sequential requests: a PULSE spec (forget N people over k requests on a LLaVA model)."""
        raw = self.raw_spec()
        n = raw["deletion"].get("n")
        return {"kind": "pulse", "method": raw["method"], "model": raw["model"], "data": raw["data"],
                "requests": self.protocol()["requests"], "knowledge": self.query_one("#knowledge", Select).value,
                "forget": n, "device": raw["device"], "seed": raw["seed"], "params": raw["params"],
                "name": raw["name"]}

    def build_spec(self) -> dict | None:
        """The validated spec, or None after showing what is wrong (inline)."""
        self.clear_errors()
        try:
            if self.sequential() and PULSE:
                spec = specs.validate_pulse(self.pulse_spec())
            else:
                spec = specs.validate(self.raw_spec())
        except SpecError as exc:
            self.show_spec_error(str(exc))
            return None
        return spec

    def action_submit(self) -> None:
        spec = self.build_spec()
        if spec is not None:
            self.query_one("#submit", Button).disabled = True
            self.submit(spec)

    @work(exclusive=True, group="submit", exit_on_error=False)
    async def submit(self, spec: dict) -> None:
        from workbench.client import EngineError, SpecRejected

        try:
            reply = await self.app.submit_spec(spec)
        except SpecRejected as exc:
            self.show_spec_error(str(exc))
            return
        except EngineError as exc:
            self.show_error("form-error", f"engine: {exc}")
            return
        finally:
            self.query_one("#submit", Button).disabled = False
        session = reply["session"]
        self.notify(f"queued {session}")
        from screens.monitor import MonitorScreen

        self.app.switch_screen(MonitorScreen(self.app.live_source(session), replay=False,
                                             device=reply.get("device") or spec.get("device")))

    @on(Button.Pressed, "#submit")
    def _submit_pressed(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#back")
    def _back_pressed(self) -> None:
        self.action_back()

    def action_back(self) -> None:
        self.app.pop_screen()


def _int_or_text(text: str):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return text
