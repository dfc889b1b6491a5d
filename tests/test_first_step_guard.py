"""Every run's first optimizer step must reach and change a trainable weight (engine/loop.py UpdateCheck): a
setup that trains nothing fails there in one line, naming the likely cause, instead of running to the end."""
from __future__ import annotations

import pytest
import torch

from engine import spec as specs
from engine.errors import RunFailed

SPEC = {"method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu", "seed": 42,
        "deletion": {"strategy": "random", "n": 4, "seed": 42}, "params": {"epochs": 1}}


def run(spec: dict) -> dict:
    from engine.protocols.requests import run_requests

    return run_requests(specs.validate(spec), lambda kind, **fields: None, lambda: False)


def test_an_optimizer_step_that_moves_nothing_fails_the_run_in_one_line(home, monkeypatch):
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, closure=None: None)
    with pytest.raises(RunFailed) as failed:
        run(SPEC)
    message = str(failed.value)
    assert "\n" not in message and message.startswith("the first optimizer step changed none of the")
    assert "trainable weights" in message and "nothing would be unlearned" in message


def test_a_loss_no_gradient_reaches_fails_the_run_in_one_line(home, monkeypatch):
    """A loss that does not depend on the weights (here FT's, times zero): weight decay alone would move them,
    so the guard reads the gradients too."""
    from engine.methods.finetune import FineTune

    real = FineTune.losses
    monkeypatch.setattr(FineTune, "losses", lambda self, forget, retain: {
        name: value * 0.0 for name, value in real(self, forget, retain).items()})
    with pytest.raises(RunFailed) as failed:
        run(SPEC)
    message = str(failed.value)
    assert "\n" not in message and message.startswith("no gradient reached the")
    assert "--grad-checkpointing" in message


def test_a_loss_detached_from_the_weights_fails_the_run_in_one_line(home, monkeypatch):
    """What reentrant checkpointing over frozen inputs gives under LoRA: a loss no weight produced. It fails before
    the backward pass (which would raise inside autograd), in one line."""
    from engine.methods.finetune import FineTune

    real = FineTune.losses
    monkeypatch.setattr(FineTune, "losses", lambda self, forget, retain: {
        name: value.detach() for name, value in real(self, forget, retain).items()})
    with pytest.raises(RunFailed) as failed:
        run(SPEC)
    assert "\n" not in str(failed.value) and str(failed.value).startswith("no gradient reached the")


def test_a_run_that_trains_passes_the_guard_with_checkpointing(home):
    """CLIP with --grad-checkpointing: its layers checkpoint and the run passes the guard (a real step moves)."""
    document = run({**SPEC, "params": {"epochs": 1, "grad_checkpointing": True}})
    assert document["steps"] > 0 and document["hyperparameters"]["grad_checkpointing"] is True


def tiny_text(**extra) -> dict:
    return dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=64, **extra)


def tiny_vision() -> dict:
    return dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2, image_size=30,
                patch_size=15)


@pytest.mark.parametrize("family", ["blip", "clip", "gcn_bert"])
def test_every_image_text_family_checkpoints_and_switches_it_off_again(family):
    """BLIP and CLIP checkpoint as a whole; GCN+BERT, whose own model does not support it, through its BERT side
    (2 layers); after `disable_checkpointing` no layer checkpoints. (LLaVA: the pulse test above.)"""
    from transformers import BlipConfig, BlipForImageTextRetrieval, CLIPConfig, CLIPModel

    from engine.checkpointing import checkpointed_layers, disable_checkpointing, enable_checkpointing
    from engine.models.gcn_bert_model import GcnBertConfig, GcnBertModel

    if family == "blip":
        model = BlipForImageTextRetrieval(BlipConfig(text_config=tiny_text(), vision_config=tiny_vision()))
    elif family == "clip":
        model = CLIPModel(CLIPConfig(text_config=tiny_text(), vision_config=tiny_vision()))
    else:
        model = GcnBertModel(GcnBertConfig(text_config=tiny_text(), graph_hidden_size=32, symbol_vocab_size=99,
                                           fusion_heads=2, projection_dim=32))
    layers = enable_checkpointing(model)
    assert layers >= 1 and checkpointed_layers(model) == layers
    if family == "gcn_bert":
        assert checkpointed_layers(model.text_encoder) == layers
    disable_checkpointing(model)
    assert checkpointed_layers(model) == 0
