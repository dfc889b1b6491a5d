"""Typer options generated from ``engine.spec``'s Params, so a method's hyperparameters are declared
once (in the catalogue) and appear as flags of ``run`` and ``pulse`` by themselves.

``with_param_options(kind)`` turns a command that takes ``params: dict`` into one with a
``--flag`` per ``engine.spec.option_params(kind)`` entry (default None: "use the spec's default");
the flags given reach the command as ``params``. The options are built when the decorator runs
(``register`` of the command's module), from the catalogue as it is then.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional

import typer

from engine import spec as specs
from engine.spec.validate import PULSE_DEFAULT_PARAMS

PANEL = "Method parameters"


def option_help(param: specs.Param, kind: str) -> str:
    """``MultiDelete: weight of L_MD (default 1.0)``: the owners (none for common parameters), the
    declared help, and the default the spec uses when the flag is left out."""
    owners = specs.param_owners(param.name)
    text = f"{', '.join(owners)}: {param.help}" if owners else param.help
    default = PULSE_DEFAULT_PARAMS.get(param.name, param.default) if kind == "pulse" else param.default
    text = text if default is None else f"{text} (default {default})"
    return f"{text}; {param.bounds}" if param.bounds and not param.choices else text


def option_parameter(param: specs.Param, kind: str) -> inspect.Parameter:
    """The keyword parameter typer reads as ``--flag`` (``--flag/--no-flag`` for a bool)."""
    names = [f"{param.flag}/--no-{specs.dash(param.name)}"] if param.kind is bool else [param.flag]
    # choices are shown, and checked by engine.spec (its one-line error names the choices)
    metavar = "[" + "|".join(map(str, param.choices)) + "]" if param.choices else None
    option = typer.Option(None, *names, help=option_help(param, kind), metavar=metavar, show_default=False,
                          rich_help_panel=PANEL)
    annotation = Optional[param.kind]
    return inspect.Parameter(param.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def with_param_options(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command whose ``params`` argument receives the generated flags that were given."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        declared = [p for p in signature.parameters.values() if p.name != "params"]
        generated = [option_parameter(p, kind) for p in specs.option_params(kind)]
        clash = {p.name for p in declared} & {p.name for p in generated}
        if clash:
            raise TypeError(f"{command.__name__} declares {', '.join(sorted(clash))}, which the catalogue generates")
        names = [p.name for p in generated]
        parameters = declared + generated

        @functools.wraps(command)
        def wrapper(**given: Any) -> Any:
            params = {name: given.pop(name) for name in names}
            return command(**given, params={k: v for k, v in params.items() if v is not None})

        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate
