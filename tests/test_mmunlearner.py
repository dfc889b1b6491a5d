"""MMUnlearner as released (MLLMU_gen_mask.py + SFRon.py + MLLMU_manifold.py): two saliency masks with their
own preserve sets, the ascent on the forget image questions through the masks only, and the vision side
trained whatever --update says. Hand-built cases, then the real adapters and the people task's sets."""
from __future__ import annotations

import pytest
import torch

from engine.methods.mmunlearner import MMUnlearner

PARAMS = {"mask_threshold": 1.0, "mask_ratio": 1.0, "forget_weight": 1.0, "retain_weight": 1.0, "batch_size": 1,
          "update": "llm"}


class Rows:
    """A question set (`len`, `.batch`, `image_slot`): row k has language features x and vision features v;
    a text-only row (slot -1) reaches no vision weight (v = 0)."""

    def __init__(self, x, v):
        self.x, self.v = torch.tensor(x), torch.tensor(v)
        self.image_slot = torch.tensor([0 if any(row) else -1 for row in v])

    def __len__(self):
        return len(self.x)

    def batch(self, indices, device):
        return {"x": self.x[indices], "v": self.v[indices]}


class TwoTowers:
    """task_loss = mean over the batch of x . lang + v . vis: its gradient is the batch's mean x (language
    weights) and mean v (vision weights). `update_weights` (what --update llm covers) holds lang only."""

    device = torch.device("cpu")

    def __init__(self):
        self.lang = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
        self.vis = torch.nn.Parameter(torch.tensor([1.0, 1.0]))

    def update_weights(self):
        return [self.lang]

    def language_weights(self):
        return [self.lang]

    def vision_weights(self):
        return [self.vis]

    def task_loss(self, b):
        return (b["x"] @ self.lang + b["v"] @ self.vis).mean()


# forget: one image question (x [2, 1], v [3, 2.5]) and one by-name row (x [0, 5]) that the masks must not read
FORGET = Rows([[2.0, 1.0], [0.0, 5.0]], [[3.0, 2.5], [0.0, 0.0]])
# the text-only knowledge of every person (here the forget person's by-name fact): it uses lang[1]
KNOWLEDGE = Rows([[0.0, 2.0]], [[0.0, 0.0]])
# the retain people's image questions
RETAIN_VQA = Rows([[1.0, 0.0]], [[2.0, 3.0]])


def made(model=None):
    model = model or TwoTowers()
    method = MMUnlearner(PARAMS, model, generator=torch.Generator().manual_seed(0))
    method.preserve_sets = {"knowledge": KNOWLEDGE, "retain_vqa": RETAIN_VQA}
    method.before_training(FORGET, RETAIN_VQA)
    return model, method


def test_two_masks_each_against_its_own_preserve_set():
    model, method = made()
    # F_forget from the image row alone: lang [4, 1], vis [9, 6.25] (the by-name row would add x [0, 5])
    # language preserve = mean over the batches of knowledge and retain VQA: ([0, 4] + [1, 0]) / 2 = [0.5, 2]
    #   saliency [8, 0.5] -> [True, False]: lang[1] carries the forget person's text-only fact, kept
    #   (against the retain VQA alone, [1, 0], both would be masked: today's Df-vs-Dr mask)
    # vision preserve = the retain VQA alone: [4, 9] -> saliency [2.25, 0.69] -> [True, False]
    #   (with the knowledge rows' batches averaged in, [2, 4.5]: [4.5, 1.39] -> both masked)
    language, vision = method.masks
    assert language.tolist() == [True, False] and vision.tolist() == [True, False]
    record = method.record()
    assert record["masks"]["language"]["preserve"] == {"text_only_questions_of_every_person": 1,
                                                       "retain_image_questions": 1}
    assert record["masks"]["vision"]["preserve"] == {"retain_image_questions": 1}
    assert record["masks"]["language"]["masked_share"] == 0.5 and record["masks"]["vision"]["masked"] == 1
    assert record["forget_rows"] == {"image_questions": 1}


def test_vision_side_trains_whatever_update_says_and_the_ascent_is_masked():
    model, method = made()
    trained = method.trainable_parameters()
    assert any(p is model.vis for p in trained) and any(p is model.lang for p in trained)  # --update llm
    terms = method.losses(FORGET.batch(torch.tensor([0]), "cpu"), RETAIN_VQA.batch(torch.tensor([0]), "cpu"))
    # value: -l(forget) + l(retain) with every weight 1 = -(2 + 1 + 3 + 2.5) + (1 + 0 + 2 + 3)
    assert terms["total"].item() == pytest.approx(-8.5 + 6.0)
    terms["total"].backward()
    # gradient: M (.) grad(-l(forget)) + grad l(retain): lang -[2, 1].[1, 0] + [1, 0]; vis -[3, 2.5].[1, 0] + [2, 3]
    assert model.lang.grad.tolist() == pytest.approx([-1.0, 0.0])
    assert model.vis.grad.tolist() == pytest.approx([-1.0, 3.0])


def test_without_preserve_sets_it_says_to_run_through_pulse():
    from engine.errors import SpecError

    method = MMUnlearner(PARAMS, TwoTowers(), generator=torch.Generator().manual_seed(0))
    with pytest.raises(SpecError, match="run it through `pulse`"):
        method.before_training(FORGET, RETAIN_VQA)


def test_llava_vision_weights_are_the_tower_and_projector_under_any_update():
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from engine.data.people import build_people_world
    from engine.models import lora
    from engine.models.llava import LlavaAdapter, build_tiny_llava

    world = build_people_world("people-tiny", seed=0)
    directory = __import__("tempfile").mkdtemp()
    build_tiny_llava(world.vocabulary(), seed=0, directory=directory)
    adapter = LlavaAdapter(LlavaForConditionalGeneration.from_pretrained(directory),
                           AutoProcessor.from_pretrained(directory), directory, tiny=True)
    lora.attach(adapter, "llm")
    names = {id(p): n for n, p in adapter.core.named_parameters()}
    vision = [names[id(p)] for p in adapter.vision_weights()]
    language = [names[id(p)] for p in adapter.language_weights()]
    assert vision and all(n.startswith(("model.vision_tower.", "model.multi_modal_projector.")) for n in vision)
    assert any(n.startswith("model.multi_modal_projector.") for n in vision)
    assert language and all("language_model" in n and "lora_" not in n for n in language)
    method = MMUnlearner(PARAMS, adapter)
    trained = {names[id(p)] for p in method.trainable_parameters()}
    assert set(vision) <= trained and set(language) <= trained  # the vision side although --update is llm
    lora.merge(adapter)


def test_people_task_preserve_sets(home):
    from engine import spec as specs
    from engine.errors import SpecError
    from engine.tasks.multiple_choice import MultipleChoice

    def task(**params):
        normal = specs.validate_pulse({"method": "mmunlearner", "model": "llava-tiny", "data": "people-tiny",
                                       "knowledge": "finetuned", "forget": 2, "device": "cpu", "params": params})
        return MultipleChoice(normal, lambda *a, **k: None, lambda: False, None)

    people = task()
    forget, retain, other = set(people.forget_people), set(people.retain_people), set(people.other_people)
    sets = people.preserve_items()
    knowledge = sets["knowledge"]
    assert knowledge and all(item.image is None for item in knowledge)
    # every person the original learned, the forget people included; never a held-out person
    assert {item.person_id for item in knowledge} == forget | retain | other
    assert not {item.person_id for item in knowledge} & set(people.heldout_people)
    vqa = sets["retain_vqa"]
    assert vqa and all(item.image is not None for item in vqa) and {item.person_id for item in vqa} == retain
    # its ascent reads image questions only: the text-only forget rows are refused, in one line
    with pytest.raises(SpecError, match="--forget-rows all: mmunlearner ascends"):
        task(forget_rows="all")
