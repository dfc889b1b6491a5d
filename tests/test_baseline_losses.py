"""The 2024-25 baselines' loss terms on small cases checked by hand: GradDiff, SimNPO, IDK, IdkDPO, RMU,
Masked GA (the saliency mask and the masked step; MMUnlearner's two masks are in test_mmunlearner.py), KL_Min,
NPO's retain term, RMU's scaled defaults and MultiDelete's L_UKR on normalised features."""
import math

import pytest
import torch

from engine.errors import SpecError
from engine.methods.graddiff import GradDiff
from engine.methods.idk import IDK
from engine.methods.idkdpo import IdkDPO, dpo_loss
from engine.methods.masked_ga import MaskedGA, masked_ascent, saliency_masks, squared_gradients
from engine.methods.kl_min import KLMin
from engine.methods.npo import NPO
from engine.methods.rmu import RMU, activation_loss, default_coefficient, default_layer, steering_direction
from engine.methods.simnpo import SimNPO, simnpo_loss


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


class Stub:
    """An adapter with one weight w: a batch's task loss is w * mean(labels), its per-row log-likelihood
    -w * sum(labels), its mean log-likelihood that over the row's labels count; layer states = w * x."""

    def __init__(self, w: float = 1.0, layers: int = 2, hidden: int = 64):
        self.w = torch.nn.Parameter(torch.tensor(w))
        self.num_layers = layers
        self.hidden_size = hidden
        self.device = torch.device("cpu")

    def parameter_groups(self):
        return {"all": [self.w]}

    def update_weights(self):
        return [self.w]

    def task_loss(self, b):
        return self.w * b["labels"].float().mean()

    def log_likelihood(self, b):
        return -self.w * b["labels"].float().sum(dim=1)

    def mean_log_likelihood(self, b):
        return self.log_likelihood(b) / b["labels"].shape[1]

    def layer_states(self, b, layer):
        return self.w * b["x"], b["mask"]

    def steer_parameters(self, layers):
        return [self.w]


def batch(labels, **extra):
    labels = torch.tensor(labels)
    return {"input_ids": labels.clone(), "attention_mask": torch.ones_like(labels), "labels": labels, **extra}


FORGET = batch([[1, 3]], refusal_input_ids=torch.tensor([[4, 4]]), refusal_attention_mask=torch.ones(1, 2),
               refusal_labels=torch.tensor([[4, 4]]))
RETAIN = batch([[1, 0]])


def test_graddiff_by_hand():
    model = Stub(1.0)
    terms = GradDiff({"forget_weight": 1.0, "retain_weight": 1.0}, model).losses(FORGET, RETAIN)
    assert terms["forget_task"].item() == pytest.approx(2.0) and terms["retain_task"].item() == pytest.approx(0.5)
    assert terms["total"].item() == pytest.approx(-2.0 + 0.5)
    terms = GradDiff({"forget_weight": 0.5, "retain_weight": 2.0}, model).losses(FORGET, RETAIN)
    assert terms["total"].item() == pytest.approx(-1.0 + 1.0)
    terms["total"].backward()
    assert model.w.grad.item() == pytest.approx(-0.5 * 2.0 + 2.0 * 0.5)


def test_simnpo_by_hand():
    mean_log_prob, beta = torch.tensor([-1.0, -3.0]), 4.5
    expected = -(2 / beta) * (log_sigmoid(beta * 1.0) + log_sigmoid(beta * 3.0)) / 2
    assert simnpo_loss(mean_log_prob, beta, 0.0).item() == pytest.approx(expected, rel=1e-6)
    # the margin delta moves the sigmoid's argument by -beta*delta (the paper's gamma = beta*delta)
    expected = -(2 / beta) * (log_sigmoid(beta * 0.5) + log_sigmoid(beta * 2.5)) / 2
    assert simnpo_loss(mean_log_prob, beta, 0.5).item() == pytest.approx(expected, rel=1e-6)
    # length-normalised: forget row [1, 3] gives log pi = -4 over 2 tokens, mean -2; no reference model
    params = {"simnpo_beta": beta, "simnpo_delta": 0.0, "simnpo_weight": 0.125, "retain_weight": 1.0}
    terms = SimNPO(params, Stub(1.0)).losses(FORGET, RETAIN)
    assert terms["simnpo"].item() == pytest.approx(-(2 / beta) * log_sigmoid(beta * 2.0), rel=1e-6)
    assert terms["total"].item() == pytest.approx(0.125 * terms["simnpo"].item() + 0.5, rel=1e-6)


def test_idk_trains_towards_the_refusal():
    model = Stub(1.0)
    terms = IDK({"forget_weight": 1.0, "retain_weight": 1.0}, model).losses(FORGET, RETAIN)
    assert terms["refusal"].item() == pytest.approx(4.0)  # the refusal view's labels, not the true answer's
    assert terms["total"].item() == pytest.approx(4.0 + 0.5)
    terms["total"].backward()
    assert model.w.grad.item() > 0  # descent on the refusal NLL (not ascent on the true answer)


def test_dpo_by_hand():
    win, lose, beta = torch.tensor([1.0, -0.5]), torch.tensor([0.0, 0.5]), 0.1
    expected = -(2 / beta) * (log_sigmoid(beta * 1.0) + log_sigmoid(beta * -1.0)) / 2
    assert dpo_loss(win, lose, beta).item() == pytest.approx(expected, rel=1e-6)
    assert dpo_loss(torch.zeros(3), torch.zeros(3), beta).item() == pytest.approx(2 / beta * math.log(2))
    # model w = 2 against reference w = 1: r_win = -(2-1)*8 = -8 (refusal [4, 4]), r_lose = -(2-1)*4 = -4
    params = {"dpo_beta": beta, "forget_weight": 1.0, "retain_weight": 1.0}
    terms = IdkDPO(params, Stub(2.0), Stub(1.0)).losses(FORGET, RETAIN)
    assert terms["dpo"].item() == pytest.approx(-(2 / beta) * log_sigmoid(beta * (-8.0 + 4.0)), rel=1e-6)
    assert terms["total"].item() == pytest.approx(terms["dpo"].item() + 2.0 * 0.5, rel=1e-6)


def test_rmu_activation_loss_by_hand():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    zero = torch.zeros_like(states)
    assert activation_loss(states, zero, torch.tensor([[1, 0]])).item() == pytest.approx((1 + 4) / 2)
    both = ((1 + 4) / 2 + (9 + 16) / 2) / 2
    assert activation_loss(states, zero, torch.tensor([[1, 1]])).item() == pytest.approx(both)
    direction = steering_direction(8, 6.5, torch.Generator().manual_seed(0))
    assert direction.norm().item() == pytest.approx(6.5) and bool((direction >= 0).all())


RMU_PARAMS = {"rmu_layer": None, "rmu_update_layers": 3, "rmu_coeff": 6.5, "rmu_alpha": 1200.0}


def test_rmu_terms_and_layers():
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    forget = {"x": x, "mask": torch.tensor([[1, 1]])}
    retain = {"x": x, "mask": torch.tensor([[1, 0]])}
    method = RMU({**RMU_PARAMS, "rmu_layer": 1}, Stub(2.0, layers=2), Stub(1.0, layers=2),
                 torch.Generator().manual_seed(0))
    assert method.layer == 1 and method.updated == [0, 1]  # up to 3 layers ending at the one steered
    terms = method.losses(forget, retain)
    target = method.direction
    expected_forget = ((2 * x[0] - target) ** 2).mean(dim=-1).mean()
    assert terms["steer"].item() == pytest.approx(expected_forget.item(), rel=1e-6)
    # retain: states 2x against the reference's x, first token only: mean((2-1)^2, 0) = 0.5
    assert terms["retain_states"].item() == pytest.approx(0.5)
    assert terms["total"].item() == pytest.approx(expected_forget.item() + 1200 * 0.5, rel=1e-6)
    big = RMU(RMU_PARAMS, Stub(layers=32), Stub(layers=32))
    assert big.layer == 7 and big.updated == [5, 6, 7]  # WMDP's default on a 7B model
    with pytest.raises(SpecError, match="past the model's 2 decoder layers") as caught:
        RMU({**RMU_PARAMS, "rmu_layer": 5}, Stub(layers=2), Stub(layers=2))
    assert caught.value.field == "rmu_layer"


def test_masked_ga_saliency_mask_by_hand():
    forget, retain = [torch.tensor([4.0, 1.0, 0.0])], [torch.tensor([1.0, 1.0, 1.0])]
    assert saliency_masks(forget, retain, 1.0)[0].tolist() == [True, True, False]
    assert saliency_masks(forget, retain, 2.0)[0].tolist() == [True, False, False]
    assert saliency_masks(forget, retain, 1.0, ratio=0.34)[0].tolist() == [True, False, False]
    assert saliency_masks(forget, retain, 0.0, ratio=0.1)[0].tolist() == [False, False, False]


class Rows:
    """A set of rows (`len` + `.batch`) with one feature each."""

    def __init__(self, values):
        self.values = torch.tensor(values)

    def __len__(self):
        return len(self.values)

    def batch(self, indices, device):
        return {"x": self.values[indices]}


class Linear:
    """task_loss = mean over the batch of w . x, so its gradient is the batch's mean x."""

    device = torch.device("cpu")

    def __init__(self):
        self.w = torch.nn.Parameter(torch.tensor([1.0, 1.0]))

    def update_weights(self):
        return [self.w]

    def task_loss(self, b):
        return (b["x"] @ self.w).mean()


def test_masked_ga_fisher_and_masked_step():
    model = Linear()
    forget, retain = Rows([[2.0, 0.0], [4.0, 1.0]]), Rows([[1.0, 3.0], [1.0, 3.0]])
    # batches of one row: E[g^2] = ([2,0]^2 + [4,1]^2) / 2 = [10, 0.5]
    fisher = squared_gradients(model, [model.w], forget, torch.arange(2), batch_size=1)
    assert fisher[0].tolist() == pytest.approx([10.0, 0.5])
    params = {"mask_threshold": 1.0, "mask_ratio": 1.0, "forget_weight": 1.0, "retain_weight": 1.0, "batch_size": 1}
    method = MaskedGA(params, model, generator=torch.Generator().manual_seed(0))
    method.before_training(forget, retain)
    # retain E[g^2] = [1, 9]: saliency [10, 0.056] -> only the first weight is salient for Df
    assert method.masks[0].tolist() == [True, False] and method.masked_share == 0.5
    f_batch, r_batch = forget.batch(torch.arange(2), "cpu"), retain.batch(torch.arange(2), "cpu")
    terms = method.losses(f_batch, r_batch)
    assert terms["total"].item() == pytest.approx(-3.5 + 4.0)  # -l(Df) + l(Dr), the masked term is 0
    terms["total"].backward()
    # gradient: M (.) grad(-l(Df)) + grad l(Dr) = [-3, 0] + [1, 3]
    assert model.w.grad.tolist() == pytest.approx([-2.0, 3.0])


def test_masked_ascent_is_zero_valued():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    loss = (w * torch.tensor([3.0, 5.0])).sum()
    term = masked_ascent(loss, [w], [torch.tensor([False, True])])
    assert term.item() == 0.0
    term.backward()
    assert w.grad.tolist() == [0.0, -5.0]


def test_rmu_defaults_follow_wmdp_scaled_to_the_model():
    # WMDP: layer 7 of 32 (the output of a quarter of the depth), c = 6.5 at hidden 4096
    assert [default_layer(n) for n in (2, 3, 4, 6, 24, 32)] == [0, 0, 0, 1, 5, 7]
    assert default_coefficient(4096) == pytest.approx(6.5) and default_coefficient(64) == pytest.approx(6.5 / 8)
    tiny = RMU(RMU_PARAMS | {"rmu_coeff": None}, Stub(layers=2, hidden=64), Stub(layers=2, hidden=64))
    assert tiny.resolved() == {"rmu_layer": 0, "rmu_updated_layers": [0], "rmu_coeff": pytest.approx(0.8125)}
    rows = {"x": torch.ones(1, 2, 64), "mask": torch.ones(1, 2)}
    tiny.losses(rows, rows)
    assert tiny.direction.norm().item() == pytest.approx(0.8125, rel=1e-6)
    # target entries of WMDP's per-dimension size: c / sqrt(hidden) the same at 64 and 4096
    assert default_coefficient(64) / 8 == pytest.approx(6.5 / 64)
    given = RMU(RMU_PARAMS | {"rmu_coeff": 6.5, "rmu_layer": 1}, Stub(layers=2), Stub(layers=2))
    assert given.resolved()["rmu_coeff"] == 6.5 and given.layer == 1  # explicit values are taken as given
    big = RMU(RMU_PARAMS | {"rmu_coeff": None}, Stub(layers=32, hidden=4096), Stub(layers=32, hidden=4096))
    assert big.resolved() == {"rmu_layer": 7, "rmu_updated_layers": [5, 6, 7], "rmu_coeff": pytest.approx(6.5)}


class SequenceStub(Stub):
    """A stub LMM: logits at every position = w * the batch's `logits` (the original: w = 0, uniform)."""

    def sequence_logits(self, b):
        return self.w * b["logits"]


def kl_from_uniform(logits: list[float]) -> float:
    """KL(uniform || softmax(logits)) by hand."""
    top = max(logits)
    log_z = top + math.log(sum(math.exp(v - top) for v in logits))
    return sum((1 / len(logits)) * (math.log(1 / len(logits)) - (v - log_z)) for v in logits)


def test_kl_min_by_hand():
    # two rows, three positions each (the second row's last one is padding: the released KL counts it), V = 2
    logits = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]], [[0.0, 0.0], [1.0, -1.0], [0.5, 0.0]]])
    retain = batch([[1, 0, 0], [1, 1, 0]], logits=logits)
    retain["attention_mask"] = torch.tensor([[1, 1, 1], [1, 1, 0]])
    model, original = SequenceStub(1.0), SequenceStub(0.0)
    terms = KLMin({"kl_weight": 1.0}, model, original).losses(FORGET, retain)
    kl = sum(kl_from_uniform(position) for row in logits.tolist() for position in row) / 2  # summed, / batch size
    assert terms["kl"].item() == pytest.approx(kl, rel=1e-6)
    assert terms["forget_task"].item() == pytest.approx(2.0) and terms["retain_task"].item() == pytest.approx(0.5)
    assert terms["total"].item() == pytest.approx(-2.0 + 0.5 + kl, rel=1e-6)
    weighted = KLMin({"kl_weight": 0.5}, model, original).losses(FORGET, retain)
    assert weighted["total"].item() == pytest.approx(-2.0 + 0.5 + 0.5 * kl, rel=1e-6)


def test_kl_min_on_image_text_rows_sums_over_rows_per_example():
    class RowStub(Stub):  # retrieval: 2B rows (images over captions, captions over images) for B examples
        def retention_logits(self, b):
            return self.w * b["logits"], None

    rows = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 3.0]])  # B = 2 -> 4 rows
    retain = batch([[1, 0], [0, 0]], logits=rows)
    terms = KLMin({"kl_weight": 1.0}, RowStub(1.0), RowStub(0.0)).losses(FORGET, retain)
    assert terms["kl"].item() == pytest.approx(sum(kl_from_uniform(r) for r in rows.tolist()) / 2, rel=1e-6)


NPO_PARAMS = {"npo_beta": 0.1, "npo_reduction": "sum", "retain_weight": 1.0}


def test_npo_retain_term_and_reduction_by_hand():
    beta = 0.1
    # forget row [1, 3]: log pi = -4 w (sum) or -2 w (mean); model w = 1, reference w = 0.5
    model, reference = Stub(1.0), Stub(0.5)
    terms = NPO(NPO_PARAMS, model, reference).losses(FORGET, RETAIN)
    npo_sum = -(2 / beta) * log_sigmoid(-beta * (-4.0 - -2.0))
    assert terms["npo"].item() == pytest.approx(npo_sum, rel=1e-6)
    assert terms["retain_task"].item() == pytest.approx(0.5)  # OpenUnlearning's alpha x retain NLL, alpha 1
    assert terms["total"].item() == pytest.approx(npo_sum + 0.5, rel=1e-6)
    terms = NPO(NPO_PARAMS | {"retain_weight": 2.0}, model, reference).losses(FORGET, RETAIN)
    assert terms["total"].item() == pytest.approx(npo_sum + 2.0 * 0.5, rel=1e-6)
    mean = NPO(NPO_PARAMS | {"npo_reduction": "mean", "npo_beta": 0.4}, model, reference).losses(FORGET, RETAIN)
    assert mean["npo"].item() == pytest.approx(-(2 / 0.4) * log_sigmoid(-0.4 * (-2.0 - -1.0)), rel=1e-6)
    alone = NPO(NPO_PARAMS | {"retain_weight": 0.0}, model, reference)
    assert not alone.uses_retain and set(alone.losses(FORGET, None)) == {"total", "npo"}


def test_l_ukr_compares_normalised_features():
    from engine.methods.multidelete import MultiDelete
    from engine.models.blip_classifier import BlipClassifierAdapter
    from engine.models.clip import ClipAdapter

    class Features(ClipAdapter):  # CLIP's own unimodal_features over given f_I and f_T rows
        def __init__(self, image, text):
            self.image, self.text = image, text

        def image_embed(self, b):
            return self.image

        def text_embed(self, b):
            return self.text

    image, text = torch.tensor([[1.0, 0.0], [3.0, 4.0]]), torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    params = {"ukr_modalities": "both"}
    same = MultiDelete(params, Features(3.0 * image, 0.5 * text), Features(image, text))
    assert same.unimodal_retention_loss(RETAIN, "forget").item() == pytest.approx(0.0, abs=1e-7)  # scale: no loss
    # by hand: unit rows [1, 0] against [0, 1] differ by [1, -1] (mean square 1); the second rows agree
    turned = MultiDelete({"ukr_modalities": "image"}, Features(torch.tensor([[5.0, 0.0], [3.0, 4.0]]), text),
                         Features(torch.tensor([[0.0, 2.0], [6.0, 8.0]]), text))
    assert turned.unimodal_retention_loss(RETAIN, "forget").item() == pytest.approx((1 + 1 + 0 + 0) / 4)
    # classification adapters keep the raw encoder states, as the released classification task compares them
    assert torch.equal(BlipClassifierAdapter.unimodal_features(None, 3.0 * image, "image"), 3.0 * image)
