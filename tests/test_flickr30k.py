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
