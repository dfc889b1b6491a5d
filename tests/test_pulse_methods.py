"""The 2024-25 baselines as catalogue rows: listed by `methods`, flags of `pulse`, fields of the New-run form,
refused in one line where the task or family lacks what they need, and run end to end through the
sequential protocol on people-tiny (LLaVA, and NPO on Qwen2-VL) and, where they make sense, on retrieval."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import ROOT, cli, cli_env, form_ready, param_shown, run_in_process, wait_until
from engine import spec as specs
from engine.errors import SpecError
from engine.spec.catalog import method_variant

NEW = ("graddiff", "simnpo", "idk", "idkdpo", "rmu", "mmunlearner", "masked_ga")


def test_listed_with_their_parameters(home):
    out = run_in_process(home, "methods", "--json")
    rows = {row["name"]: row for row in json.loads(out.stdout)["methods"]}
    assert set(NEW) <= set(rows) and rows["ga_klr"]["aliases"] == [] and "kl_min" in rows
    assert all(row["variant"] for row in rows.values())  # every method names the variant it is
    assert "KL_Min.py" in rows["kl_min"]["variant"] and "no retain NLL" in rows["ga_klr"]["variant"]
    assert rows["npo"]["variant"] == ("OpenUnlearning trainer/unlearn/npo.py: log-ratio of the answer tokens' sum, "
                                      "beta 0.1, ref = the model before the request, + 1.0 x retain NLL")
    assert {p["name"]: p["default"] for p in rows["simnpo"]["params"]} == {
        "simnpo_beta": 4.5, "simnpo_delta": 0.0, "simnpo_weight": 0.125, "retain_weight": 1.0}
    assert rows["rmu"]["requires"] == ["layers"] and rows["idk"]["requires"] == ["refusals"]
    assert rows["mmunlearner"]["requires"] == ["preserve_sets", "vision"] and rows["masked_ga"]["requires"] == []
    assert set(NEW) <= set(specs.PULSE_METHODS) and set(NEW) <= set(specs.SEQUENTIAL_METHODS)


def test_pulse_help_generates_their_flags():
    import typer
    from typer.testing import CliRunner

    from workbench.cli import app

    shown = CliRunner().invoke(app, ["pulse", "--help"], env={"COLUMNS": "240"})
    assert shown.exit_code == 0
    for method in NEW:
        assert method in shown.stdout
    for param in ("--rmu-layer", "--mask-ratio", "--simnpo-beta", "--dpo-beta", "--retain-weight"):
        assert param in shown.stdout
    command = next(c for c in typer.main.get_command(app).commands.values() if c.name == "pulse")
    assert {p.flag for p in specs.option_params("pulse")} <= {opt for p in command.params for opt in p.opts}
    # what people data cannot use is not offered (it listed --tune, --keep, ... and refused them when given)
    offered = {opt for p in command.params for opt in p.opts}
    assert not offered & {"--tune", "--keep", "--keep-tolerance", "--target-auc", "--pair-score", "--k-test"}
    assert "Retrain" not in next(p for p in command.params if p.name == "original").help


async def test_new_run_form_fields(home):
    from workbench.tui import create_app

    app = create_app(start_engine=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: bool(app.screen.query("#p-lr")) and form_ready(app.screen))
        screen = app.screen
        screen.query_one("#data").value = "people-tiny"
        for method, name in (("rmu", "rmu_layer"), ("mmunlearner", "mask_ratio"), ("idkdpo", "dpo_beta")):
            screen.query_one("#method").value = method
            await wait_until(pilot, lambda: param_shown(screen, name) and param_shown(screen, "lora_r"))
        assert screen.query_one("#p-dpo_beta").value == "0.1"
        assert not param_shown(screen, "rmu_layer") and not param_shown(screen, "mask_ratio")
        # on people data the form offers what `pulse` offers: no tuning, keeping or pair scoring
        assert not any(param_shown(screen, name) for name in specs.NOT_ON_PEOPLE)
        screen.query_one("#data").value = "shapes-tiny"
        await wait_until(pilot, lambda: param_shown(screen, "keep") and param_shown(screen, "tune"))


@pytest.mark.parametrize("command", [
    ["run", "--method", "idk", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4"],
    ["run", "--method", "rmu", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4"],
    ["run", "--method", "mmunlearner", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4"],
])
def test_what_a_task_or_family_lacks_is_one_line_exit_2(home, command):
    result = subprocess.run(cli(*command), cwd=ROOT, env=cli_env(home), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and " needs " in result.stderr
    with pytest.raises(SpecError) as raised:
        specs.validate({"method": command[2], "model": "clip-tiny", "data": "shapes-tiny",
                        "deletion": {"strategy": "random", "n": 4}})
    assert raised.value.field == "method"


@pytest.mark.parametrize("method", [*NEW, "kl_min"])
def test_every_new_method_runs_a_sequence_on_llava(home, method):
    from engine.protocols.requests import run_requests

    events = []
    normal = specs.validate_pulse({"method": method, "model": "llava-tiny", "data": "people-tiny", "requests": 2,
                                   "knowledge": "finetuned", "device": "cpu", "params": {"epochs": 1}})
    document = run_requests(normal, lambda kind, **fields: events.append((kind, fields)), lambda: False)
    assert document["method"] == specs.method_info(method).name and len(document["requests"]) == 2
    for entry in document["requests"]:
        assert set(entry["forget"]) == {"image", "text"} and 0.0 <= entry["mmbench"] <= 1.0
    steps = [f for k, f in events if k == "step" and f["phase"] == "unlearn"]
    assert steps and {f["request"] for f in steps} == {1, 2}
    assert all(v == v and abs(v) != float("inf") for f in steps for v in f["losses"].values())


def test_kl_min_through_the_cli(home):
    listed = run_in_process(home, "methods")
    lines = listed.stdout.splitlines()
    assert any(line.startswith("kl_min ") for line in lines) and any(line.startswith("ga_klr ") for line in lines)
    assert sum("variant: " in line for line in lines) == len(specs.METHODS)
    # each method's default budget, which the protocols page sends readers here for
    budgets = [line.split("budget: ")[1] for line in lines if "budget: " in line]
    assert len(budgets) == len(specs.METHODS) and budgets[0] == "5 epochs over Df"  # MultiDelete, listed first
    assert "the original's recipe over Dr" in budgets and "1 step over Dr (its own count)" in budgets  # Retrain, D2D
    result = run_in_process(home, "pulse", "--method", "kl_min", "--data", "people-tiny", "--requests", "1",
                            "--epochs", "1", "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout)
    assert document["method"] == "kl_min" and document["variant"] == method_variant("kl_min")
    assert len(document["requests"]) == 1 and document["hyperparameters"]["kl_weight"] == 1.0


def test_rmu_defaults_scaled_and_the_steered_layer_moves(home):
    """RMU's defaults on llava-tiny (2 layers, hidden 64): layer 0, c = 6.5 x sqrt(64/4096), recorded; one epoch
    moves the steered layer's states on the forget rows measurably."""
    import torch

    from engine.protocols.requests import run_requests
    from engine.tasks import task_for
    from sessions.paths import cache_dir

    normal = specs.validate_pulse({"method": "rmu", "model": "llava-tiny", "data": "people-tiny", "requests": 1,
                                   "knowledge": "finetuned", "device": "cpu",
                                   "params": {"epochs": 1, "update": "full"}})
    document = run_requests(normal, lambda kind, **fields: None, lambda: False)
    assert document["resolved"] == {"rmu_layer": 0, "rmu_updated_layers": [0], "rmu_coeff": 0.8125}
    assert document["variant"].startswith("WMDP rmu/unlearn.py: steer layer auto")
    task = task_for(normal, lambda *a, **k: None, lambda: False, cache_dir())
    before, after = (task.load(document[key], torch.device("cpu")) for key in ("original_checkpoint", "checkpoint"))
    forget = task.encode(before, document["requests"][0]["people"], False)
    rows = forget.batch(torch.arange(len(forget)), "cpu")
    with torch.no_grad():
        old, mask = before.layer_states(rows, 0)
        new, _ = after.layer_states(rows, 0)
    mask = mask.bool()
    moved = ((new - old)[mask].norm(dim=-1) / old[mask].norm(dim=-1)).mean().item()
    assert moved > 0.005  # measured 1.2% (LoRA, the default update: 0.17%; alpha 1200 holds layer 0 on Dr)


def test_npo_on_a_deployed_qwen2_vl_through_the_cli(home, tmp_path):
    # the family and the document's shape are the point, so the model to unlearn is a deployed Qwen2-VL given with
    # --original (a tiny one, untrained: nothing trains before the requests; LLaVA's tests train the LMM originals),
    # one epoch a request (5 epochs cost 12 s more, in evaluation)
    from engine.data.people import build_people_world
    from engine.models.qwen2_vl import build_tiny_qwen2_vl

    deployed = tmp_path / "deployed-qwen2-vl"
    build_tiny_qwen2_vl(build_people_world("people-tiny", seed=0).vocabulary(), seed=0, directory=deployed)
    result = run_in_process(home, "pulse", "--method", "npo", "--data", "people-tiny", "--model", "qwen2-vl-tiny",
                            "--original", str(deployed), "--requests", "2", "--epochs", "1", "--device", "cpu",
                            "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout)
    assert document["model"] == "qwen2-vl-tiny" and len(document["requests"]) == 2
    assert document["original"]["model"] == str(deployed) and document["original"]["given"]
    assert "original:pretrain" not in result.stderr
    assert document["hyperparameters"]["epochs"] == 1
    assert all(set(entry["retain"]) == {"image", "text"} for entry in document["requests"])


@pytest.mark.parametrize("method", ["graddiff", "simnpo", "masked_ga"])
def test_image_text_methods_on_retrieval(home, method):
    from engine.jobs import run_job

    normal = specs.validate({"method": method, "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu",
                             "seed": 7, "deletion": {"strategy": "random", "n": 9, "seed": 7}, "requests": 3,
                             "params": {"epochs": 1}})

    class Writer:
        session_id = None

        @staticmethod
        def emit(kind, **fields):
            pass

    document = run_job(normal, Writer, lambda: False)
    assert [entry["units"] for entry in document["requests"]] == [3, 3, 3]
    assert all(0.0 <= entry["metrics"]["df_dr_auc"] <= 1.0 for entry in document["requests"])


def test_lora_with_gradient_checkpointing_trains_the_lora_weights(home):
    """`pulse --update llm --grad-checkpointing` on llava-tiny: the LLM's layers checkpoint (logged), LoRA's
    factors train (inputs made to require grad), so the merged q_proj weights differ from the original's; the
    first-step guard passes; and the document carries its cost."""
    import torch

    from engine.protocols.requests import run_requests
    from engine.tasks import task_for
    from sessions.paths import cache_dir

    events = []
    normal = specs.validate_pulse({"method": "ga", "model": "llava-tiny", "data": "people-tiny", "requests": 1,
                                   "knowledge": "finetuned", "device": "cpu",
                                   "params": {"epochs": 1, "update": "llm", "grad_checkpointing": True}})
    document = run_requests(normal, lambda kind, **fields: events.append((kind, fields)), lambda: False)
    logs = [f["message"] for k, f in events if k == "log"]
    assert any(m.startswith("gradient checkpointing: ") and "layers recompute" in m for m in logs), logs
    assert document["hyperparameters"]["grad_checkpointing"] is True
    assert set(document["cost"]) >= {"original_seconds", "unlearning_seconds", "evaluation_seconds", "steps",
                                     "examples_per_second", "peak_memory_mb", "device", "device_count", "torch_threads"}
    assert document["requests"][0]["cost"]["steps"] == document["steps"] > 0
    task = task_for(normal, lambda *a, **k: None, lambda: False, cache_dir())
    before, after = (task.load(document[key], torch.device("cpu")) for key in ("original_checkpoint", "checkpoint"))
    q_before = {n: p for n, p in before.core.named_parameters() if "q_proj.weight" in n}
    q_after = dict(after.core.named_parameters())
    assert q_before and any(not torch.equal(p, q_after[n]) for n, p in q_before.items())  # lora_B left zero
    moved = [n for n, p in before.core.named_parameters() if not torch.equal(p, dict(after.core.named_parameters())[n])]
    assert moved and all("language_model" in n and any(t in n for t in ("q_proj", "k_proj", "v_proj", "o_proj",
                         "gate_proj", "up_proj", "down_proj")) for n in moved)  # only the LoRA-adapted weights
