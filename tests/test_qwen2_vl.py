"""The Qwen2-VL adapter: tiny config round trip, our forward against transformers' own (M-RoPE, mixed image
and text-only rows, padding), answer-token losses by hand, LoRA targets, refusal rows, RMU's layer hooks."""
from __future__ import annotations

import pytest
import torch

from engine.data.people import build_people_world
from engine.data.people_batches import Row, encode_items, encode_rows
from engine.models import lora
from engine.models.qwen2_vl import IMAGE_PROMPT, Qwen2VLAdapter, build_tiny_qwen2_vl


@pytest.fixture(scope="module")
def world():
    return build_people_world("people-tiny", seed=0)


@pytest.fixture(scope="module")
def tiny_dir(world, tmp_path_factory):
    directory = tmp_path_factory.mktemp("qwen2-vl-tiny")
    build_tiny_qwen2_vl(world.vocabulary(), seed=0, directory=directory)
    return directory


@pytest.fixture
def adapter(tiny_dir):
    return Qwen2VLAdapter.from_checkpoint(str(tiny_dir), tiny=True)


@pytest.fixture
def batch(adapter, world):
    person = world.people[0]
    rows = [Row("What is the job of this person?", person.facts["job"], person.images[0], 0),
            Row(f"What is the job of {person.name}?", person.facts["job"], None, 0),
            Row("Who is this person?", person.name, person.images[1], 0)]
    return encode_rows(adapter, rows).batch(torch.arange(3), "cpu")


def test_tiny_qwen2_vl_loads_back_through_from_pretrained(tiny_dir, adapter):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_dir)
    assert config.model_type == "qwen2_vl" and type(adapter.core).__name__ == "Qwen2VLForConditionalGeneration"
    assert adapter.tokenizer.convert_ids_to_tokens(config.image_token_id) == "<|image_pad|>"
    assert adapter.image_side == 32 and adapter.grid == (1, 8, 8)
    assert adapter.n_image_tokens == (32 // (4 * 2)) ** 2 == 16  # 8x8 patches, merged 2x2
    ids = adapter.prompt_ids("What is the job of this person?", with_image=True)
    assert ids.count(config.image_token_id) == 16 and adapter.tokenizer.unk_token_id not in ids
    assert adapter.tokenizer.convert_ids_to_tokens(ids[:3]) == ["<|im_start|>", "user", "<|vision_start|>"]
    assert adapter.answer_ids("baker")[-1] == adapter.tokenizer.convert_tokens_to_ids("<|im_end|>")
    pixels = adapter.preprocess_images([build_people_world("people-tiny").people[0].portrait])
    assert pixels.shape == (1, 64, 3 * 2 * 4 * 4)  # patches x (channels x temporal x patch x patch)


def test_forward_matches_qwen2_vl_and_losses_by_hand(adapter, batch):
    """Our forward (image and text-only rows in one right-padded batch) gives the model's own logits: the
    same M-RoPE positions, image features and language model."""
    has_image = batch["has_image"]
    assert has_image.tolist() == [True, False, True] and bool((batch["attention_mask"] == 0).any())
    flat = batch["pixel_values"][has_image].reshape(-1, batch["pixel_values"].shape[-1])
    with torch.no_grad():
        reference = adapter.core(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 pixel_values=flat, image_grid_thw=adapter.grids(2, "cpu"),
                                 mm_token_type_ids=(batch["input_ids"] == adapter.image_token_id).int()).logits
        ours = adapter.core.lm_head(adapter.hidden_states(batch["input_ids"], batch["attention_mask"],
                                                          batch["pixel_values"], has_image))
    attended = batch["attention_mask"].bool()
    assert torch.allclose(reference[attended], ours[attended], atol=1e-5)

    with torch.no_grad():
        log_probs = torch.log_softmax(reference.float(), -1)
        sums, means = [], []
        for row in range(3):
            terms = [log_probs[row, t - 1, batch["labels"][row, t]] for t in range(1, batch["labels"].shape[1])
                     if batch["labels"][row, t] != -100]
            sums.append(sum(terms))
            means.append(-sum(terms) / len(terms))
        assert torch.allclose(adapter.log_likelihood(batch), torch.stack(sums), atol=1e-5)
        assert torch.allclose(adapter.task_loss(batch), torch.stack(means).mean(), atol=1e-5)
        lengths = (batch["labels"] != -100).sum(1)
        assert torch.allclose(adapter.mean_log_likelihood(batch), torch.stack(sums) / lengths, atol=1e-5)


def test_lora_targets_the_language_model(adapter, batch):
    merger = {k: v.clone() for k, v in adapter.projector.state_dict().items()}
    trainable = lora.attach(adapter, "llm")
    names = [n for n, p in adapter.core.named_parameters() if any(p is t for t in trainable)]
    assert names and all("lora_" in n and "language_model" in n for n in names)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names} == set(lora.LLM_LINEAR)
    covered = adapter.update_weights()  # MMUnlearner's: the adapted projections themselves
    assert covered and all(any(p is q for q in covered) for n, p in adapter.core.named_parameters()
                           if n.endswith("q_proj.base_layer.weight"))
    loss = -adapter.task_loss(batch)
    loss.backward()
    lora.merge(adapter)
    assert type(adapter.core).__name__ == "Qwen2VLForConditionalGeneration"
    assert all(torch.equal(v, adapter.projector.state_dict()[k]) for k, v in merger.items())
    trainable = lora.attach(adapter, "proj+llm")
    assert all(any(p is t for t in trainable) for p in adapter.projector.parameters())
    lora.merge(adapter)


def test_rmu_hooks(adapter, batch):
    states, mask = adapter.layer_states(batch, 1)
    assert states.shape[:2] == batch["input_ids"].shape and mask.sum() == (batch["labels"] != -100).sum()
    lora.attach(adapter, "llm")
    steered = adapter.steer_parameters([1])
    names = {n for n, p in adapter.core.named_parameters() if any(p is q for q in steered)}
    assert names and all("layers.1.mlp.down_proj.lora_" in n for n in names)
    lora.merge(adapter)


def test_refusal_rows_share_the_prompt(adapter, world):
    items = [item for item in world.person_train if item.person_id == world.people[0].person_id][:4]
    data = encode_items(adapter, world, items, refusals=True)
    batch = data.batch(torch.arange(len(items)), "cpu")
    for row in range(len(items)):
        prompt = batch["labels"][row] == -100
        refusal_prompt = batch["refusal_labels"][row] == -100
        n = int(prompt.long().argmin())  # the prompt's length: the first answer token
        assert torch.equal(batch["input_ids"][row, :n], batch["refusal_input_ids"][row, :n])
        assert int(refusal_prompt.long().argmin()) == n
    refusal = batch["refusal_labels"][0][batch["refusal_labels"][0] != -100]
    words = adapter.tokenizer.convert_ids_to_tokens(refusal.tolist())
    assert words[-1] == "<|im_end|>" and "know" in words and adapter.tokenizer.unk_token not in words


def test_image_prompt_is_qwen2_vl_chat():
    assert IMAGE_PROMPT.startswith("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>")
    assert IMAGE_PROMPT.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_the_catalogs_decoder_layers_are_the_tiny_models(tiny_dir, adapter):
    from engine.preflight import decoder_layers
    from engine.spec import MODELS

    assert MODELS["qwen2-vl-tiny"].decoder_layers == adapter.num_layers == decoder_layers(str(tiny_dir))
