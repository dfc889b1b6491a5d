"""MMUnlearner (Huo et al. 2025, "MMUnlearner: Reformulating Multimodal Machine Unlearning in the Era of
Multimodal Large Language Models", ACL Findings), as released: `data_process/MLLMU_gen_mask.py` (the two
masks), `data_process/SFRon.py` (`Mask_Our`, the saliency) and `baselines/MLLMU_manifold.py` (the masked
ascent with retain descent). It erases the visual route to the forget people's facts while keeping their
textual knowledge.

Two saliency masks, made once per request before its first step. For each weight w,
    s(w) = (F_forget(w) + 1e-15) / (F_preserve(w) + 1e-15),   M = [s >= threshold]  (released: 1),
F_X(w) = the mean over X's batches of the squared gradient of the batch's answer NLL (a diagonal Fisher);
- the language mask covers the language model's weights; its preserve set is the text-only questions of
  EVERY person the original learned, the forget people included (the released `MLLMU_text_Dataset` over the
  Full_Set), plus the retain people's image questions (the retain VQA);
- the vision mask covers the vision tower and the projector; its preserve set is the retain VQA alone;
- F_forget for both: the forget people's image questions (the forget VQA).
Each step then descends
    gamma * M (.) grad(-l(forget VQA)) + alpha * grad l(Dr),
the ascent on the forget image questions only and only through masked weights, the retain descent on every
weight the method trains. The vision tower and projector are trained whatever `--update` says: the method
is defined by its vision mask (the document records it under `method_record`); the language model's weights
are those the update target covers (under `llm` its LoRA-adapted projections themselves, as a mask on single
weights is not expressible through LoRA factors).

Deliberate differences from the released code, each stated:
- one optimizer step on the sum of the two terms (released: a masked ascent step, then a retain step);
- the released training script keeps the mask only on linear layers (names with proj/fc/linear/mlp/qkv) and
  lets every other covered weight ascend unmasked; here the ascent is masked on every weight the masks
  cover, and weights outside both modules (the lm_head) are not trained;
- the language preserve Fisher averages over the batches of its two sets drawn apart (the released
  concatenation shuffles them into mixed batches);
- Dr for the retain descent is the task's retain set (both routes), the same for every method; the released
  script descends on the retain VQA;
- `mask_ratio` < 1 (ours; default 1 = the released threshold rule) keeps at most that share of each mask's
  weights, the most salient.
"""
from __future__ import annotations

import torch

from engine.errors import SpecError
from engine.methods.base import Method
from engine.methods.masked_ga import masked_ascent, saliency_masks


def squared_gradient_sums(model, parameters: list, dataset, rows: torch.Tensor, batch_size: int):
    """(sum over the batches of `rows` of each parameter's squared task-loss gradient, number of batches)."""
    sums = [torch.zeros_like(p, dtype=torch.float32) for p in parameters]
    chunks = rows.split(batch_size) if len(rows) else ()
    for chunk in chunks:
        loss = model.task_loss(dataset.batch(chunk, model.device))
        for total, grad in zip(sums, torch.autograd.grad(loss, parameters, allow_unused=True)):
            if grad is not None:
                total += grad.float().pow(2)
    return sums, len(chunks)


def image_rows(dataset) -> torch.Tensor:
    """The rows of a question set that carry an image."""
    return (dataset.image_slot >= 0).nonzero().squeeze(1)


def all_rows(dataset) -> torch.Tensor:
    return torch.arange(len(dataset))


class MMUnlearner(Method):
    uses_forget = True
    uses_retain = True
    preserve_sets: dict | None = None  # {"knowledge": every person's text-only rows, "retain_vqa": ...}, from the task

    def trainable_parameters(self):
        language = self.model.language_weights()
        inside = {id(p) for p in language}
        return language + [p for p in self.model.vision_weights() if id(p) not in inside]

    def before_training(self, forget, retain) -> None:
        if self.preserve_sets is None:
            raise SpecError("mmunlearner needs its preserve sets (every person's text-only questions and the retain "
                            "image questions); run it through `pulse`", field="method")
        p, model = self.params, self.model
        self.language = model.language_weights()
        inside = {id(w) for w in self.language}
        self.vision = [w for w in model.vision_weights() if id(w) not in inside]
        weights = self.language + self.vision
        knowledge, retain_vqa = self.preserve_sets["knowledge"], self.preserve_sets["retain_vqa"]
        forget_images = image_rows(forget)
        if not len(forget_images):
            raise SpecError("mmunlearner ascends on the forget people's image questions and this request has none",
                            field="method")
        forget_sums, forget_batches = squared_gradient_sums(model, weights, forget, forget_images, p["batch_size"])
        forget_fisher = [s / forget_batches for s in forget_sums]
        knowledge_sums, knowledge_batches = squared_gradient_sums(model, self.language, knowledge, all_rows(knowledge),
                                                                  p["batch_size"])
        vqa_sums, vqa_batches = squared_gradient_sums(model, weights, retain_vqa, all_rows(retain_vqa), p["batch_size"])
        count = len(self.language)
        language_preserve = [(k + r) / max(knowledge_batches + vqa_batches, 1)
                             for k, r in zip(knowledge_sums, vqa_sums[:count])]
        vision_preserve = [r / max(vqa_batches, 1) for r in vqa_sums[count:]]
        threshold, ratio = p["mask_threshold"], p["mask_ratio"]
        language_masks = saliency_masks(forget_fisher[:count], language_preserve, threshold, ratio)
        vision_masks = saliency_masks(forget_fisher[count:], vision_preserve, threshold, ratio)
        self.masks = language_masks + vision_masks
        self.record_fields = {
            "variant": "released (MLLMU_gen_mask.py + MLLMU_manifold.py): two masks, ascent on the forget image "
                       "questions, one optimizer step per batch",
            "forget_rows": {"image_questions": len(forget_images)},
            "masks": {
                "language": mask_summary(language_masks, threshold, ratio,
                                         {"text_only_questions_of_every_person": len(knowledge),
                                          "retain_image_questions": len(retain_vqa)}),
                "vision": mask_summary(vision_masks, threshold, ratio, {"retain_image_questions": len(retain_vqa)}),
            },
            "trained": {"language": f"the language-model weights that --update {p.get('update', 'full')} covers",
                        "vision": "the vision tower and projector, whatever --update says (the method's vision mask)"},
        }

    def losses(self, forget, retain):
        p = self.params
        forget_task = self.model.task_loss(forget)
        ascent = masked_ascent(forget_task, self.language + self.vision, self.masks)
        retain_task = self.model.task_loss(retain)
        forget_term = p["forget_weight"] * (ascent - forget_task.detach())  # value -l(Df), gradient masked
        total = forget_term + p["retain_weight"] * retain_task
        return {"total": total, "forget_task": forget_task.detach(), "retain_task": retain_task}

    def record(self) -> dict:
        return getattr(self, "record_fields", {})


def mask_summary(masks: list[torch.Tensor], threshold: float, ratio: float, preserve: dict) -> dict:
    """What a mask is: its weights, the share of them masked (the ascent moves those; sparsity = 1 - share),
    its rule and the rows of its preserve set."""
    weights = sum(m.numel() for m in masks)
    masked = int(sum(int(m.sum()) for m in masks))
    return {"weights": weights, "masked": masked, "masked_share": masked / max(weights, 1),
            "threshold": threshold, "ratio": ratio, "preserve": preserve}
