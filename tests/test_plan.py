"""`mmul-workbench plan`: the memory a run needs per device, from a config alone (engine/plan.py), checked part by
part by hand and against the peak memory one real training step takes on the CPU (random weights)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, cli, cli_env

MEASURE = r"""
import json, sys
import torch
from transformers import CLIPConfig, CLIPModel
from engine.loop import build_optimizer

torch.manual_seed(0)
torch.set_num_threads(1)
config, batch = CLIPConfig.from_pretrained(sys.argv[1]), int(sys.argv[2])
ids, pixels = torch.randint(0, 1000, (batch, 32)), torch.randn(batch, 3, 224, 224)


def status(field):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(field))


before = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # the peak from here on
model = CLIPModel(config).train()
optimizer = build_optimizer(list(model.parameters()), 1e-4, 0.05)
model(input_ids=ids, pixel_values=pixels, return_loss=True).loss.backward()
optimizer.step()
print(json.dumps({"peak": status("VmHWM:") - before}))
"""


def clip_config(directory, layers: int = 4, hidden: int = 256):
    """A CLIP ViT-B/32-shaped config (224 px, patch 32, CLIP's vocabulary) with fewer and narrower layers."""
    from transformers import CLIPConfig

    config = CLIPConfig(text_config=dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                                         num_attention_heads=hidden // 64, max_position_embeddings=77, vocab_size=49408),
                        vision_config=dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                                           num_attention_heads=hidden // 64, image_size=224, patch_size=32),
                        projection_dim=hidden)
    config.architectures = ["CLIPModel"]
    config.save_pretrained(directory)
    return directory


def plan_json(home, *args):
    out = subprocess.run(cli("plan", *args, "--json"), cwd=ROOT, env=cli_env(home), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_plan_reports_bytes_per_part(tmp_path):
    config = clip_config(tmp_path / "clip")
    md = plan_json(tmp_path, "--model", str(config), "--method", "multidelete", "--update", "full",
                   "--gpu-memory", "80GB")
    p = md["parameters"]
    assert md["trainable"] == p and set(md["bytes"]) == {"parameters", "gradients", "optimizer", "optimizer_step",
                                                         "frozen_copies", "activations"}
    # fp32: 4 bytes a weight; AdamW's two moments; MultiDelete keeps its original, a whole copy
    assert md["bytes"]["parameters"] == md["bytes"]["gradients"] == md["bytes"]["frozen_copies"] == 4 * p
    assert md["bytes"]["optimizer"] == 8 * p and md["fits"] is True and md["gpu_memory_bytes"] == 80 * 2**30
    assert md["total_bytes"] == sum(md["bytes"].values())
    ft = plan_json(tmp_path, "--model", str(config), "--method", "ft", "--gpu-memory", "100MB")
    assert ft["bytes"]["frozen_copies"] == 0 and ft["fits"] is False and ft["batch"] == {"forget": 0, "retain": 64}
    # fsdp over 2 devices halves the weights, gradients and AdamW state; the frozen copy is not sharded
    sharded = plan_json(tmp_path, "--model", str(config), "--method", "multidelete", "--strategy", "fsdp",
                        "--devices", "2")
    assert sharded["bytes"]["parameters"] == 2 * p and sharded["bytes"]["frozen_copies"] == 4 * p
    # checkpointing keeps each layer's input only
    kept = plan_json(tmp_path, "--model", str(config), "--method", "multidelete", "--grad-checkpointing")
    assert kept["bytes"]["activations"] < md["bytes"]["activations"] / 3


def test_lora_trains_r_times_in_plus_out_per_adapted_layer(tmp_path):
    """A LLaVA-shaped config, language model hidden 64, MLP 128, 2 layers: per layer q, k, v, o r(64 + 64) each,
    gate and up r(64 + 128), down r(128 + 64): 1088 r; r 16 over 2 layers = 34,816 trained."""
    from transformers import LlavaConfig

    config = LlavaConfig(text_config=dict(model_type="llama", hidden_size=64, intermediate_size=128,
                                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                          vocab_size=500),
                         vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8))
    config.architectures = ["LlavaForConditionalGeneration"]
    config.save_pretrained(tmp_path / "llava")
    lora = plan_json(tmp_path, "--model", str(tmp_path / "llava"), "--method", "npo", "--update", "llm")
    assert lora["trainable"] == 34_816
    assert lora["bytes"]["optimizer"] == 8 * 34_816 and lora["bytes"]["parameters"] == 4 * (lora["parameters"] + 34_816)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak resident set from /proc")
def test_plan_is_within_20_percent_of_a_measured_step(tmp_path):
    """One FT step (AdamW, batch 32 of 224 px images and 32-token texts) of a CLIP ViT-B/32-shaped model with 4
    layers of width 256, random weights, on the CPU: its peak resident memory over the process's before it
    against the plan's total (measured 618 MB against 599 MB planned when written)."""
    config = clip_config(tmp_path / "clip")
    measured = subprocess.run([sys.executable, "-c", MEASURE, str(config), "32"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, env=cli_env(tmp_path))
    assert measured.returncode == 0, measured.stderr[-2000:]
    peak = json.loads(measured.stdout)["peak"]
    planned = plan_json(tmp_path, "--model", str(config), "--method", "ft", "--retain-batch-size", "32")
    assert abs(planned["total_bytes"] - peak) <= 0.2 * peak, (planned["bytes"], peak)


def test_bad_input_is_one_line_exit_2(tmp_path):
    for args, message in ((["--model", str(tmp_path / "missing"), "--method", "ft"], "no such directory"),
                          (["--model", str(tmp_path), "--method", "ft"], "no config.json"),
                          (["--model", str(tmp_path), "--method", "nope"], "unknown method"),
                          (["--model", str(tmp_path), "--method", "ft", "--dtype", "fp8"], "--dtype must be one of"),
                          (["--model", str(tmp_path), "--method", "ft", "--gpu-memory", "lots"], "--gpu-memory")):
        out = subprocess.run(cli("plan", *args), cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr


@pytest.fixture(scope="module")
def clip_checkpoint(tmp_path_factory):
    """A tiny CLIP checkpoint directory (weights, tokenizer, processor): a model `run` plans (a registered name
    is built from the data when the run starts, so it has no plan line)."""
    from engine.data.shapes import build_shapes_world
    from engine.models.clip import ClipAdapter

    world, directory = build_shapes_world("shapes-tiny"), tmp_path_factory.mktemp("clip-checkpoint")
    ClipAdapter.build_tiny(world.vocabulary(), world.image_size, 0, directory)
    return directory


def test_run_refuses_a_run_its_plan_says_cannot_fit(tmp_path, clip_checkpoint):
    from sessions.numbers import format_megabytes

    planned = plan_json(tmp_path, "--model", str(clip_checkpoint), "--method", "multidelete")
    total = format_megabytes(planned["total_bytes"] / 2**20)
    run = ["run", "--method", "multidelete", "--model", str(clip_checkpoint), "--data", "shapes-tiny", "--device", "cpu"]
    out = subprocess.run(cli(*run, "--delete", "8", "--gpu-memory", "1MB"), cwd=ROOT, env=cli_env(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stdout == "" and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert f"needs {total} per device by its memory plan" in out.stderr and "--gpu-memory 1MB" in out.stderr
    assert "try --grad-checkpointing" in out.stderr  # not LoRA: a CLIP run has no --update
    # one that fits prints its plan's total on stderr before anything loads (here the deletion set is then
    # refused, so nothing trains)
    out = subprocess.run(cli(*run, "--delete", "100000", "--gpu-memory", "80GB"), cwd=ROOT, env=cli_env(tmp_path),
                         capture_output=True, text=True, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and lines[0] == f"memory plan: {total} per device (1 x ddp, update full; fits 80.0 GB)"
    assert len(lines) == 2 and "100000" in lines[1], out.stderr
    out = subprocess.run(cli("study", "--methods", "ft,multidelete", "--seeds", "1", *run[3:], "--delete", "8",
                             "--gpu-memory", "1MB"), cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith(f"error: multidelete on {clip_checkpoint} needs {total}")  # the larger plan of the two
