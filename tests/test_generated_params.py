"""A method's parameters are declared once, in the catalogue: a new method with a new Param gets its
`run` flag (help, default, value in the spec) and its New-run form field with no other edit."""
from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from conftest import form_ready, param_shown, wait_until
from engine import spec as specs
from engine.spec.catalog import MethodInfo

RATE = specs.Param("forget_rate", float, 0.5, "how fast it forgets", positive=True)
THROWAWAY = MethodInfo("forgetful", "Forgetful", "a throwaway method for this test",
                       "engine.methods.neggrad:NegGrad", (RATE,))


@pytest.fixture
def forgetful(monkeypatch, tmp_path):
    """The catalogue with one more method (one dict, read by engine.spec, the CLI and the form)."""
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    monkeypatch.setitem(specs.METHODS, THROWAWAY.name, THROWAWAY)
    return THROWAWAY


def run_app(monkeypatch) -> tuple[typer.Typer, list[dict]]:
    """The `run` command as the CLI registers it, with the in-process runner replaced by a recorder."""
    from workbench import cli_run

    ran: list[dict] = []

    def record(spec, label, original_metrics=None, as_json=False, checked=False):
        ran.append(spec)
        return {"session": "fake", "method": spec["method"], "params": spec["params"]}

    monkeypatch.setattr(cli_run, "run_session", record)
    app = typer.Typer()
    cli_run.register(app)
    return app, ran


def test_new_param_is_a_run_flag(forgetful, monkeypatch):
    app, ran = run_app(monkeypatch)
    runner = CliRunner()
    shown = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "--forget-rate" in shown.stdout
    assert "Forgetful: how fast it forgets (default 0.5)" in shown.stdout
    base = ["run", "--method", "forgetful", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4", "--json"]
    given = runner.invoke(app, [*base, "--forget-rate", "0.25"])
    assert given.exit_code == 0, given.output
    assert json.loads(given.stdout)["params"]["forget_rate"] == 0.25
    left_out = runner.invoke(app, base)
    assert left_out.exit_code == 0 and ran[-1]["params"]["forget_rate"] == 0.5   # the declared default
    bad = runner.invoke(app, [*base, "--forget-rate", "-1"])
    assert bad.exit_code == 2 and "--forget-rate must be > 0" in bad.stderr and len(ran) == 2


def test_the_cli_generates_every_catalogue_param():
    """The shipped `run` and `pulse` carry one flag per option_params entry (and nothing hand-written)."""
    from workbench.cli import app

    commands = {c.name: c for c in typer.main.get_command(app).commands.values()}
    for kind in ("run", "pulse"):
        flags = {opt for p in commands[kind].params for opt in p.opts}
        assert {p.flag for p in specs.option_params(kind)} <= flags, kind
    assert "--requests" in {opt for p in commands["run"].params for opt in p.opts}


async def test_new_param_is_a_form_field(forgetful):
    from workbench.tui import create_app

    app = create_app(start_engine=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: bool(app.screen.query("#p-lr")) and form_ready(app.screen))
        screen = app.screen
        screen.query_one("#method").value = "forgetful"
        await wait_until(pilot, lambda: param_shown(screen, "forget_rate"))
        field = screen.query_one("#p-forget_rate")
        assert field.value == "0.5" and not param_shown(screen, "alpha")
        field.value = "0"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "p-forget_rate" in screen.errors)
        assert "--forget-rate must be > 0" in screen.errors["p-forget_rate"]
