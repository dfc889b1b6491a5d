"""Each loss term on small cases checked by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from engine.methods.descent_to_delete import noise_sigma
from engine.methods.ga_klr import kl_to_original
from engine.methods.multidelete import MultiDelete, decoupling_permutation
from engine.methods.neggrad import NegGrad
from engine.methods.npo import npo_loss
from engine.models.base import contrastive_loss


class LinearAdapter:
    """A toy adapter: images and texts are vectors; fused = image * text. Enough to check the terms."""

    def __init__(self, scale=1.0):
        self.w = torch.nn.Parameter(torch.eye(2) * scale)

    def parameter_groups(self):
        return {"all": [self.w], "vision": [self.w], "text": []}

    def image_embed(self, b):
        return b["pixel_values"] @ self.w

    def text_embed(self, b):
        return b["input_ids"].float()

    def fused_embed(self, b):
        return self.image_embed(b) * b["input_ids"].float()

    def unimodal_features(self, embeds, modality):  # the rows as they are (as a classification adapter's)
        return embeds

    def permute_texts(self, b, pi):
        return {**b, "input_ids": b["input_ids"][pi]}

    def similarity(self, b):
        return self.image_embed(b) @ self.text_embed(b).t()

    def task_loss(self, b):
        return contrastive_loss(self.similarity(b), b["image_index"])


def toy_batch():
    return {
        "pixel_values": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        "input_ids": torch.tensor([[1, 0], [0, 2]]),
        "attention_mask": torch.ones(2, 2, dtype=torch.long),
        "image_index": torch.tensor([0, 1]),
    }


PARAMS = {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "md_on": "both", "ukr_on": "df", "ukr_modalities": "both", "train": "all"}


def test_multidelete_terms_by_hand():
    original, model = LinearAdapter(1.0), LinearAdapter(2.0)
    batch = toy_batch()
    terms = MultiDelete(PARAMS, model, original).losses(batch, batch)
    # with 2 images the decoupling permutation must swap the two captions
    # model sims: [[2,0],[0,4]]; original sims with swapped captions: [[0,1],[2,0]]
    # both directions (image-to-text, and its transpose text-to-image), summed as released
    sim_mse = 2 * ((2 - 0) ** 2 + (0 - 1) ** 2 + (0 - 2) ** 2 + (4 - 0) ** 2) / 4
    # fused model: [[2,0],[0,4]]; original fused with swapped captions: image*text_pi = [[0,0],[0,0]]
    fused_mse = (4 + 16) / 4
    assert terms["md"].item() == pytest.approx(sim_mse + fused_mse)
    # MKR: model fused [[2,0],[0,4]] vs original [[1,0],[0,2]]
    assert terms["mkr"].item() == pytest.approx((1 + 4) / 4)
    # UKR on Df, both: image embeds [[2,0],[0,2]] vs eye -> 0.5; texts identical -> 0
    assert terms["ukr"].item() == pytest.approx(0.5)
    assert terms["total"].item() == pytest.approx(sim_mse + fused_mse + 1.25 + 0.5)
    for md_on, expected in (("similarity", sim_mse), ("fused", fused_mse)):
        only = MultiDelete({**PARAMS, "md_on": md_on}, model, original).losses(batch, batch)
        assert only["md"].item() == pytest.approx(expected)


def test_multidelete_weights_and_identity():
    original, model = LinearAdapter(1.0), LinearAdapter(1.0)
    batch = toy_batch()
    terms = MultiDelete({**PARAMS, "alpha": 0.0, "ukr_modalities": "text"}, model, original).losses(batch, batch)
    assert terms["mkr"].item() == 0.0 and terms["ukr"].item() == 0.0
    assert terms["total"].item() == 0.0  # alpha = 0 removes L_MD, which is not zero here
    assert terms["md"].item() > 0


def test_multidelete_says_when_l_md_had_no_other_unit_to_decouple_from():
    """A batch of one unit (a PULSE request of one person) gives L_MD no unrelated pair: it pulled each pair towards
    another matched pair of the same unit, silently (a review). The request's record and a warning say so."""
    two_units, one_unit = toy_batch(), {**toy_batch(), "image_index": torch.tensor([0, 0])}
    method = MultiDelete(PARAMS, LinearAdapter(2.0), LinearAdapter(1.0))
    method.losses(two_units, two_units)
    assert method.record() == {"md_unrelated_share": 1.0} and method.caveats() == []
    method.losses(one_unit, one_unit)
    assert method.record() == {"md_unrelated_share": 0.5} and "for some Df rows" in method.caveats()[0]
    method.before_training(None, None)  # the next request counts afresh
    method.losses(one_unit, one_unit)
    assert method.record() == {"md_unrelated_share": 0.0} and method.caveats()[0].startswith("L_MD decoupled nothing")


def test_decoupling_permutation_avoids_same_image():
    torch.manual_seed(0)
    image_index = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])
    for _ in range(50):
        pi = decoupling_permutation(image_index)
        assert sorted(pi.tolist()) == list(range(8))
        assert bool((image_index[pi] != image_index).all())


def test_contrastive_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert contrastive_loss(logits, torch.tensor([0, 1])).item() == pytest.approx(expected)
    # two captions of the same image are both positives: uniform targets over them
    same = contrastive_loss(torch.zeros(2, 2), torch.tensor([0, 0]))
    assert same.item() == pytest.approx(math.log(2))


def test_neggrad_ascends():
    model = LinearAdapter(1.0)
    batch = toy_batch()
    terms = NegGrad({}, model).losses(batch, None)
    assert terms["total"].item() == pytest.approx(-terms["forget_task"].item())
    terms["total"].backward()
    before = model.task_loss(batch).item()
    with torch.no_grad():
        model.w -= 0.1 * model.w.grad
    assert model.task_loss(batch).item() > before


def test_kl_to_original_by_hand():
    p = torch.tensor([[0.0, 0.0]])
    q = torch.tensor([[math.log(3.0), 0.0]])  # softmax -> [0.75, 0.25]
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert kl_to_original(p, q).item() == pytest.approx(expected)
    assert kl_to_original(q, q).item() == pytest.approx(0.0, abs=1e-7)
    # masked rows (prompt, padding) do not count
    rows_p, rows_q = torch.cat([p, q]), torch.cat([q, q])
    assert kl_to_original(rows_p, rows_q, torch.tensor([1, 0])).item() == pytest.approx(expected)


def test_npo_matches_formula():
    log_prob, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    beta = 0.1
    expected = -(2 / beta) * sum(math.log(1 / (1 + math.exp(beta * (a - b))))
                                 for a, b in zip(log_prob.tolist(), ref.tolist())) / 2
    assert npo_loss(log_prob, ref, beta).item() == pytest.approx(expected, rel=1e-6)
    # at the reference the loss is (2/beta) log 2
    assert npo_loss(ref, ref, beta).item() == pytest.approx(2 / beta * math.log(2), rel=1e-6)


def test_d2d_sigma_by_hand():
    n, wd, eps = 1000, 0.05, 5.0
    gamma = (4 - 2 * wd) / 4
    log_term = math.log(n**2)
    expected = 4 * math.sqrt(2) * (1 + wd) * gamma / (wd * n * (1 - gamma) * (math.sqrt(log_term + eps) - math.sqrt(log_term)))
    assert noise_sigma(n, wd, eps) == pytest.approx(expected)
    assert noise_sigma(10 * n, wd, eps) < noise_sigma(n, wd, eps)
    assert math.isinf(noise_sigma(n, 0.0, eps))


def test_d2d_noise_is_drawn_for_the_steps_taken():
    """Under --budget matched-steps the loop takes T > 1 descent steps: the noise must follow the bound at that T
    (the released compute_sigma's `iterations`), not T = 1, which is orders of magnitude larger."""
    from engine.methods.descent_to_delete import DescentToDelete

    n, wd, eps, steps = 7500, 0.05, 5.0, 160
    weight = torch.nn.Parameter(torch.zeros(200, 50))

    class Model:
        def parameter_groups(self):
            return {"all": [weight]}

    method = DescentToDelete({"weight_decay": wd, "eps": eps}, Model(), generator=torch.Generator().manual_seed(0))
    method.after_training(n, steps)
    assert method.record() == {"noise_sigma": pytest.approx(noise_sigma(n, wd, eps, steps)), "noise_iterations": steps}
    assert noise_sigma(n, wd, eps, steps) < noise_sigma(n, wd, eps) / 1000  # 160 steps: >1000x less noise than T=1
    assert weight.std().item() == pytest.approx(method.sigma, rel=0.05)  # the noise drawn has that sigma
