"""Recall@k, Df/Dr AUC and the membership attack on cases checked by hand."""
import numpy as np
import pytest
import torch

from engine.metrics.auc import df_dr_auc, dr_chunks
from sessions.metric_names import nest
from engine.metrics.mia import membership_inference
from engine.metrics.retrieval import gallery_plan, recall_at_k


def test_recall_by_hand():
    # 2 images, 3 captions: captions 0,1 belong to image 0, caption 2 to image 1
    pair_image = torch.tensor([0, 0, 1])
    i2t = torch.tensor([[0.1, 0.9, 0.5], [0.8, 0.2, 0.3]])  # image 0 ranks caption 1 first (hit); image 1 ranks caption 2 last
    t2i = torch.tensor([[0.9, 0.1, 0.2], [0.1, 0.9, 0.8]])  # caption 0 -> image 0 (hit), caption 1 -> image 1 (miss), caption 2 -> image 1 (hit)
    m = recall_at_k(i2t, t2i, pair_image)
    assert m["txt_r1"] == pytest.approx(50.0)
    assert m["img_r1"] == pytest.approx(200 / 3)
    assert m["txt_r5"] == 100.0 and m["img_r5"] == 100.0
    assert m["r_mean"] == pytest.approx((50 + 200 / 3 + 100 * 4) / 6)


def test_recall_breaks_ties_pessimistically():
    # 2 images with one caption each, every score equal: argsort would let the first of each list hit
    pair_image = torch.tensor([0, 1])
    flat = torch.zeros(2, 2)
    m = recall_at_k(flat, flat, pair_image)
    assert m["txt_r1"] == 0.0 and m["img_r1"] == 0.0  # the tied wrong answer ranks above the right one
    assert m["txt_r5"] == 100.0 and m["img_r5"] == 100.0
    # a tie between an image's own caption and another image's caption: a miss at k=1; a caption of the
    # image itself tying with its other caption is no loss (either is a hit)
    pair_image = torch.tensor([0, 0, 1])
    i2t = torch.tensor([[0.7, 0.7, 0.7], [0.1, 0.2, 0.9]])
    t2i = torch.tensor([[0.9, 0.9, 0.3], [0.9, 0.5, 0.4]])  # [images, texts]
    m = recall_at_k(i2t, t2i, pair_image)
    assert m["txt_r1"] == 50.0  # image 0 ties with image 1's caption (miss); image 1 hits
    # caption 0: its image 0.9 ties image 1's 0.9 (miss); caption 1: 0.9 > 0.5 (hit); caption 2: 0.4 > 0.3 (hit)
    assert m["img_r1"] == pytest.approx(200 / 3)


def test_distractors_compete_but_do_not_ask():
    # image 0 asks (caption 0); images 1, 2 are distractors with captions 1, 2. Caption 1 outscores image 0's
    # own caption (a text-retrieval miss at k = 1); image 0 is caption 0's best image (a hit). The
    # distractors' own ranks would be misses, but they are not queries.
    pair_image = torch.tensor([0, 1, 2])
    i2t = torch.tensor([[0.5, 0.9, 0.1], [0.9, 0.0, 0.0], [0.9, 0.0, 0.0]])
    t2i = torch.tensor([[0.8, 0.0, 0.0], [0.1, 0.0, 0.0], [0.1, 0.0, 0.0]])
    asking = torch.tensor([True, False, False])
    m = recall_at_k(i2t, t2i, pair_image, asking)
    assert m["txt_r1"] == 0.0 and m["txt_r5"] == 100.0 and m["img_r1"] == 100.0
    alone = recall_at_k(i2t[:1, :1], t2i[:1, :1], pair_image[:1])  # in a gallery of itself: a sure hit
    assert alone["txt_r1"] == 100.0 and alone["img_r1"] == 100.0


def test_gallery_plan_fills_and_chunks():
    rng = np.random.default_rng(0)
    [(chunk, fill)] = gallery_plan(2, 10, 5, rng)  # 2 queries in a gallery of 5: 3 distinct distractors
    assert chunk.tolist() == [0, 1] and len(set(fill.tolist())) == 3 and fill.max() < 10
    plan = gallery_plan(7, 10, 3, rng)  # more queries than a gallery holds: chunks of 3, the last filled
    assert [c.tolist() for c, _ in plan] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [len(f) for _, f in plan] == [0, 0, 2]
    assert [len(f) for _, f in gallery_plan(1, 1, 5, rng)] == [1]  # too few distractors: all of them


class DotAdapter:
    """Scores = image vector . caption vector (each pair set's media rows and `input_ids` rows)."""

    def __init__(self):
        self.gallery_sizes = []

    def score_matrix(self, pairs, batch_size):
        self.gallery_sizes.append(pairs.n_units)
        scores = pairs.media.values @ pairs.input_ids.t()
        return scores, scores


def test_df_recall_ranks_in_a_test_sized_gallery():
    from engine.data.pairs import PairSet, TensorBank
    from engine.tasks.retrieval import gallery_recall
    from engine.tasks.retrieval_scoring import NetworkScoring

    # units 0, 1 are training images (Df = {0}); 2, 3, 4 the test split. Image k is e_k; caption of unit 0
    # is e0, a test unit's caption is e0 + e_k: it scores 1 with image 0 too, tying with image 0's own.
    eye = torch.eye(5)
    captions = torch.stack([eye[0], eye[1], eye[0] + eye[2], eye[0] + eye[3], eye[0] + eye[4]])
    joint = PairSet(media=TensorBank("pixel_values", eye), input_ids=captions, attention_mask=torch.ones(5, 1),
                    pair_unit=torch.arange(5), unit_ids=[str(k) for k in range(5)], texts=["c"] * 5)
    adapter = DotAdapter()
    scoring = NetworkScoring(adapter, joint)
    test = gallery_recall(scoring, [2, 3, 4], [], 3, np.random.default_rng(0))
    assert test["txt_r1"] == test["img_r1"] == 100.0  # own caption 2 vs others' 1; own image 1 vs 0
    df = gallery_recall(scoring, [0], [2, 3, 4], 3, np.random.default_rng(0))
    assert adapter.gallery_sizes == [3, 3]  # Df ranks among as many images as the test split
    # text retrieval: whichever two test captions fill the gallery, each ties image 0's caption (a miss
    # at k = 1 with pessimistic ties, a hit at 5); image retrieval: caption e0 scores its image 1, others 0
    assert df["txt_r1"] == 0.0 and df["txt_r5"] == 100.0 and df["img_r1"] == 100.0
    alone = gallery_recall(scoring, [0], [], 3, np.random.default_rng(0))
    assert alone["txt_r1"] == 100.0  # what today's |Df|-image gallery reported


def test_df_dr_auc_direction_and_chunks():
    df = np.array([0.1, 0.2])
    assert df_dr_auc(df, [np.array([0.8, 0.9])] * 5) == 1.0  # Df stands apart below Dr: perfect unlearning
    assert df_dr_auc(df, [np.array([0.0, 0.05])] * 5) == 0.0
    assert df_dr_auc(df, [np.array([0.15, 0.3]), np.array([0.0, 0.05])]) == pytest.approx((0.75 + 0.0) / 2)
    chunks = dr_chunks(100, 10, np.random.default_rng(0))
    assert len(chunks) == 5 and all(len(c) == 10 for c in chunks)
    assert len(set(np.concatenate(chunks).tolist())) == 50  # disjoint when Dr is large enough


def test_membership_attack_flags_low_loss_examples():
    rng = np.random.default_rng(0)
    members, non_members = rng.normal(0.2, 0.05, 200), rng.normal(2.0, 0.3, 200)
    remembered = membership_inference(members, non_members, rng.normal(0.2, 0.05, 50), rng)
    forgotten = membership_inference(members, non_members, rng.normal(2.0, 0.3, 50), rng)
    assert remembered["df_member_rate"] > 0.9 and remembered["auc"] > 0.9
    assert forgotten["df_member_rate"] < 0.1 and forgotten["auc"] == pytest.approx(0.5, abs=0.15)
    assert remembered["test_member_rate"] < 0.1  # the held-out half of the test set: non-members


def test_membership_attack_scores_df_against_test_it_never_fitted_on():
    # members' losses 0..1, test losses 3..4 except one far outlier at 0.5 that looks like a member. Whichever
    # half the outlier lands in, the held-out half's member rate is at most 1 of its 10, and Df (= the
    # held-out-looking losses) is called non-member; 20 test examples: 10 fit, 10 held out.
    members = np.linspace(0.0, 1.0, 40)
    test = np.concatenate([np.linspace(3.0, 4.0, 19), [0.5]])
    result = membership_inference(members, test, np.linspace(3.1, 3.9, 8), np.random.default_rng(1))
    assert result["test_member_rate"] in (0.0, 0.1) and result["df_member_rate"] == 0.0
    # Df indistinguishable from the held-out test half: AUC at chance within a few pairs
    same = membership_inference(members, np.linspace(3.0, 4.0, 20), np.linspace(3.0, 4.0, 10), np.random.default_rng(2))
    assert same["df_member_rate"] == same["test_member_rate"] == 0.0 and same["auc"] == pytest.approx(0.5, abs=0.2)


def test_nest():
    assert nest({"test.r_mean": 1.0, "df_dr_auc": 0.5}) == {"test": {"r_mean": 1.0}, "df_dr_auc": 0.5}


def test_blip_pair_score_reads_the_head_the_option_names(tmp_path):
    from engine.data.pairs import encode_units
    from engine.data.shapes import build_shapes_world
    from engine.models.base import ITC_TEMPERATURE
    from engine.models.registry import load_adapter

    world = build_shapes_world("shapes-tiny")
    adapter = load_adapter("blip-tiny", world, seed=3, cache=tmp_path, task="retrieval")
    pairs = encode_units(world.train[:3], adapter)
    batch = pairs.batch(torch.arange(len(pairs)), torch.device("cpu"))
    with torch.no_grad():
        cosine = adapter.similarity(batch).diagonal()  # each pair's own ITC cosine
        match = adapter.log_likelihood(batch).exp()  # the ITM head's match probability
        assert adapter.pair_score == "itc"  # the default: the released MultiDelete evaluation's
        torch.testing.assert_close(adapter.pair_scores(batch), cosine)
        torch.testing.assert_close(adapter.example_losses(batch), -torch.nn.functional.logsigmoid(cosine / ITC_TEMPERATURE))
        adapter.pair_score = "itm"
        torch.testing.assert_close(adapter.pair_scores(batch), match)
        torch.testing.assert_close(adapter.example_losses(batch), -match.log())
    assert not torch.allclose(cosine, match)


@pytest.mark.parametrize("spec,message", [
    ({"model": "clip-tiny", "data": "shapes-tiny", "params": {"pair_score": "itm"}}, "clip models score a pair by itc"),
    ({"model": "blip-tiny", "data": "shapes-ve-tiny", "params": {"pair_score": "itc"}}, "applies to retrieval runs"),
    ({"model": "blip-tiny", "data": "shapes-tiny", "params": {"pair_score": "cosine"}}, "one of auto, itc, itm"),
])
def test_pair_score_is_refused_where_no_such_head_scores(spec, message):
    from engine.errors import SpecError
    from engine.spec import validate

    with pytest.raises(SpecError, match=message):
        validate({"method": "ft", "deletion": {"strategy": "random", "n": 2}, **spec})
    ok = validate({"method": "ft", "model": "blip-tiny", "data": "shapes-tiny", "deletion": {"strategy": "random", "n": 2},
                   "params": {"pair_score": "itm"}})
    assert ok["params"]["pair_score"] == "itm"


def blip_gallery(tmp_path, units: int = 5):
    """A tiny BLIP (random weights of its recipe) and a gallery of `units` shapes-tiny images with their captions."""
    from engine.data.pairs import encode_units
    from engine.data.shapes import build_shapes_world
    from engine.models.registry import load_adapter

    world = build_shapes_world("shapes-tiny")
    adapter = load_adapter("blip-tiny", world, seed=3, cache=tmp_path, task="retrieval")
    adapter.model.eval()
    return adapter, encode_units(world.train[:units], adapter)


def every_pair_by_itm(adapter, pairs):
    """[n_images, n_texts] ITC cosine + ITM match probability of every image-caption pair, pair by pair."""
    n_images, n_texts = pairs.n_units, len(pairs)
    with torch.no_grad():
        image_tokens = torch.cat([adapter.image_tokens(b["pixel_values"]) for b in adapter.unit_batches(pairs, 64)])
        image_feat = adapter._image_feat(image_tokens)
        text_feat = adapter._text_feat(adapter._text_cls(pairs.input_ids, pairs.attention_mask))
        itc = image_feat @ text_feat.t()
        match = torch.empty(n_images, n_texts)
        for image in range(n_images):
            logits = adapter._itm_logits(pairs.input_ids, pairs.attention_mask,
                                         image_tokens[image].expand(n_texts, -1, -1))
            match[image] = torch.softmax(logits.float(), dim=1)[:, 1]
    return itc, match


def test_blip_k_test_re_ranks_only_each_querys_top_k(tmp_path):
    """k_test = the gallery's size re-ranks every pair: each score is ITC + ITM of that pair, scored alone; a
    smaller k keeps ITC's top k of each row (ITM + ITC there, -100 elsewhere); k = 0 is ITC alone."""
    adapter, pairs = blip_gallery(tmp_path)
    itc, match = every_pair_by_itm(adapter, pairs)
    n_images, n_texts = itc.shape
    assert n_texts > n_images > 2
    everything = torch.arange(n_images), torch.arange(n_texts)

    adapter.k_test = n_texts  # every caption of each image; the text rows clamp it to the gallery's images
    scores = adapter.gallery_scores(pairs, 4)  # batch 4: the text rows' ITM batches split
    torch.testing.assert_close(scores.image_rows(everything[0]), itc + match, atol=1e-5, rtol=0)
    torch.testing.assert_close(scores.text_rows(everything[1]), (itc + match).t(), atol=1e-5, rtol=0)

    adapter.k_test = 2
    scores = adapter.gallery_scores(pairs, 4)
    i2t, t2i = scores.image_rows(everything[0]), scores.text_rows(everything[1])
    top_texts = itc.topk(2, dim=1).indices
    top_images = itc.t().topk(2, dim=1).indices
    kept_i2t = torch.zeros_like(itc, dtype=torch.bool).scatter_(1, top_texts, True)
    kept_t2i = torch.zeros_like(itc.t(), dtype=torch.bool).scatter_(1, top_images, True)
    assert kept_i2t.sum() == 2 * n_images and kept_t2i.sum() == 2 * n_texts
    torch.testing.assert_close(i2t[kept_i2t], (itc + match)[kept_i2t], atol=1e-5, rtol=0)
    torch.testing.assert_close(t2i[kept_t2i], (itc + match).t()[kept_t2i], atol=1e-5, rtol=0)
    assert (i2t[~kept_i2t] == -100).all() and (t2i[~kept_t2i] == -100).all()

    adapter.k_test = 0
    scores = adapter.gallery_scores(pairs, 4)
    torch.testing.assert_close(scores.image_rows(everything[0]), itc, atol=1e-6, rtol=0)
    torch.testing.assert_close(scores.text_rows(everything[1]), itc.t(), atol=1e-6, rtol=0)


def test_k_test_defaults_to_the_released_config_of_the_data():
    from engine.tasks.retrieval import k_test_for

    assert k_test_for({"data": "shapes-tiny", "params": {"k_test": None}}, 16) == 16
    assert k_test_for({"data": "flickr30k:/data/f30k", "params": {"k_test": None}}, 16) == 128
    assert k_test_for({"data": "coco:/data/coco", "params": {}}, 16) == 256
    assert k_test_for({"data": "coco:/data/coco", "params": {"k_test": 0}}, 16) == 0


@pytest.mark.parametrize("spec,message", [
    ({"model": "clip-tiny", "data": "shapes-tiny", "params": {"k_test": 8}}, "clip models have no ITM head"),
    ({"model": "blip-tiny", "data": "shapes-ve-tiny", "params": {"k_test": 8}}, "applies to retrieval runs"),
    ({"model": "blip-tiny", "data": "shapes-tiny", "params": {"k_test": -1}}, "--k-test must be >= 0"),
    ({"model": "blip-tiny", "data": "shapes-tiny", "params": {"k_test": 2.5}}, "--k-test must be int"),
])
def test_k_test_is_refused_where_nothing_re_ranks(spec, message):
    from engine.errors import SpecError
    from engine.spec import validate

    with pytest.raises(SpecError, match=message):
        validate({"method": "ft", "deletion": {"strategy": "random", "n": 2}, **spec})
    ok = validate({"method": "ft", "model": "blip-tiny", "data": "shapes-tiny", "deletion": {"strategy": "random", "n": 2},
                   "params": {"k_test": 0}})
    assert ok["params"]["k_test"] == 0


def test_bad_k_test_is_one_line_exit_2(tmp_path):
    import subprocess

    from conftest import ROOT, cli, cli_env

    for model, value, message in (("blip-tiny", "-1", "--k-test must be >= 0, got -1"),
                                  ("clip-tiny", "8", "clip models have no ITM head to re-rank by")):
        out = subprocess.run(cli("run", "--method", "ft", "--model", model, "--data", "shapes-tiny", "--delete", "2",
                                 "--k-test", value), cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr
