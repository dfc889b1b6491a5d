"""The Karpathy-format export and reader: the built-in world round-trips through real files."""
import json

import numpy as np
import pytest

from engine.data.flickr30k import read_flickr30k, write_flickr30k
from engine.data.shapes import build_shapes_world
from engine.errors import SpecError


def test_round_trip(tmp_path):
    world = build_shapes_world("shapes-tiny")
    write_flickr30k(world, tmp_path)
    train = json.loads((tmp_path / "flickr30k_train.json").read_text())
    assert set(train[0]) == {"image", "caption", "image_id"} and isinstance(train[0]["caption"], str)
    test = json.loads((tmp_path / "flickr30k_test.json").read_text())
    assert isinstance(test[0]["caption"], list) and len(test[0]["caption"]) == 5
    back = read_flickr30k(tmp_path)
    for split in ("train", "val", "test"):
        original, loaded = world.split(split), back.split(split)
        assert [u.unit_id for u in original] == [u.unit_id for u in loaded]
        assert [u.captions for u in original] == [u.captions for u in loaded]
    assert np.array_equal(np.asarray(world.train[5].image), np.asarray(back.train[5].image))
    assert back.vocabulary() == world.vocabulary()


def test_reader_errors(tmp_path):
    with pytest.raises(SpecError, match="flickr30k_train.json"):
        read_flickr30k(tmp_path)
    (tmp_path / "flickr30k_train.json").write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        read_flickr30k(tmp_path)
    (tmp_path / "flickr30k_train.json").write_text(json.dumps([{"image": "a.png", "caption": "x"}]))
    for split in ("val", "test"):
        (tmp_path / f"flickr30k_{split}.json").write_text("[]")
    with pytest.raises(SpecError, match="a.png .* missing"):
        read_flickr30k(tmp_path)


def test_a_tiny_model_built_for_large_images_says_it_is_slow(tmp_path):
    """A hand-made Flickr30K folder of 500-px pictures built clip-tiny for 500 px (244x the built-in worlds'
    pixels) and trained 42 steps in 10 minutes without a word; only the docs' known limits said why."""
    from PIL import Image

    from engine.spec import validate
    from engine.tasks import task_for

    def folder(size: int):
        root = tmp_path / f"fl{size}"
        (root / "images").mkdir(parents=True)
        records = {split: [] for split in ("train", "val", "test")}
        for i in range(12):
            Image.new("RGB", (size, size), (i * 20, 0, 0)).save(root / "images" / f"{i}.png")
            records["train" if i < 8 else "val" if i < 10 else "test"].append(
                {"image": f"images/{i}.png", "caption": [f"a red square number {i}"]})
        for split, rows in records.items():
            (root / f"flickr30k_{split}.json").write_text(json.dumps(rows))
        return f"flickr30k:{root}"

    said = {}
    for size in (500, 64):
        logs = []
        spec = validate({"method": "ft", "model": "clip-tiny", "data": folder(size), "device": "cpu",
                         "deletion": {"strategy": "random", "n": 2, "seed": 0}})
        task_for(spec, lambda kind, **fields: logs.append(fields), lambda: False, tmp_path / "cache")
        said[size] = [log["message"] for log in logs if log.get("level") == "warning"]
    assert said[64] == [] and len(said[500]) == 1
    assert said[500][0].startswith("clip-tiny is built here for 500-px images (the first training image's width): "
                                   "244x the pixels of the built-in worlds' 32 px")
