"""--compile: the loop runs each transformer layer through torch.compile and takes the same steps as without;
a platform that cannot compile ends the run in one line; the flag is recorded in the spec's params."""
from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from engine.errors import RunFailed
from engine.loop import LoopConfig, run_loop
from engine.methods.base import Method
from test_parallel import Rows  # regression rows with the surface the loop reads


class Layered(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 8), torch.nn.Linear(8, 8)])
        self.head = torch.nn.Linear(8, 2)


class Net:
    def __init__(self):
        torch.manual_seed(0)
        self.model = Layered()
        self.device = torch.device("cpu")


class AscendDescend(Method):
    uses_forget = uses_retain = True

    def trainable_parameters(self):
        return list(self.model.model.parameters())

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.model.model.layers:
            x = torch.tanh(layer(x))
        return self.model.model.head(x)

    def losses(self, forget, retain):
        ascend = ((self.predict(forget["x"]) - forget["y"]) ** 2).mean()
        descend = ((self.predict(retain["x"]) - retain["y"]) ** 2).mean()
        return {"total": descend - 0.5 * ascend, "forget": ascend, "retain": descend}


def train(params: dict) -> tuple[list[dict], list[str], list[torch.Tensor], Net]:
    net, steps, logs = Net(), [], []

    def emit(kind: str, **fields) -> None:
        if kind == "step":
            steps.append(fields["losses"])
        elif kind == "log":
            logs.append(fields["message"])

    # one batch size for both sets: one compiled graph per mode, not a second for another batch shape
    config = LoopConfig(lr=0.05, epochs=1, iterates="forget", forget_batch_size=8, retain_batch_size=8, seed=3)
    run_loop(AscendDescend(params, net), Rows(24, 1), Rows(24, 2), config, emit)
    return steps, logs, [p.detach().clone() for p in net.model.parameters()], net


def test_compiled_layers_take_the_eager_steps():
    eager_steps, _, eager_weights, _ = train({})
    steps, logs, weights, net = train({"compile": True})
    assert any(message.startswith("compile: 2 blocks") for message in logs)
    assert len(steps) == len(eager_steps) == 3
    for ours, theirs in zip(steps, eager_steps):
        for term in ("total", "forget", "retain"):
            assert abs(ours[term] - theirs[term]) < 1e-5, (term, ours, theirs)
    for ours, theirs in zip(weights, eager_weights):
        assert torch.allclose(ours, theirs, atol=1e-5)
    assert all("forward" not in layer.__dict__ for layer in net.model.layers)  # its own forward back after the loop


def test_no_compiler_ends_the_run_in_one_line(monkeypatch):
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", ("/nonexistent/c++",))
    with pytest.raises(RunFailed) as failed:
        train({"compile": True})
    message = str(failed.value)
    assert "\n" not in message and message.startswith("--compile needs a C++ compiler")
    assert message.endswith("run without --compile")


def test_the_flag_is_recorded_in_the_spec(monkeypatch, tmp_path):
    from workbench import cli_run

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    ran: list[dict] = []
    monkeypatch.setattr(cli_run, "run_session", lambda spec, label, original_metrics=None, as_json=False, checked=False:
                        ran.append(spec) or {"session": "fake", "params": spec["params"]})
    app = typer.Typer()
    cli_run.register(app)
    base = ["run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4", "--json"]
    given = CliRunner().invoke(app, [*base, "--compile"])
    assert given.exit_code == 0, given.output
    assert json.loads(given.stdout)["params"]["compile"] is True
    left_out = CliRunner().invoke(app, base)
    assert left_out.exit_code == 0 and "compile" not in ran[-1]["params"]  # off: the params as they always were
