"""Tiny models are real transformers models written with save_pretrained and loaded back by from_pretrained."""
import json

import pytest
import torch

from engine.data.pairs import encode_units
from engine.data.shapes import build_shapes_world
from engine.errors import SpecError
from engine.models.registry import load_adapter, tiny_model_dir


@pytest.fixture(scope="module")
def world():
    return build_shapes_world("shapes-tiny")


@pytest.mark.parametrize("name,cls", [("blip-tiny", "BlipForImageTextRetrieval"), ("clip-tiny", "CLIPModel")])
def test_tiny_model_round_trip_and_contract(tmp_path, world, name, cls):
    directory = tiny_model_dir(name, world, seed=3, cache=tmp_path, task="retrieval")
    assert json.loads((directory / "config.json").read_text())["architectures"] == [cls]
    adapter = load_adapter(str(directory), world, seed=3, cache=tmp_path, task="retrieval")  # the path a real checkpoint takes
    again = load_adapter(name, world, seed=3, cache=tmp_path, task="retrieval")
    for a, b in zip(adapter.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)
    # every word of the world is in the offline tokenizer's vocabulary
    ids = adapter.tokenize(world.train[0].captions)["input_ids"]
    assert (ids != adapter.tokenizer.unk_token_id).all()
    pairs = encode_units(world.train[:4], adapter)
    batch = pairs.batch(torch.arange(len(pairs)), torch.device("cpu"))
    n = len(pairs)
    assert adapter.similarity(batch).shape == (n, n)
    assert adapter.fused_embed(batch).shape[0] == n
    assert adapter.image_embed(batch).shape[0] == n and adapter.text_embed(batch).shape[0] == n
    scores = adapter.pair_scores(batch)
    assert scores.shape == (n,) and torch.isfinite(scores).all()
    loss = adapter.task_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None for p in adapter.model.parameters())
    i2t, t2i = adapter.score_matrix(pairs, 8)
    assert i2t.shape == t2i.shape == (4, n)


def test_not_an_image_text_checkpoint(tmp_path, world):
    directory = tmp_path / "gpt"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(SpecError, match="is a .gpt2. checkpoint; the workbench loads .*blip, clip"):
        load_adapter(str(directory), world, seed=0, cache=tmp_path, task="retrieval")


def test_missing_checkpoint(tmp_path, world):
    with pytest.raises(SpecError, match="could not be loaded"):
        load_adapter(str(tmp_path / "nothing"), world, seed=0, cache=tmp_path, task="retrieval")


FRESH_ORIGINAL = """
import sys
from pathlib import Path
from engine.data.shapes import build_shapes_world
from engine.models.registry import load_adapter
cache = Path(sys.argv[1])
adapter = load_adapter("clip-tiny", build_shapes_world("shapes-tiny"), 3, cache, "retrieval")  # built, saved
adapter.save(cache / "original")  # where a trained original is saved (engine/protocols/originals.py)
print("saved", file=sys.stderr)
"""


def test_a_fresh_tiny_model_and_its_original_save_print_no_progress_bar(tmp_path):
    """Issue 25: a run with a fresh original printed transformers' "Writing model shards" bar on stderr. A fresh
    process (whose progress bars are on, as a run's are) builds a tiny model and saves it as an original would."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", FRESH_ORIGINAL, str(tmp_path)], cwd=root, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "original" / "config.json").exists()
    assert "Writing model shards" not in out.stderr and "it/s" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "saved"
