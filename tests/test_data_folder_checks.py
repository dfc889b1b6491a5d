"""An operator's own data folder (FORMAT:PATH), refused or failed the way the README's exit codes say: what makes
a folder unusable is refused as it is read (exit 2, no session), what only a run can find (an image that does
not decode) fails that run (exit 1, its session kept), and `data info --decode-images` finds such images up
front."""
import json
import shutil
from pathlib import Path

import pytest

from conftest import run_in_process
from engine.data.flickr30k import write_flickr30k
from engine.data.registry import load_data
from engine.data.shapes import build_shapes_world
from engine.errors import SpecError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("flickr")
    write_flickr30k(build_shapes_world("shapes-tiny"), root)
    return root


def copy_of(folder, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def records(path):
    return json.loads(path.read_text())


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_empty_train_or_test_split_is_refused_as_read(folder, tmp_path, split):
    """An empty test split was read, then the run failed in torch.cat after the original had trained; an empty
    train split was told to choose `--delete N < 0`."""
    data = copy_of(folder, tmp_path)
    (data / f"flickr30k_{split}.json").write_text("[]")
    with pytest.raises(SpecError, match=f"its {split} split has no units"):
        load_data(f"flickr30k:{data}")
    out = run_in_process(tmp_path / "home", "data", "info", f"flickr30k:{data}")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and f"its {split} split has no units" in out.stderr
    (data / f"flickr30k_{split}.json").write_text((folder / f"flickr30k_{split}.json").read_text())
    (data / "flickr30k_val.json").write_text("[]")   # an empty val split is fine
    assert load_data(f"flickr30k:{data}").val == []


def test_a_unit_in_two_splits_and_an_empty_caption_are_refused(folder, tmp_path):
    data = copy_of(folder, tmp_path)
    test = records(data / "flickr30k_test.json")
    test[0]["image"] = records(data / "flickr30k_train.json")[0]["image"]  # a test record on a training image
    (data / "flickr30k_test.json").write_text(json.dumps(test))
    with pytest.raises(SpecError, match=f"unit '{test[0]['image']}' is in both the train and the test split"):
        load_data(f"flickr30k:{data}")
    shutil.copy(folder / "flickr30k_test.json", data / "flickr30k_test.json")
    train = records(data / "flickr30k_train.json")
    train[3]["caption"] = "   "
    (data / "flickr30k_train.json").write_text(json.dumps(train))
    with pytest.raises(SpecError, match=f"train unit '{train[3]['image']}' has an empty text"):
        load_data(f"flickr30k:{data}")


def test_a_record_given_twice_is_refused_not_merged(folder, tmp_path):
    """A val record given twice made a unit of 10 captions; an NLVR2 line given twice one more text."""
    from engine.data.nlvr2 import write_nlvr2
    from engine.data.shapes_nlvr2 import build_nlvr2_world

    data = copy_of(folder, tmp_path)
    val = records(data / "flickr30k_val.json")
    (data / "flickr30k_val.json").write_text(json.dumps(val + [val[2]]))
    with pytest.raises(SpecError, match=f"record {len(val) + 1}: image {val[2]['image']} has a record already "
                                        r"\(record 3\)"):
        load_data(f"flickr30k:{data}")
    pairs = tmp_path / "nlvr2"
    write_nlvr2(build_nlvr2_world("shapes-nlvr2-tiny"), pairs)
    lines = (pairs / "train.json").read_text().splitlines(keepends=True)
    (pairs / "train.json").write_text("".join(lines + lines[:1]))
    with pytest.raises(SpecError, match=f"holds the text '{json.loads(lines[0])['identifier']}' twice"):
        load_data(f"nlvr2:{pairs}")

@pytest.mark.parametrize("flags", [["--keep", "best"], ["--stop-if", "df_dr_auc>0.9"], ["--tune"]])
def test_what_judges_on_validation_is_refused_before_a_session_on_data_without_it(folder, tmp_path, flags):
    """They found the empty val split only once the session had started (exit 2, a failed session left)."""
    data = copy_of(folder, tmp_path)
    (data / "flickr30k_val.json").write_text("[]")
    home = tmp_path / "home"
    out = run_in_process(home, "run", "--method", "ft", "--model", "clip-tiny", "--data", f"flickr30k:{data}",
                         "--delete", "4", *flags)
    assert out.returncode == 2, out.stderr
    assert "has no validation units" in out.stderr and flags[0] in out.stderr.splitlines()[-1]
    listed = run_in_process(home, "sessions", "list", "--json")
    assert listed.returncode == 0 and not json.loads(listed.stdout)["sessions"]   # no session was made
    from engine.preflight import check_validation_split   # the field a form flags is the flag given
    with pytest.raises(SpecError) as refused:
        check_validation_split({"data": "x", "params": {"stop_if": "df_dr_auc>0.9"}}, load_data(f"flickr30k:{data}"))
    assert refused.value.field == "stop_if"


def test_an_image_that_does_not_decode_fails_the_run_keeping_its_session_and_decode_images_finds_it(
        folder, tmp_path, home):
    data = copy_of(folder, tmp_path)
    victim = data / records(data / "flickr30k_train.json")[0]["image"]
    victim.write_bytes(victim.read_bytes()[:50])   # a PNG cut short: its signature is right
    out = run_in_process(home, "run", "--method", "ft", "--model", "clip-tiny", "--data", f"flickr30k:{data}",
                         "--delete", "4", "--json")
    assert out.returncode == 1, out.stderr   # 2 would say no session was made
    document = json.loads(out.stdout)
    assert document["state"] == "failed" and "image file is truncated" in document["error"]
    assert f"session {document['session']} kept" in out.stderr and str(victim) in out.stderr
    found = run_in_process(home, "data", "info", f"flickr30k:{data}", "--decode-images", "--json")
    assert found.returncode == 2 and found.stderr.count("\n") == 1
    assert json.loads(found.stdout)["images"]["failed"] == [{"path": str(victim), "reason": "image file is truncated"}]
    fine = run_in_process(home, "data", "info", f"flickr30k:{folder}", "--decode-images")
    assert fine.returncode == 0 and "232 of 232 images decode" in fine.stdout



def test_a_path_of_the_wrong_kind_is_named_for_what_it_is(folder, tmp_path):
    """A Karpathy file given for its folder read "FILE has no flickr30k_train.json"; a folder given to graph-text
    "does not exist"; an ID file that is a folder "does not exist"; `flickr30k:` read the current directory."""
    home = tmp_path / "home"
    graphs = tmp_path / "graphs"
    assert run_in_process(home, "data", "export", "graph-tiny", "--format", "graph-text", str(graphs)).returncode == 0
    cases = {
        ("data", "info", f"flickr30k:{folder}/flickr30k_train.json"):
            f"is a file, and flickr30k reads a folder (its annotation files and images); give flickr30k:{folder}",
        ("data", "info", f"graph-text:{graphs}"): "is a directory, and graph-text reads one file (it holds graph-tiny",
        ("data", "info", "flickr30k:"): "flickr30k: names no path; give flickr30k:DIR",
        ("data", "info", f"mmbench:{folder}/flickr30k_train.json"): "lacks the MMBench column(s) index, question",
        ("run", "--method", "ft", "--model", "clip-tiny", "--data", f"mllmu:{folder}", "--delete", "4"):
            "mllmu data is not what `run` unlearns: MLLMU-Bench parquet folder; give it to `mmul-workbench pulse",
        ("run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete-ids", str(folder)):
            f"deletion ID file {folder} is a directory",
        ("data", "export", "shapes-tiny", "--format", "coco", "/proc/no-such-place"):
            "cannot make the directory /proc/no-such-place",
    }
    for args, words in cases.items():
        out = run_in_process(home, *args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and words in out.stderr, (args, out.stderr)


def test_data_info_on_people_data_counts_people_and_questions(tmp_path):
    """It printed `total 0 units 0 texts` for a folder `pulse` then trained on."""
    home, people = tmp_path / "home", tmp_path / "people"
    assert run_in_process(home, "data", "export", "people-tiny", "--format", "mllmu", str(people)).returncode == 0
    out = run_in_process(home, "data", "info", f"mllmu:{people}", "--json")
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)["people"]
    assert counts["people"] == 10 and counts["questions"] > 0 and counts["training_items"] > 0


def test_a_byte_order_mark_is_read_and_a_wrong_label_is_quoted(tmp_path):
    """A UTF-8 BOM (some editors write one) was refused with Python's 'decode using utf-8-sig'; a wrong label was
    refused without saying what it was."""
    from engine.data.snli_ve import read_snli_ve, write_snli_ve
    from engine.data.shapes_ve import build_ve_world

    data = tmp_path / "ve"
    write_snli_ve(build_ve_world("shapes-ve-tiny"), data)
    train = data / "snli_ve_train.jsonl"
    text = train.read_text()
    train.write_text(text, encoding="utf-8-sig")
    assert len(read_snli_ve(data).train) == len(build_ve_world("shapes-ve-tiny").train)
    first = json.loads(text.splitlines()[0])
    train.write_text(json.dumps({**first, "gold_label": "entails"}) + "\n" + text)
    with pytest.raises(SpecError, match="line 1: its label 'entails' is not one of entailment"):
        read_snli_ve(data)


def test_a_study_stops_at_an_image_that_does_not_decode(folder, tmp_path):
    """Bad input found while running became exit 1, and a study took exit 1 for a failed run and went on: every
    cell rebuilt its original and failed on the same image."""
    data = copy_of(folder, tmp_path)
    victim = data / records(data / "flickr30k_train.json")[0]["image"]
    victim.write_bytes(victim.read_bytes()[:50])
    home = tmp_path / "home"
    out = run_in_process(home, "study", "--methods", "retrain,ft", "--seeds", "42", "--model", "clip-tiny",
                         "--data", f"flickr30k:{data}", "--delete", "4")
    assert out.returncode == 1 and "image file is truncated" in out.stderr.splitlines()[-1]
    listed = json.loads(run_in_process(home, "sessions", "list", "--json").stdout)["sessions"]
    assert len(listed) == 1 and listed[0]["state"] == "failed"   # the first cell; the second never started



def test_a_graph_text_file_without_splits_that_hashes_all_to_train_says_so(tmp_path):
    """It was refused as "its test split has no units", with no word that the split had been made by id."""
    path = tmp_path / "two.jsonl"
    records_ = [{"id": name, "graph": {"nodes": [{"type": "C"}], "edges": []}, "texts": ["a carbon"]}
                for name in ("a", "b")]
    path.write_text("".join(json.dumps(record) + "\n" for record in records_))
    with pytest.raises(SpecError, match=r"its test split has no units \(no record names a `split`, so its records "
                                        "were split by id"):
        load_data(f"graph-text:{path}")


def test_a_missing_nlvr2_image_names_the_folders_looked_in(tmp_path):
    """It said the images were missing under the folder, not which of its six places were searched, nor which of
    the pair's two images was gone."""
    from engine.data.nlvr2 import write_nlvr2
    from engine.data.shapes_nlvr2 import build_nlvr2_world

    pairs = tmp_path / "nlvr2"
    write_nlvr2(build_nlvr2_world("shapes-nlvr2-tiny"), pairs)
    first = json.loads((pairs / "train.json").read_text().splitlines()[0])
    for image in pairs.rglob(f"{first['identifier'].rsplit('-', 1)[0]}-img0.png"):
        image.unlink()
    pair = first["identifier"].rsplit("-", 1)[0]
    with pytest.raises(SpecError, match=rf"the image {pair}-img0.png of {first['identifier']} is missing under {pairs} "
                                        rf"\(looked in {pairs}, {pairs}/images, {pairs}/train, {pairs}/images/train"):
        load_data(f"nlvr2:{pairs}")


def test_flickr30k_pictures_unpacked_as_the_shared_download_does_are_found(folder, tmp_path):
    """The widely shared Flickr30K download unpacks flickr30k_images/ (underscore); the LAVIS annotations name
    flickr30k-images/, and the reader looked only where the annotation said."""
    data = copy_of(folder, tmp_path)
    first = records(data / "flickr30k_train.json")[0]["image"]   # shapes-images/000000.png in the export
    (data / "flickr30k_images").mkdir()
    for image in (data / Path(first).parent).iterdir():
        image.rename(data / "flickr30k_images" / image.name)
    world = load_data(f"flickr30k:{data}")
    assert world.train[0].image.path == str(data / "flickr30k_images" / Path(first).name)
    (data / "flickr30k_images" / Path(first).name).unlink()
    with pytest.raises(SpecError, match=rf"looked for it as listed, and for {Path(first).name} in \., images, "
                                        "flickr30k-images, flickr30k_images"):
        load_data(f"flickr30k:{data}")
