"""Karpathy's caption_datasets files (dataset_flickr30k.json, dataset_coco.json): the writer round-trips, a
file written by hand in the real layout is read, and a malformed record is refused with file and record."""
import json

import pytest
from PIL import Image

from engine.data.flickr30k import read_coco, read_flickr30k
from engine.data.karpathy import write_caption_dataset
from engine.data.shapes import build_shapes_world
from engine.errors import SpecError


@pytest.fixture(scope="module")
def world():
    world = build_shapes_world("shapes-tiny")
    world.train, world.val, world.test = world.train[:12], world.val[:3], world.test[:4]
    return world


@pytest.mark.parametrize("dataset,reader", [("flickr30k", read_flickr30k), ("coco", read_coco)])
def test_caption_dataset_round_trip(tmp_path, world, dataset, reader):
    write_caption_dataset(world, tmp_path, dataset)
    payload = json.loads((tmp_path / f"dataset_{dataset}.json").read_text())
    first = payload["images"][0]
    assert payload["dataset"] == dataset and first["split"] == "train" and first["sentences"][0]["raw"]
    assert ("filepath" in first) == (dataset == "coco")
    back = reader(tmp_path)
    for split in ("train", "val", "test"):
        original, loaded = world.split(split), back.split(split)
        assert [u.captions for u in original] == [u.captions for u in loaded]
        assert [u.unit_id.rpartition("/")[2] for u in original] == [u.unit_id.rpartition("/")[2] for u in loaded]
    # ids are the image paths LAVIS writes: flickr30k-images/<filename>, <filepath>/<filename> for COCO
    assert back.train[0].unit_id == ("flickr30k-images/" if dataset == "flickr30k" else "shapes-images/") + first["filename"]
    assert back.vocabulary() == world.vocabulary()


def foreign_flickr(root, images):
    (root / "flickr30k-images").mkdir(parents=True)
    for name in ("1000092795.jpg", "10002456.jpg", "1000268201.jpg", "1000344755.jpg"):
        Image.new("RGB", (48, 48), (120, 30, 30)).save(root / "flickr30k-images" / name)
    (root / "dataset_flickr30k.json").write_text(json.dumps({"images": images, "dataset": "flickr30k"}))


def record(filename, split, captions, imgid=0):
    return {"sentids": list(range(len(captions))), "imgid": imgid, "split": split, "filename": filename,
            "sentences": [{"tokens": c.lower().split(), "raw": c, "imgid": imgid, "sentid": k}
                          for k, c in enumerate(captions)]}


def test_foreign_caption_dataset_restval_is_train(tmp_path):
    foreign_flickr(tmp_path, [
        record("1000092795.jpg", "train", ["Two young guys with shaggy hair look at their hands .", "Two friends."]),
        record("10002456.jpg", "restval", ["Several men in hard hats are operating a giant pulley system ."], 1),
        record("1000268201.jpg", "val", ["A child in a pink dress is climbing up a set of stairs ."], 2),
        record("1000344755.jpg", "test", ["Someone in a blue shirt and hat is standing on stair ."], 3),
    ])
    world = read_flickr30k(tmp_path)
    assert [u.unit_id for u in world.train] == ["flickr30k-images/1000092795.jpg", "flickr30k-images/10002456.jpg"]
    assert world.train[0].captions[1] == "Two friends." and world.image_size == 48
    assert len(world.val) == len(world.test) == 1


def test_malformed_caption_record_names_file_and_record(tmp_path):
    foreign_flickr(tmp_path, [record("1000092795.jpg", "train", ["fine"]),
                              {"filename": "10002456.jpg", "split": "train", "sentences": [{"tokens": ["no", "raw"]}]}])
    with pytest.raises(SpecError, match=r"dataset_flickr30k.json image record 2: a sentence has no 'raw'"):
        read_flickr30k(tmp_path)
    foreign_flickr(tmp_path / "b", [record("1000092795.jpg", "holdout", ["x"])])
    with pytest.raises(SpecError, match=r"image record 1: its split 'holdout' is not one of train, restval, val, test"):
        read_flickr30k(tmp_path / "b")
    with pytest.raises(SpecError, match="no coco_karpathy_train.json.*dataset_coco.json"):
        read_coco(tmp_path / "b")
