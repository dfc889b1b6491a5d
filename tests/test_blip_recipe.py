"""blip-tiny's retrieval recipe (issue #10 item 7): its weights start at a scale fit for hidden 64, not BERT's
0.02 (sized for hidden 768), which left the tiny BLIP ~6 points of test r_mean under clip-tiny on `shapes`;
the classifier's tiny BLIP and every other family keep what they had; the original's cache key follows."""
import json

import pytest

from engine.cache import recorded_fingerprint
from engine.data.shapes import build_shapes_world
from engine.data.shapes_ve import build_ve_world
from engine.models.registry import load_adapter, tiny_model_dir
from engine.protocols.originals import original_fingerprint
from engine.spec import RECIPES
from engine.spec.validate import validate
from engine.tasks import task_for

BLIP = RECIPES["tiny:blip"]
# clip-tiny's (and every family's without a `tiny:<family>` row) recipe, pinned: its originals stay as they were
TINY = {"lr": 5e-4, "epochs": 12, "batch_size": 32, "unlearn_lr": 5e-4}


@pytest.fixture(scope="module")
def world():
    return build_shapes_world("shapes-tiny")


def test_the_retrieval_blip_starts_at_its_recipes_scale(tmp_path, world):
    directory = tiny_model_dir("blip-tiny", world, seed=3, cache=tmp_path, task="retrieval")
    config = json.loads((directory / "config.json").read_text())
    assert config["text_config"]["initializer_range"] == BLIP["init_range"]
    assert config["vision_config"]["initializer_range"] == BLIP["init_range"]
    assert config["initializer_range"] == BLIP["head_init_range"]
    model = load_adapter("blip-tiny", world, seed=3, cache=tmp_path, task="retrieval").model
    drawn = {  # weights drawn by the initializer (biases, layer norms and the loaded round trip aside)
        "text": model.text_encoder.encoder.layer[0].attention.self.query.weight,
        "vision": model.vision_model.encoder.layers[0].self_attn.qkv.weight,
        "head": model.text_proj.weight,
    }
    for part, weight in drawn.items():
        expected = BLIP["head_init_range"] if part == "head" else BLIP["init_range"]
        assert weight.std().item() == pytest.approx(expected, rel=0.1), part


def test_the_classifier_blip_keeps_berts_scale(tmp_path):
    world = build_ve_world("shapes-ve-tiny")
    directory = tiny_model_dir("blip-tiny", world, seed=3, cache=tmp_path, task="classification")
    config = json.loads((directory / "config.json").read_text())
    assert config["text_config"].get("initializer_range", 0.02) == 0.02
    assert config["vision_config"]["initializer_range"] == 0.02 and config["initializer_range"] == 0.02
    model = load_adapter("blip-tiny", world, seed=3, cache=tmp_path, task="classification").model
    assert model.text_encoder.encoder.layer[0].attention.self.query.weight.std().item() == pytest.approx(0.02, rel=0.1)


def _task(model: str, tmp_path):
    spec = validate({"method": "ft", "model": model, "data": "shapes-tiny", "seed": 3, "device": "cpu",
                     "deletion": {"strategy": "random", "n": 2}})
    return spec, task_for(spec, lambda *a, **k: None, lambda: False, tmp_path)


def test_each_family_trains_its_original_with_its_tiny_recipe_and_the_key_says_which(tmp_path):
    blip_spec, blip = _task("blip-tiny", tmp_path)
    clip_spec, clip = _task("clip-tiny", tmp_path)
    assert blip.recipe == BLIP and clip.recipe == TINY == RECIPES["tiny"]
    # the same schedule (and Retrain's: the original's recipe on Dr); only the starting weights differ
    assert {key: BLIP[key] for key in TINY} == TINY
    assert blip.unlearn_defaults(True) == {"lr": TINY["lr"], "epochs": TINY["epochs"], "retain_batch_size": 32}
    # the original's cache key follows the recipe: a blip original trained before the change is never reused
    assert original_fingerprint(blip, blip_spec)["recipe"] == BLIP
    assert original_fingerprint(clip, clip_spec)["recipe"] == TINY



def test_the_tiny_models_key_follows_the_scale_so_no_cached_build_is_reused(tmp_path, world, monkeypatch):
    """A blip-tiny directory built at another scale (a cache from before the recipe) is not taken for this one."""
    from engine.spec import catalog

    before = tiny_model_dir("blip-tiny", world, seed=3, cache=tmp_path, task="retrieval")
    monkeypatch.setitem(catalog.RECIPES, "tiny:blip", {**BLIP, "init_range": 0.05})
    after = tiny_model_dir("blip-tiny", world, seed=3, cache=tmp_path, task="retrieval")
    assert after != before and json.loads((after / "config.json").read_text())["text_config"]["initializer_range"] == 0.05
    clip = tiny_model_dir("clip-tiny", world, seed=3, cache=tmp_path, task="retrieval")
    assert "init" not in recorded_fingerprint(clip) and "init" in recorded_fingerprint(after)  # clip keeps its key


def test_a_built_in_world_with_its_own_tiny_recipe_trains_its_original_and_retrain_with_it(tmp_path):
    """shapes-ve-tiny's row (chosen on its validation split, issue 24 item 6) replaces the default for its original
    and its Retrain, and the original's cache key says so; a world without a row keeps the default."""
    from engine.tasks.classification import RECIPES as CLASSIFICATION

    def task(data):
        spec = validate({"method": "retrain", "model": "blip-tiny", "data": data, "seed": 3, "device": "cpu",
                         "deletion": {"strategy": "random", "n": 2}})
        return spec, task_for(spec, lambda *a, **k: None, lambda: False, tmp_path)

    ve_spec, ve = task("shapes-ve-tiny")
    nlvr2_spec, nlvr2 = task("shapes-nlvr2-tiny")
    own, default = CLASSIFICATION["tiny:shapes-ve-tiny"], CLASSIFICATION["tiny"]
    assert (own["lr"], own["epochs"]) != (default["lr"], default["epochs"])
    assert ve.recipe == own and nlvr2.recipe == default
    assert ve.unlearn_defaults(True) == {"lr": own["lr"], "epochs": own["epochs"], "retain_batch_size": 32}
    assert ve.unlearn_defaults(False)["lr"] == default["unlearn_lr"]
    assert original_fingerprint(ve, ve_spec)["recipe"] == own
    assert original_fingerprint(nlvr2, nlvr2_spec)["recipe"] == default
