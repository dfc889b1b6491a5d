"""SNLI-VE and NLVR2 files: the built-in worlds round-trip through the writers and readers, files written by
hand in the original jsonl and the LAVIS JSON layouts are read, malformed records are refused with the file
and the line or record, and a deletion ID file naming a unit that is not there is refused with its name."""
import json

import numpy as np
import pytest
from PIL import Image

from engine.data.deletion import select_units
from engine.data.nlvr2 import read_nlvr2, write_nlvr2
from engine.data.shapes_nlvr2 import build_nlvr2_world
from engine.data.shapes_ve import build_ve_world
from engine.data.snli_ve import read_snli_ve, write_snli_ve
from engine.errors import SpecError


def small(world):
    world.train, world.val, world.test, world.pretrain = world.train[:10], world.val[:3], world.test[:4], []
    return world


def same_units(world, back):
    for split in ("train", "val", "test"):
        original, loaded = world.split(split), back.split(split)
        assert [u.unit_id for u in original] == [u.unit_id for u in loaded]
        assert [(u.texts, u.labels, u.text_ids) for u in original] == [(u.texts, u.labels, u.text_ids) for u in loaded]


def test_snli_ve_round_trip(tmp_path):
    world = small(build_ve_world("shapes-ve-tiny"))
    written = write_snli_ve(world, tmp_path)
    assert [p.name for p in written] == ["snli_ve_train.jsonl", "snli_ve_dev.jsonl", "snli_ve_test.jsonl"]
    line = json.loads(written[0].read_text().splitlines()[0])
    assert {"Flickr30K_ID", "sentence2", "gold_label"} <= set(line)
    back = read_snli_ve(tmp_path)
    same_units(world, back)
    assert back.classes == world.classes and back.images_per_unit == 1 and back.vocabulary() == world.vocabulary()
    # JPEG at full quality: close to the drawn picture
    assert np.abs(np.asarray(back.train[0].image, dtype=int) - np.asarray(world.train[0].image, dtype=int)).mean() < 3


def test_nlvr2_round_trip(tmp_path):
    world = small(build_nlvr2_world("shapes-nlvr2-tiny"))
    write_nlvr2(world, tmp_path)
    assert (tmp_path / "train" / f"{world.train[0].unit_id}-img1.png").is_file()
    back = read_nlvr2(tmp_path)
    same_units(world, back)
    assert back.images_per_unit == 2
    assert np.array_equal(np.asarray(back.train[3].images[1]), np.asarray(world.train[3].images[1]))


def picture(path, colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 40), colour).save(path)


def write_lines(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_foreign_snli_ve_original_jsonl_and_lavis_json(tmp_path):
    original = tmp_path / "original"
    for image in ("2248275918", "3416050480", "4564320256"):
        picture(original / "flickr30k_images" / f"{image}.jpg")
    (original / "annotations").mkdir()
    write_lines(original / "annotations" / "snli_ve_train.jsonl", [
        {"gold_label": "entailment", "sentence2": "Two people are outside.", "Flickr30K_ID": "2248275918",
         "pairID": "2248275918.jpg#2r1e", "sentence1": "Two people walk.", "annotator_labels": ["entailment"]},
        {"gold_label": "-", "sentence2": "Nobody agrees on this.", "Flickr30K_ID": "2248275918"},
        {"gold_label": "contradiction", "sentence2": "A cat sleeps.", "Flickr30K_ID": "3416050480"},
    ])
    write_lines(original / "annotations" / "snli_ve_test.jsonl", [
        {"gold_label": "neutral", "sentence2": "They are friends.", "Flickr30K_ID": "4564320256"}])
    world = read_snli_ve(original)
    assert [u.unit_id for u in world.train] == ["2248275918", "3416050480"]
    assert world.train[0].texts == ["Two people are outside."]  # the "-" hypothesis is dropped
    assert world.train[0].text_ids == ["2248275918.jpg#2r1e"] and world.val == []
    assert [u.labels for u in world.train] == [[0], [2]] and world.test[0].labels == [1]

    lavis = tmp_path / "lavis"
    for image in ("2248275918", "4564320256"):
        picture(lavis / f"{image}.jpg")
    (lavis / "ve_train.json").write_text(json.dumps([
        {"image": "2248275918", "sentence": "Two people are outside.", "label": "entailment"},
        {"image": "2248275918", "sentence": "They are asleep.", "label": "contradiction"}]))
    (lavis / "ve_test.json").write_text(json.dumps([{"image": "4564320256", "sentence": "x", "label": "neutral"}]))
    world = read_snli_ve(lavis)
    assert len(world.train) == 1 and world.train[0].labels == [0, 2]


def test_foreign_nlvr2_original_jsonl_and_lavis_json(tmp_path):
    original = tmp_path / "original"
    picture(original / "images" / "train" / "52" / "train-10171-0-img0.png")
    picture(original / "images" / "train" / "52" / "train-10171-0-img1.png", (0, 0, 200))
    picture(original / "dev" / "dev-850-0-img0.png")
    picture(original / "dev" / "dev-850-0-img1.png")
    picture(original / "test1" / "test1-0-1-img0.png")
    picture(original / "test1" / "test1-0-1-img1.png")
    # NLVR2 ships its jsonl files as .json
    write_lines(original / "train.json", [
        {"identifier": "train-10171-0-0", "directory": 52, "sentence": "One image shows a dog.", "label": "True",
         "writer": "52", "synset": "dog", "left_url": "http://x", "right_url": "http://y"},
        {"identifier": "train-10171-0-1", "directory": 52, "sentence": "Both images show cats.", "label": "False"}])
    write_lines(original / "dev.json", [{"identifier": "dev-850-0-0", "sentence": "s", "label": "True"}])
    write_lines(original / "test1.json", [{"identifier": "test1-0-1-2", "sentence": "t", "label": "False"}])
    world = read_nlvr2(original)
    assert [u.unit_id for u in world.train] == ["train-10171-0"] and world.train[0].labels == [1, 0]
    assert world.train[0].text_ids == ["train-10171-0-0", "train-10171-0-1"]
    assert world.train[0].images[1].open().getpixel((0, 0)) == (0, 0, 200)
    assert [u.unit_id for u in world.val] == ["dev-850-0"] and [u.unit_id for u in world.test] == ["test1-0-1"]

    lavis = tmp_path / "lavis"
    picture(lavis / "images" / "train" / "52" / "train-10171-0-img0.png")
    picture(lavis / "images" / "train" / "52" / "train-10171-0-img1.png")
    rows = [{"images": ["./images/train/52/train-10171-0-img0.png", "./images/train/52/train-10171-0-img1.png"],
             "sentence": "One image shows a dog.", "label": "True"}]
    (lavis / "nlvr_train.json").write_text(json.dumps(rows))
    (lavis / "nlvr_test.json").write_text(json.dumps(rows))
    world = read_nlvr2(lavis)
    assert [u.unit_id for u in world.train] == ["train-10171-0"] and world.train[0].labels == [1]


def test_malformed_records_name_file_and_line(tmp_path):
    picture(tmp_path / "2248275918.jpg")
    write_lines(tmp_path / "snli_ve_train.jsonl", [
        {"gold_label": "entailment", "sentence2": "ok", "Flickr30K_ID": "2248275918"},
        {"gold_label": "maybe", "sentence2": "bad", "Flickr30K_ID": "2248275918"}])
    write_lines(tmp_path / "snli_ve_test.jsonl", [])
    with pytest.raises(SpecError, match=r"snli_ve_train.jsonl line 2: its label 'maybe' is not one of entailment"):
        read_snli_ve(tmp_path)
    write_lines(tmp_path / "snli_ve_train.jsonl", [{"label_gold": "entailment", "sentence2": "ok", "Flickr30K_ID": "2248275918"}])
    with pytest.raises(SpecError, match=r"snli_ve_train.jsonl line 1: has no label \(gold_label or label"):
        read_snli_ve(tmp_path)   # it read "its label None is not one of entailment, ..."
    (tmp_path / "snli_ve_train.jsonl").write_text('{"gold_label": "entailment"}\n{not json\n')
    with pytest.raises(SpecError, match=r"snli_ve_train.jsonl line 1: has no image id"):
        read_snli_ve(tmp_path)
    (tmp_path / "snli_ve_train.jsonl").write_text(
        json.dumps({"gold_label": "neutral", "sentence2": "x", "Flickr30K_ID": "2248275918"}) + "\n{not json\n")
    with pytest.raises(SpecError, match=r"snli_ve_train.jsonl line 2: not JSON"):
        read_snli_ve(tmp_path)
    (tmp_path / "nlvr_train.json").write_text(json.dumps([{"images": ["a.png", "b.png"], "sentence": "s", "label": "yes"}]))
    (tmp_path / "nlvr_test.json").write_text("[]")
    with pytest.raises(SpecError, match=r"nlvr_train.json record 1: its label 'yes' is not True or False"):
        read_nlvr2(tmp_path)
    (tmp_path / "nlvr_train.json").write_text(json.dumps([{"images": ["a.png", "b.png"], "sentence": "s", "label": "True"}]))
    with pytest.raises(SpecError, match=r"nlvr_train.json record 1: the images a.png and b.png are missing"):
        read_nlvr2(tmp_path)


def test_id_file_naming_a_missing_unit_is_refused_with_its_name(tmp_path):
    world = build_nlvr2_world("shapes-nlvr2-tiny")
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{world.train[3].unit_id}\ntrain-99999-0\n")
    with pytest.raises(SpecError, match="unknown unit id train-99999-0"):
        select_units(world.train, {"strategy": "ids", "file": str(ids), "seed": 0})
    ids.write_text(f"{world.train[3].unit_id}\n")
    assert select_units(world.train, {"strategy": "ids", "file": str(ids), "seed": 0}) == [3]
    chosen = select_units(build_ve_world("shapes-ve-tiny").train, {"strategy": "query", "query": "made of", "n": 4,
                                                                   "seed": 0})
    assert len(chosen) == 4  # queries read hypotheses as they read captions


def test_file_data_without_a_pretraining_corpus_says_the_tiny_model_starts_from_scratch(tmp_path):
    """An export of shapes-nlvr2-tiny trained blip-tiny from random weights with no word, its numbers differed from
    the built-in world's, and the original's recipe still recorded the pre-training it never ran."""
    from engine.spec import validate
    from engine.tasks.classification import Classification

    write_nlvr2(small(build_nlvr2_world("shapes-nlvr2-tiny")), tmp_path / "nlvr2")
    logged = []
    spec = validate({"method": "ft", "model": "blip-tiny", "data": f"nlvr2:{tmp_path / 'nlvr2'}", "device": "cpu",
                     "deletion": {"strategy": "random", "n": 2, "seed": 0}})
    task = Classification(spec, lambda kind, **fields: logged.append((kind, fields)), lambda: False, None)
    assert "pretrain" not in task.original_recipe()
    assert any(kind == "log" and fields["level"] == "warning" and "starts from random weights" in fields["message"]
               for kind, fields in logged)
    built_in = Classification(validate({**spec, "data": "shapes-nlvr2-tiny"}), lambda *a, **k: None, lambda: False, None)
    assert "pretrain" in built_in.original_recipe()
    # graphs have no pre-training corpus built in or exported: nothing differs, nothing to say (it warned on
    # graph-tiny itself of "file data")
    graph_logs = []
    Classification(validate({**spec, "model": "gcn-bert-tiny", "data": "graph-tiny"}),
                   lambda kind, **fields: graph_logs.append(kind), lambda: False, None)
    assert "log" not in graph_logs


def test_nlvr2_files_take_the_released_nlvr2_batch_and_blip_rate(tmp_path):
    """The released MultiDelete unlearns BLIP on NLVR2 at 5e-6 with a Df batch of 8 (ANCHORS.md s. 1); a real
    checkpoint on `nlvr2:DIR` took ALBEF's 2e-5 and the common 16. The built-in worlds keep their own recipes."""
    from engine.spec import validate
    from engine.tasks.classification import RECIPES, Classification

    write_nlvr2(small(build_nlvr2_world("shapes-nlvr2-tiny")), tmp_path / "nlvr2")
    files = {"method": "ft", "model": "blip-tiny", "data": f"nlvr2:{tmp_path / 'nlvr2'}", "device": "cpu",
             "deletion": {"strategy": "random", "n": 2, "seed": 0}}
    spec = validate(files)
    assert spec["params"]["batch_size"] == 8 and spec["params"]["retain_batch_size"] == 64
    assert validate({**files, "params": {"batch_size": 12}})["params"]["batch_size"] == 12  # a given one stays
    assert validate({**files, "data": "shapes-nlvr2-tiny"})["params"]["batch_size"] == 16
    checkpoint = {**spec, "model": str(tmp_path / "blip-nlvr2-checkpoint")}   # not a registered tiny model
    quiet = lambda *a, **k: None  # noqa: E731
    assert Classification(checkpoint, quiet, lambda: False, None).recipe == RECIPES["pretrained:nlvr2"]
    assert RECIPES["pretrained:nlvr2"]["unlearn_lr"] == 5e-6 and RECIPES["pretrained"]["unlearn_lr"] == 2e-5
