"""The LLaVA adapter: tiny config round trip, answer-token losses checked by hand, LoRA targets, MultiDelete terms."""
from __future__ import annotations

import math

import pytest
import torch

from engine.data.people import build_people_world
from engine.data.people_batches import Row, encode_items, encode_rows
from engine.methods.ga_klr import GAKLR, kl_to_original
from engine.methods.multidelete import MultiDelete
from engine.methods.npo import NPO, npo_loss
from engine.models import lora
from engine.models.llava import IMAGE_PROMPT, LlavaAdapter, build_tiny_llava
from engine.models.lmm import answer_positions, question_mask


@pytest.fixture(scope="module")
def world():
    return build_people_world("people-tiny", seed=0)


@pytest.fixture(scope="module")
def tiny_dir(world, tmp_path_factory):
    directory = tmp_path_factory.mktemp("llava-tiny")
    build_tiny_llava(world.vocabulary(), seed=0, directory=directory)
    return directory


def load(directory) -> LlavaAdapter:
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(directory)
    return LlavaAdapter(model, AutoProcessor.from_pretrained(directory), str(directory), tiny=True)


@pytest.fixture
def adapter(tiny_dir):
    torch.manual_seed(0)
    return load(tiny_dir)


@pytest.fixture
def batch(adapter, world):
    person = world.people[0]
    rows = [Row("What is the job of this person?", person.facts["job"], person.images[0], 0),
            Row(f"What is the job of {person.name}?", person.facts["job"], None, 0),
            Row("Who is this person?", person.name, person.images[1], 0)]
    return encode_rows(adapter, rows).batch(torch.arange(3), "cpu")


def test_tiny_llava_loads_back_through_from_pretrained(tiny_dir, adapter):
    from transformers import AutoConfig, AutoProcessor

    config = AutoConfig.from_pretrained(tiny_dir)
    assert config.model_type == "llava" and config.vision_feature_select_strategy == "default"
    assert type(AutoProcessor.from_pretrained(tiny_dir)).__name__ == "LlavaProcessor"
    tokenizer = adapter.tokenizer
    assert tokenizer.convert_ids_to_tokens(config.image_token_id) == "<image>"
    assert config.image_token_id < config.text_config.vocab_size
    assert {config.text_config.pad_token_id, config.text_config.bos_token_id, config.text_config.eos_token_id} < set(
        range(config.text_config.vocab_size))
    assert adapter.n_image_tokens == (32 // 8) ** 2 == 16
    ids = adapter.prompt_ids("What is the job of this person?", with_image=True)
    assert ids.count(config.image_token_id) == 16
    assert adapter.prompt_ids("What is the job of this person?", with_image=False).count(config.image_token_id) == 0
    assert tokenizer.unk_token_id not in ids  # the chat words and punctuation are in the vocabulary


def test_image_token_count_follows_the_feature_strategy(tiny_dir):
    from transformers import AutoConfig

    from engine.models.llava import n_image_tokens

    config = AutoConfig.from_pretrained(tiny_dir)
    assert n_image_tokens(config) == 16
    config.vision_feature_select_strategy = "full"
    assert n_image_tokens(config) == 17


def test_labels_cover_only_the_answer_and_eos(adapter, batch):
    labels, ids = batch["labels"], batch["input_ids"]
    for row in range(3):
        answer = labels[row][labels[row] != -100]
        assert answer[-1] == adapter.tokenizer.eos_token_id
        assert (ids[row][labels[row] != -100] == answer).all()
        assert not (labels[row] == adapter.image_token_id).any()
    assert batch["has_image"].tolist() == [True, False, True]


def test_answer_positions_by_hand():
    labels = torch.tensor([[-100, -100, 7, 8, -100], [-100, -100, -100, 9, -100]])
    positions, targets, mask = answer_positions(labels)
    assert positions[0].tolist() == [1, 2] and targets[0].tolist() == [7, 8]
    assert positions[1, :1].tolist() == [2] and targets[1, 0] == 9
    assert mask.tolist() == [[True, True], [True, False]]


def test_forward_matches_llava_and_losses_by_hand(adapter, batch):
    """Our forward (which lets image and text-only rows share a batch) gives LLaVA's own logits."""
    image_rows = batch["has_image"]
    sub = {k: v[image_rows] for k, v in batch.items()}
    with torch.no_grad():
        reference = adapter.core(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"],
                                 pixel_values=sub["pixel_values"]).logits
        ours = adapter.core.lm_head(adapter.hidden_states(sub["input_ids"], sub["attention_mask"],
                                                          sub["pixel_values"], sub["has_image"]))
    assert torch.allclose(reference, ours, atol=1e-5)

    with torch.no_grad():
        log_probs = torch.log_softmax(reference.float(), -1)
        per_row_sum, per_row_mean = [], []
        for row in range(sub["labels"].shape[0]):
            terms = [log_probs[row, t - 1, sub["labels"][row, t]] for t in range(1, sub["labels"].shape[1])
                     if sub["labels"][row, t] != -100]
            per_row_sum.append(sum(terms))
            per_row_mean.append(-sum(terms) / len(terms))
        assert torch.allclose(adapter.log_likelihood(sub), torch.stack(per_row_sum), atol=1e-5)
        assert torch.allclose(adapter.task_loss(sub), torch.stack(per_row_mean).mean(), atol=1e-5)
        # HF's own loss is the token-weighted mean: equal to ours when the answers have the same length
        assert adapter.example_losses(sub).shape == (2,)


def test_masked_kl_ignores_prompt_and_padding(adapter, batch):
    logits, mask = adapter.retention_logits(batch)
    lengths = (batch["labels"] != -100).sum(1)
    assert logits.shape[:2] == mask.shape and mask.sum(1).tolist() == lengths.tolist()
    garbage = logits.detach().clone()
    garbage[~mask] = torch.randn_like(garbage[~mask]) * 50  # padding rows of the answer window: ignored
    assert torch.allclose(kl_to_original(garbage, logits, mask), torch.zeros(()), atol=1e-6)
    # a different prompt with the same answer tokens changes nothing outside the answer rows
    other = torch.randn_like(logits)
    expected = kl_to_original(other[mask], logits[mask])
    assert torch.allclose(kl_to_original(other, logits, mask), expected, atol=1e-5)


def test_npo_uses_sequence_log_probs(adapter, batch):
    original = adapter.frozen_copy()
    method = NPO({"npo_beta": 0.1}, adapter, original)
    losses = method.losses(batch, None)
    assert math.isclose(float(losses["total"].detach()), (2 / 0.1) * math.log(2), rel_tol=1e-5)  # same model: log 2
    log_prob = adapter.log_likelihood(batch)
    assert torch.allclose(npo_loss(log_prob, log_prob.detach() + 1.0, 0.1),
                          -(2 / 0.1) * torch.nn.functional.logsigmoid(torch.full((3,), 0.1)).mean())


def test_ga_klr_on_lmm_batches(adapter, batch):
    method = GAKLR({"kl_weight": 1.0}, adapter, adapter.frozen_copy())
    losses = method.losses(batch, batch)
    assert abs(float(losses["kl"])) < 1e-6
    assert torch.isclose(losses["total"], -losses["forget_task"] + losses["kl"])


def _step(adapter, method, forget, retain=None, lr=1e-2):
    params = method.trainable_parameters()
    for p in adapter.core.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    adapter.model.train()
    loss = method.losses(forget, retain)["total"]
    loss.backward()
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p -= lr * p.grad.sign()


def test_lora_llm_leaves_projector_and_vision_frozen(adapter, batch):
    from engine.methods.neggrad import NegGrad

    projector = {k: v.clone() for k, v in adapter.core.model.multi_modal_projector.state_dict().items()}
    vision = {k: v.clone() for k, v in adapter.core.model.vision_tower.state_dict().items()}
    q_before = adapter.core.model.language_model.layers[0].self_attn.q_proj.weight.clone()
    trainable = lora.attach(adapter, "llm")
    names = [n for n, p in adapter.core.named_parameters() if any(p is t for t in trainable)]
    assert names and all("lora_" in n and "language_model" in n for n in names)
    targets = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert not any("multi_modal_projector" in n for n in names)
    _step(adapter, NegGrad({}, adapter), batch)
    lora.merge(adapter)
    assert adapter.model is adapter.core and type(adapter.core).__name__ == "LlavaForConditionalGeneration"
    assert all(torch.equal(v, adapter.core.model.multi_modal_projector.state_dict()[k]) for k, v in projector.items())
    assert all(torch.equal(v, adapter.core.model.vision_tower.state_dict()[k]) for k, v in vision.items())
    assert not torch.equal(q_before, adapter.core.model.language_model.layers[0].self_attn.q_proj.weight)


def test_lora_proj_llm_trains_the_projector(adapter, batch):
    from engine.methods.neggrad import NegGrad

    before = adapter.core.model.multi_modal_projector.linear_1.weight.clone()
    trainable = lora.attach(adapter, "proj+llm")
    projector = list(adapter.core.model.multi_modal_projector.parameters())
    assert all(any(p is t for t in trainable) for p in projector)
    assert adapter.parameter_groups()["vision"] and all(
        any(p is q for q in projector) for p in adapter.parameter_groups()["vision"])
    _step(adapter, NegGrad({}, adapter), batch)
    lora.merge(adapter)
    assert not torch.equal(before, adapter.core.model.multi_modal_projector.linear_1.weight)


def test_multidelete_on_lmm_batches(adapter, world):
    items = [item for item in world.person_train if item.person_id in (world.people[0].person_id,
                                                                        world.people[1].person_id)]
    data = encode_items(adapter, world, items, multimodal=True)
    assert len(data) == len(items)  # text-only questions are shown with the person's portrait
    batch = data.batch(torch.arange(0, len(data), 5), "cpu")
    assert batch["has_image"].all() and "text_input_ids" in batch
    image_positions = batch["input_ids"] == adapter.image_token_id
    assert (image_positions == image_positions[:1]).all()  # same positions in every row: permuting is safe
    assert adapter.image_embed(batch).shape == adapter.fused_embed(batch).shape == adapter.text_embed(batch).shape
    params = {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "ukr_on": "df", "ukr_modalities": "both", "train": "all"}
    lora.attach(adapter, "llm")
    method = MultiDelete(params, adapter, None)
    method.original = _frozen_before_lora(adapter)
    losses = method.losses(batch, batch)
    assert float(losses["mkr"]) < 1e-8 and float(losses["ukr"]) < 1e-8 and float(losses["md"]) > 0
    losses["total"].backward()


def test_text_embedding_reads_the_question_not_the_answer(adapter, world):
    """f_T pools the question's own tokens of the text-only prompt: the answer (the fact L_MD decouples)
    and the template's words are not in it, so L_UKR on Df cannot pin the fact itself."""
    person = world.people[0]
    question = f"What is the job of {person.name}?"
    rows = [Row(question, person.facts["job"], person.images[0], 0),
            Row(question, world.people[1].facts["job"], person.images[0], 0),
            Row("Who is this person?", person.name, person.images[1], 0)]
    batch = encode_rows(adapter, rows, with_text=True).batch(torch.arange(3), "cpu")
    before, after = adapter.text_template_lengths
    mask = question_mask(batch["text_labels"], batch["text_attention_mask"], before, after)
    for row, text in ((0, question), (2, "Who is this person?")):
        expected = adapter.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert batch["text_input_ids"][row][mask[row]].tolist() == expected
    with torch.no_grad():
        f_t = adapter.text_embed(batch)
        fused = adapter.fused_embed(batch)
    assert torch.allclose(f_t[0], f_t[1], atol=1e-6)  # same question, different answers: the same f_T
    assert not torch.allclose(fused[0], fused[1], atol=1e-4)  # while f(I, T) reads the answer


def _frozen_before_lora(adapter):
    """A frozen copy of the weights the LoRA factors start from (LoRA B = 0, so they are the same)."""
    import copy

    twin = copy.copy(adapter)
    twin.core = twin.model = copy.deepcopy(adapter.core).eval()
    for p in twin.core.parameters():
        p.requires_grad_(False)
    return twin


def test_image_prompt_is_llava_1_5():
    assert IMAGE_PROMPT == "USER: <image>\n{question} ASSISTANT:"


def test_the_catalogs_decoder_layers_are_the_tiny_models_and_its_checkpoints(tiny_dir, adapter):
    """`--rmu-layer` past the decoder is refused before a session exists, from these counts (engine/preflight.py);
    it failed the session after the original had trained."""
    from engine.errors import SpecError
    from engine.preflight import check_rmu_layer, decoder_layers
    from engine.spec import MODELS

    assert MODELS["llava-tiny"].decoder_layers == adapter.num_layers == decoder_layers(str(tiny_dir))
    with pytest.raises(SpecError, match=r"--rmu-layer 2 is past the model's 2 decoder layers; choose 0..1"):
        check_rmu_layer({"model": str(tiny_dir), "params": {"rmu_layer": 2}})
    check_rmu_layer({"model": "llava-tiny", "params": {"rmu_layer": 1}})
