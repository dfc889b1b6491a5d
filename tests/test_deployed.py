"""The deployed model and its base (ANCHORS.md section 5; engine/spec/lineage.py).

`--original CKPT` unlearns a deployed model as it is (nothing trained for it); `--model` stays the base Retrain
trains on Dr. A base that already saw the data to forget from is refused before anything trains: every
checkpoint the workbench saves says what it was trained on.
"""
from __future__ import annotations

import json
import shutil

import pytest

from engine.spec.lineage import LINEAGE_FILE, read_lineage, saw

from conftest import run_in_process

RUN = ("--data", "shapes-tiny", "--delete", "8", "--seed", "42", "--json")


def run_cli(home, *args):
    return run_in_process(home, "run", *args)


@pytest.fixture(scope="module")
def trained(shared_home):
    """A FT run on shapes-tiny from clip-tiny: its original (cached) and its output checkpoint."""
    out = run_cli(shared_home, "--method", "ft", "--model", "clip-tiny", "--epochs", "1", *RUN)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_saved_checkpoints_say_what_they_were_trained_on(trained):
    output = read_lineage(trained["checkpoint"])
    assert (__import__("pathlib").Path(trained["checkpoint"]) / LINEAGE_FILE).is_file()
    assert saw(output, data_ref="shapes-tiny") and saw(output, fingerprint=trained["fingerprints"]["data"])
    # (an original cached before lineage files is read from its cache key, which names the data by fingerprint)
    assert saw(read_lineage(trained["original_checkpoint"]), fingerprint=trained["fingerprints"]["data"]) is not None
    assert trained["base"]["model"] == "clip-tiny" and trained["original"] == {
        "model": trained["original_checkpoint"], "fingerprint": trained["original"]["fingerprint"], "given": False}


@pytest.mark.parametrize("which", ["original_checkpoint", "checkpoint"])
def test_a_base_that_saw_the_data_is_refused_before_anything_runs(shared_home, tmp_path, trained, which):
    home = tmp_path / "home"
    out = run_cli(home, "--method", "retrain", "--model", trained[which], *RUN)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--original" in lines[0] and "trained on shapes-tiny" in lines[0], out.stderr
    assert not (home / "sessions").exists() or not any((home / "sessions").glob("*.json"))  # no session written


def test_a_copied_base_is_refused_by_content(trained, tmp_path):
    """A copy of the original elsewhere keeps its lineage; the engine's check compares the data's fingerprint."""
    from engine.errors import SpecError
    from engine.preflight import check_base

    copy = tmp_path / "renamed"
    shutil.copytree(trained["checkpoint"], copy)
    lineage = json.loads((copy / LINEAGE_FILE).read_text())
    for entry in lineage["trained_on"]:
        entry["data_ref"] = "somewhere-else"  # validation's comparison by reference cannot see it
    (copy / LINEAGE_FILE).write_text(json.dumps(lineage))
    with pytest.raises(SpecError, match="--original"):
        check_base({"model": str(copy), "data": "shapes-tiny"})
    check_base({"model": str(copy), "data": "shapes-ve-tiny"})  # other data: a fine base


def test_a_checkpoint_trained_on_the_people_is_not_taken_for_pretrained_knowledge(tmp_path):
    """`pulse --model DIR` on people-tiny, DIR a LLaVA the workbench fine-tuned on those people: scored as a
    pretrained checkpoint it 'answered none of the 8 people' and the run failed (exit 1, a failed session); it is
    refused up front, pointing to --original. A checkpoint with no lineage (a real LLaVA) is not."""
    from engine.data.fingerprint import data_fingerprint, data_identity
    from engine.errors import SpecError
    from engine.preflight import check_base
    from engine.spec.lineage import write_lineage

    deployed = tmp_path / "deployed-llava"
    deployed.mkdir()
    write_lineage(deployed, [{"data": data_fingerprint("people-tiny"), "identity": data_identity("people-tiny"),
                              "data_ref": "people-tiny", "task": "multiple_choice"}])
    spec = {"model": str(deployed), "data": "people-tiny", "knowledge": "pretrained"}
    with pytest.raises(SpecError, match=rf"--model {deployed} was trained on people-tiny .* fine-tuned knowledge, not "
                                        rf"pretrained; pass it as --original {deployed}"):
        check_base(spec)
    check_base({**spec, "model": str(tmp_path / "real-llava")})  # no lineage: its pretrained knowledge is scored


def test_original_unlearns_the_deployed_model_as_it_is(shared_home, trained):
    from sessions.store import SessionStore

    deployed = trained["original_checkpoint"]
    out = run_cli(shared_home, "--method", "multidelete", "--model", "clip-tiny", "--original", deployed, "--epochs", "1",
                  *RUN)  # one epoch: the test is about which model is unlearned, not how far
    assert out.returncode == 0, out.stderr
    document = json.loads(out.stdout)
    assert document["original"]["model"] == deployed and document["original"]["given"] is True
    assert document["original_checkpoint"] == deployed and document["base"]["model"] == "clip-tiny"
    phases = [e["name"] for e in SessionStore(shared_home).events(document["session"]) if e["kind"] == "phase"]
    assert phases and not any(name.startswith("original") for name in phases), phases
    assert document["original_metrics"] == trained["original_metrics"]  # the same model, evaluated the same way


def test_original_is_checked_like_a_model(shared_home, tmp_path):
    for original, expected in (("clip-tiny", "registered starting model"), (str(tmp_path / "none"), "does not exist")):
        out = run_cli(shared_home, "--method", "ft", "--model", "clip-tiny", "--original", original, *RUN)
        assert out.returncode == 2 and expected in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_the_refusal_names_the_data_the_lineage_holds_when_another_path_has_the_same_content():
    """A copy of the data kept its fingerprint, and the refusal said the model was trained on the copy."""
    from engine.spec.lineage import trained_on_data_message

    said = trained_on_data_message("/m/deployed", "flickr30k:/data/copy", "flickr30k:/data/fl")
    assert said.startswith("--model /m/deployed was trained on flickr30k:/data/fl (the same data as --data "
                           "flickr30k:/data/copy, by content), the data this run forgets from")
    assert "trained on shapes-tiny, the data" in trained_on_data_message("/m/d", "shapes-tiny", "shapes-tiny")


def test_an_original_trained_for_another_task_is_refused(tmp_path):
    """A BLIP the workbench fine-tuned for SNLI-VE classification, given as --original to a COCO retrieval run, was
    unlearned at chance as if it were the deployed model (its retrieval heads are new)."""
    import pytest

    from engine.errors import SpecError
    from engine.preflight import check_original_task
    from engine.spec.lineage import write_lineage

    checkpoint = tmp_path / "ve-original"
    checkpoint.mkdir()
    write_lineage(checkpoint, [{"data": "f00", "data_ref": "snli-ve:/data/ve", "task": "classification"}])
    with pytest.raises(SpecError, match=f"--original {checkpoint} was trained for classification "
                                        r"\(its mmul-lineage.json\), and this run unlearns retrieval"):
        check_original_task({"original": str(checkpoint), "task": "retrieval"})
    check_original_task({"original": str(checkpoint), "task": "classification"})
    check_original_task({"original": str(tmp_path / "no-lineage"), "task": "retrieval"})  # not ours: nothing known


def test_an_original_classifier_without_a_head_for_the_datas_labels_is_refused(tmp_path):
    """A SNLI-VE classifier given as --original to an NLVR2 run loaded with a fresh head, at chance (test accuracy
    47.5 on two classes), and was unlearned as the deployed model; a head that fits passes."""
    import json

    import pytest

    from engine.data.registry import load_data
    from engine.errors import SpecError
    from engine.preflight import check_original_head

    nlvr2 = load_data("shapes-nlvr2-tiny")
    checkpoint = tmp_path / "ve-classifier"
    checkpoint.mkdir()
    ve_head = {"id2label": {"0": "entailment", "1": "neutral", "2": "contradiction"}, "images_per_example": 1}
    (checkpoint / "config.json").write_text(json.dumps(ve_head))
    spec = {"original": str(checkpoint), "task": "classification", "data": "shapes-nlvr2-tiny"}
    with pytest.raises(SpecError, match=rf"--original {checkpoint} has no classification head for shapes-nlvr2-tiny "
                                        r"\(its head answers labels entailment, neutral, contradiction over 1 image"):
        check_original_head(spec, nlvr2)
    labels = nlvr2.model_options()["labels"]
    (checkpoint / "config.json").write_text(json.dumps({"id2label": dict(enumerate(labels)), "images_per_example": 2}))
    check_original_head(spec, nlvr2)
    check_original_head({**spec, "task": "retrieval"}, nlvr2)  # a retrieval run reads no head


def test_a_model_trained_on_a_folder_is_refused_on_a_plain_copy_of_it(tmp_path):
    """`cp -r` gives the copy new file times, hence another fingerprint, and a deployed model given as --model on
    the copy went on to train an original from weights that had seen every Df pair."""
    import os
    import shutil

    import pytest

    from engine.data.fingerprint import data_fingerprint, data_identity
    from engine.errors import SpecError
    from engine.preflight import check_base
    from engine.spec.lineage import write_lineage

    source = tmp_path / "fl"
    source.mkdir()
    (source / "flickr30k_train.json").write_text('[{"image": "0.png", "caption": ["a red thing"]}]')
    (source / "0.png").write_bytes(b"\x89PNG" + bytes(60))
    deployed = tmp_path / "deployed"
    deployed.mkdir()
    write_lineage(deployed, [{"data": data_fingerprint(f"flickr30k:{source}"), "data_ref": f"flickr30k:{source}",
                              "identity": data_identity(f"flickr30k:{source}"), "task": "retrieval"}])
    copy = tmp_path / "copy"
    shutil.copytree(source, copy, copy_function=shutil.copyfile)   # as `cp -r`: new modification times
    for name in ("flickr30k_train.json", "0.png"):
        os.utime(copy / name, ns=(1, 1))
    assert data_fingerprint(f"flickr30k:{copy}") != data_fingerprint(f"flickr30k:{source}")
    with pytest.raises(SpecError, match=f"was trained on flickr30k:{source} \\(the same data as --data flickr30k:{copy}"):
        check_base({"model": str(deployed), "data": f"flickr30k:{copy}"})
    (copy / "flickr30k_train.json").write_text('[{"image": "0.png", "caption": ["a blue thing"]}]')   # other data
    check_base({"model": str(deployed), "data": f"flickr30k:{copy}"})


def test_an_original_with_nan_weights_is_named_as_such(shared_home, trained, tmp_path):
    """An --original holding nan weights failed with "loss became nan after the last update ... lower --lr" at
    step 0, before any update: the run's cause was the checkpoint given."""
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "diverged"
    shutil.copytree(trained["original_checkpoint"], broken)
    weights = load_file(broken / "model.safetensors")
    first = next(iter(weights))
    weights[first] = weights[first] * float("nan")
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    out = run_cli(shared_home, "--method", "ft", "--model", "clip-tiny", "--original", str(broken), "--epochs", "1", *RUN)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert f"the original {broken} holds nan or inf weights before anything is unlearned" in last, last
    assert "lower --lr" not in last
