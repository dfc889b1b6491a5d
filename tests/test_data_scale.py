"""Data at full size (issue 21, items 1 and 2): readers index without decoding, images are decoded when a batch
draws them (the same tensors as the up-front path), `data info` answers without decoding, and recall computed a
chunk of query rows at a time gives the ranks of the whole matrix."""
import json
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, cli, cli_env
from engine.data.flickr30k import read_flickr30k, write_flickr30k
from engine.data.image_bank import ImageBank, image_media
from engine.data.images import ImageFile
from engine.data.pairs import TensorBank
from engine.data.pixel_cache import PixelCache
from engine.data.shapes import build_shapes_world
from engine.errors import SpecError
from engine.metrics.retrieval import MatrixScores, chunked_query_ranks, query_ranks
from engine.models.registry import load_adapter


@pytest.fixture(scope="module")
def world():
    return build_shapes_world("shapes-tiny")


@pytest.fixture(scope="module")
def folder(world, tmp_path_factory):
    root = tmp_path_factory.mktemp("flickr")
    write_flickr30k(world, root)
    return root


def preprocess(images):
    """A stand-in image processor: resize to 16x16 and scale (image by image, like the real ones)."""
    return torch.stack([torch.from_numpy(np.asarray(image.resize((16, 16)), dtype=np.float32) / 255).permute(2, 0, 1)
                        for image in images])


def test_the_reader_holds_image_files_and_decodes_none(folder, world, monkeypatch):
    decoded = []
    real_convert = Image.Image.convert
    monkeypatch.setattr(Image.Image, "convert", lambda self, *a, **k: decoded.append(1) or real_convert(self, *a, **k))
    back = read_flickr30k(folder)
    assert not decoded  # only the first image's header was read (image_size)
    assert all(isinstance(unit.image, ImageFile) for unit in back.train)
    assert back.image_size == world.image_size
    assert np.array_equal(np.asarray(back.train[2].image), np.asarray(world.train[2].image))


def test_the_lazy_bank_makes_the_tensors_the_up_front_path_makes(folder, world):
    back = read_flickr30k(folder)
    eager, lazy = image_media(world.train, preprocess), image_media(back.train, preprocess)
    assert isinstance(eager, TensorBank) and isinstance(lazy, ImageBank)
    rows = torch.tensor([5, 0, 3, 3])
    assert torch.equal(eager.batch(rows, "cpu")["pixel_values"], lazy.batch(rows, "cpu")["pixel_values"])
    sub = torch.tensor([1, 4, 6])
    assert torch.equal(eager.take(sub).batch(torch.tensor([2, 0]), "cpu")["pixel_values"],
                       lazy.take(sub).batch(torch.tensor([2, 0]), "cpu")["pixel_values"])
    two = [SimpleNamespace(images=(u.image, back.train[0].image)) for u in back.train]  # NLVR2's image pairs
    pairs = image_media(two, preprocess, per_unit=2)
    drawn = pairs.batch(rows, "cpu")["pixel_values"]
    assert drawn.shape == (4, 2, 3, 16, 16) and torch.equal(drawn[:, 0], eager.batch(rows, "cpu")["pixel_values"])


def test_a_body_that_does_not_decode_fails_when_drawn_naming_the_file(folder, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in folder.glob("*.json"):
        (broken / path.name).write_text(path.read_text())
    for path in folder.rglob("*.png"):
        target = broken / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    victim = sorted(broken.rglob("*.png"))[1]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)  # the signature of a PNG, then no PNG
    back = read_flickr30k(broken)  # reading never decodes
    bank = image_media(back.train + back.val + back.test, preprocess)
    index = next(i for i, unit in enumerate(back.train + back.val + back.test) if unit.image.path == str(victim))
    with pytest.raises(SpecError, match=rf"{victim} does not decode \(Truncated File Read\); replace the file"):
        bank.batch(torch.tensor([index]), "cpu")


def test_the_pixel_cache_is_keyed_by_content(folder, tmp_path):
    path = sorted(folder.rglob("*.png"))[0]
    cache = PixelCache(tmp_path / "pixels", "processor-a")
    first = cache.pixels(ImageFile(path), preprocess)
    assert torch.equal(first, preprocess([Image.open(path).convert("RGB")])[0])
    assert len(list((tmp_path / "pixels").rglob("*.npy"))) == 1
    copy = tmp_path / "renamed.png"
    copy.write_bytes(path.read_bytes())
    assert torch.equal(cache.pixels(ImageFile(copy), lambda images: 1 / 0), first)  # a hit: never preprocessed
    Image.new("RGB", (16, 16), (9, 9, 9)).save(copy)  # edited in place: a miss
    assert not torch.equal(cache.pixels(ImageFile(copy), preprocess), first)
    other = PixelCache(tmp_path / "pixels", "processor-b")  # another processor never shares an entry
    other.pixels(ImageFile(path), preprocess)
    assert len(list((tmp_path / "pixels").rglob("*.npy"))) == 3


def test_data_info_counts_without_torch(folder, tmp_path):
    out = subprocess.run(cli("data", "info", f"flickr30k:{folder}", "--json"), env=cli_env(tmp_path), cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    world = build_shapes_world("shapes-tiny")
    assert {name: split["units"] for name, split in info["splits"].items()} == {
        name: len(world.split(name)) for name in ("train", "val", "test")}
    assert info["texts"] == sum(len(u.captions) for name in ("train", "val", "test") for u in world.split(name))
    assert info["fingerprint"] and info["image_size"] == world.image_size
    missing = subprocess.run(cli("data", "info", f"flickr30k:{tmp_path}/nowhere"), env=cli_env(tmp_path), cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "does not exist" in missing.stderr


def test_chunked_ranks_equal_the_whole_matrix_with_ties():
    # 4 images, 7 captions; hand-made ties: caption 2 ties image 0's best positive (pessimistic: counts)
    pair_image = torch.tensor([0, 0, 1, 2, 2, 3, 3])
    i2t = torch.tensor([[0.9, 0.1, 0.9, 0.2, 0.0, 0.3, 0.1],
                        [0.1, 0.2, 0.5, 0.6, 0.0, 0.1, 0.1],
                        [0.3, 0.3, 0.3, 0.1, 0.4, 0.3, 0.9],
                        [0.0, 0.0, 0.0, 0.0, 0.0, 0.8, 0.2]])
    t2i = i2t.clone()
    whole = query_ranks(i2t, t2i, pair_image)
    # image 0: caption 2 ties 0.9 -> rank 1; image 1: caption 3 beats 0.5 -> 1; image 2: caption 6 -> 1; image 3: 0
    assert whole[0].tolist() == [1, 1, 1, 0]
    for chunk in (1, 2, 3, 64):
        ranks = chunked_query_ranks(MatrixScores(i2t, t2i), pair_image, chunk=chunk)
        assert [r.tolist() for r in ranks] == [r.tolist() for r in whole]
    asking = torch.tensor([False, True, False, True])
    some = query_ranks(i2t, t2i, pair_image, asking)
    assert [r.tolist() for r in chunked_query_ranks(MatrixScores(i2t, t2i), pair_image, asking, chunk=1)] == \
        [r.tolist() for r in some]


@pytest.mark.parametrize("name", ["clip-tiny", "blip-tiny"])
def test_an_adapters_rows_rank_as_its_whole_matrix(tmp_path, world, name):
    from engine.data.pairs import encode_units

    adapter = load_adapter(name, world, seed=3, cache=tmp_path, task="retrieval")
    adapter.model.eval()
    pairs = encode_units(world.test, adapter)
    whole = query_ranks(*adapter.score_matrix(pairs, 16), pairs.pair_unit)
    chunked = chunked_query_ranks(adapter.gallery_scores(pairs, 16), pairs.pair_unit, chunk=5)
    assert [r.tolist() for r in chunked] == [r.tolist() for r in whole]
