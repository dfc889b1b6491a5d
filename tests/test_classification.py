"""Image-text classification: the per-class Df/Dr AUC by hand, the tiny BLIP classifier through
save_pretrained / from_pretrained (and a retrieval BLIP loaded with a fresh head), and a run per world
through the CLI's app (in this process) on the -tiny worlds."""
import json

import numpy as np
import pytest
import torch

from conftest import run_in_process
from engine.data.pairs import TensorBank, encode_units
from engine.data.shapes_nlvr2 import build_nlvr2_world
from engine.data.shapes_ve import build_ve_world
from engine.metrics.auc import class_df_dr_auc
from engine.models.registry import load_adapter, tiny_model_dir


def test_class_auc_by_hand():
    # 2 Df and 2 Dr examples, 3 classes. Class 0: Df [.1,.6] vs Dr [.5,.9] -> pairs (Df < Dr): .1<.5, .1<.9,
    # .6>.5, .6<.9 = 3/4. Class 1: Df [.8,.3] vs Dr [.4,.05] -> only .3<.4 = 1/4. Class 2: Df [.1,.1] vs
    # Dr [.1,.05] -> .1=.1 ties count half: 0.5+0+0.5+0 = 1/4. Mean (3/4 + 1/4 + 1/4) / 3 = 5/12.
    df = np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    dr = np.array([[0.5, 0.4, 0.1], [0.9, 0.05, 0.05]])
    assert class_df_dr_auc(df, [dr]) == pytest.approx(5 / 12)
    assert class_df_dr_auc(df, [dr, dr]) == pytest.approx(5 / 12)  # the mean over the chunks
    # two classes: p_0 = 1 - p_1 would make the two AUCs sum to 1, so the positive class alone is scored
    df2, dr2 = np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([[0.2, 0.8], [0.5, 0.5]])
    assert class_df_dr_auc(df2, [dr2]) == pytest.approx(1.0)


def test_class_auc_reads_confidence_not_which_class():
    """Why a Retrain can sit at 50 on the classification worlds (docs/pages/results.md, "Can each built-in world
    show forgetting?"): with 3 or more classes, confident (one-hot) predictions give exactly 0.5 whichever classes
    Df and Dr are predicted as, since class c's AUC is 0.5 + (share of Dr in c - share of Df in c) / 2 and both
    shares sum to 1 over the classes; only a Df predicted less (or more) confidently than Dr moves it. With two
    classes the positive class's AUC follows the predicted classes instead."""
    one_hot = np.eye(3)
    dr = one_hot[[0, 1, 2, 0, 1, 2]]
    for df_classes in ([0, 0, 0, 0], [1, 2, 2, 2], [0, 1, 2, 0]):
        assert class_df_dr_auc(one_hot[df_classes], [dr]) == pytest.approx(0.5), df_classes
    unsure = np.full((4, 3), 1 / 3)  # Df at chance: below each class's Dr examples, above none
    assert class_df_dr_auc(unsure, [dr]) == pytest.approx(1 / 3)
    binary = np.eye(2)
    assert class_df_dr_auc(binary[[0, 0, 0, 0]], [binary[[0, 1, 0, 1]]]) == pytest.approx(0.75)  # Df all "False"
    assert class_df_dr_auc(binary[[0, 1, 0, 1]], [binary[[0, 1, 0, 1]]]) == pytest.approx(0.5)


@pytest.mark.parametrize("build,name,classes,images", [(build_ve_world, "shapes-ve-tiny", 3, 1),
                                                       (build_nlvr2_world, "shapes-nlvr2-tiny", 2, 2)])
def test_blip_classifier_round_trip(tmp_path, build, name, classes, images):
    world = build(name)
    directory = tiny_model_dir("blip-tiny", world, seed=3, cache=tmp_path, task="classification")
    config = json.loads((directory / "config.json").read_text())
    assert config["architectures"] == ["BlipForImageTextClassification"] and config["images_per_example"] == images
    adapter = load_adapter(str(directory), world, seed=3, cache=tmp_path, task="classification")
    assert not adapter.head_initialised and not hasattr(adapter, "similarity")  # MultiDelete regresses f(I, T)
    head = adapter.model.classifier[-1]
    assert head.out_features == classes and adapter.model.classifier[0].in_features == 64 * images
    pairs = encode_units(world.train[:3], adapter)
    assert isinstance(pairs.media, TensorBank) and pairs.media.values.shape[:2] == ((3, 2) if images == 2 else (3, 3))
    batch = pairs.batch(torch.arange(len(pairs)), torch.device("cpu"))
    n = len(pairs)
    assert adapter.class_logits(batch).shape == (n, classes) and adapter.fused_embed(batch).shape == (n, 64 * images)
    assert adapter.image_embed(batch).shape == (n, 64 * images) and adapter.text_embed(batch).shape == (n, 64)
    loss = adapter.task_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and head.weight.grad is not None
    log_p = adapter.log_likelihood(batch)
    assert torch.allclose(-log_p.mean(), loss, atol=1e-5)
    # the head saves and loads with the encoders
    with torch.no_grad():
        head.weight.add_(1.0)
    adapter.save(tmp_path / "saved")
    again = load_adapter(str(tmp_path / "saved"), world, seed=3, cache=tmp_path, task="classification")
    assert torch.equal(again.model.classifier[-1].weight, head.weight)


def test_retrieval_blip_loads_with_a_fresh_head(tmp_path):
    world = build_ve_world("shapes-ve-tiny")
    retrieval = tiny_model_dir("blip-tiny", world, seed=3, cache=tmp_path, task="retrieval")
    adapter = load_adapter(str(retrieval), world, seed=3, cache=tmp_path, task="classification")
    assert adapter.head_initialised and adapter.model.classifier[-1].out_features == 3
    itm = load_adapter(str(retrieval), world, seed=3, cache=tmp_path, task="retrieval")
    # the encoders come from the checkpoint
    assert torch.equal(adapter.model.text_encoder.embeddings.word_embeddings.weight,
                       itm.model.text_encoder.embeddings.word_embeddings.weight)


@pytest.fixture
def one_epoch_recipes(monkeypatch):
    """The tiny classification recipes cut to one epoch of pre-training and one of training: the tests below are
    about a run's shape, not the original's quality (its full recipe costs 35 s a world on 2 cores). The original's
    cache key records the recipe, so no run ever takes these originals for full-recipe ones, or the reverse."""
    from engine.tasks import classification

    for name, recipe in list(classification.RECIPES.items()):
        if name.startswith("tiny"):
            monkeypatch.setitem(classification.RECIPES, name,
                                {**recipe, "epochs": 1, "pretrain": {**recipe["pretrain"], "epochs": 1}})


@pytest.mark.parametrize("data, deployed", [("shapes-ve-tiny", True), ("shapes-nlvr2-tiny", False)])
def test_run_classification_through_the_cli(home, tmp_path, one_epoch_recipes, data, deployed):
    # on VE the model to unlearn is a deployed one given with --original (a tiny BLIP classifier, untrained);
    # NLVR2's original is trained (pre-training, then the recipe, one epoch each), and the demo below reuses it
    world = {"shapes-ve-tiny": build_ve_world, "shapes-nlvr2-tiny": build_nlvr2_world}[data](data)
    original = ["--original", str(tiny_model_dir("blip-tiny", world, 5, tmp_path, task="classification"))] \
        if deployed else []
    out = run_in_process(home, "run", "--method", "multidelete", "--model", "blip-tiny", "--data", data, "--delete",
                         "8", "--epochs", "1", "--seed", "5", "--device", "cpu", *original, "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    document = json.loads(out.stdout)
    assert document["original"]["given"] is deployed
    metrics = document["metrics"]
    assert document["task"] == "classification" and document["deletion"]["units"] == 8
    assert 0.0 <= metrics["df_dr_auc"] <= 1.0 and 0.0 <= metrics["test"]["accuracy"] <= 100.0
    assert {"df_member_rate", "auc"} <= set(metrics["mia"]) and document["seconds"] > 0
    # the standard attacks, the label the one "token": Min-K% is LOSS; Min-K%++ reads the class distribution
    mia = metrics["mia"]
    assert {"loss_auc", "zlib_auc", "mink_auc", "minkpp_auc"} <= set(mia) and mia["mink_auc"] == mia["loss_auc"]
    assert all(0.0 <= mia[name] <= 1.0 for name in ("loss_auc", "zlib_auc", "minkpp_auc"))
    assert {"accuracy"} == set(metrics["df"]) == set(metrics["dr"])


def test_demo_table_has_the_classification_columns(home, one_epoch_recipes):
    # FT alone (one epoch over Dr: the demo path at its cheapest); the original is the one the nlvr2 run above
    # trained (same home, seed 5, same recipes); the Retrain-gap column is checked below without training
    out = run_in_process(home, "demo", "--data", "shapes-nlvr2-tiny", "--delete", "8", "--seed", "5", "--device",
                         "cpu", "--methods", "ft")
    assert out.returncode == 0, out.stderr[-2000:]
    for header in ("Df/Dr AUC", "test acc", "Df acc", "Dr acc", "MIA AUC", "original", "FT"):
        assert header in out.stdout
    assert "r_mean" not in out.stdout


def test_retrain_gap_is_each_rows_test_accuracy_against_retrains(capsys):
    from workbench.cli_run import print_table

    def result(method, accuracy):
        return {"method": method, "task": "classification", "data": "shapes-ve-tiny", "deletion": {"units": 8},
                "seconds": 1.0, "metrics": {"df_dr_auc": 0.5, "test": {"accuracy": accuracy}}}

    print_table([result("retrain", 70.0), result("multidelete", 66.5)], original={"test": {"accuracy": 71.2}})
    printed = capsys.readouterr().out
    assert "test gap" in printed
    lines = [line.split("│") for line in printed.splitlines() if line.startswith("┃") or line.startswith("│")]
    header = next(line.split("┃") for line in printed.splitlines() if line.startswith("┃"))
    column = [cell.strip() for cell in header].index("test gap")  # the cost columns follow it
    rows = {cells[1].strip(): cells[column].strip() for cells in lines if len(cells) > column}
    assert rows == {"original": "1.2", "Retrain": "0.0", "MultiDelete": "3.5"}
