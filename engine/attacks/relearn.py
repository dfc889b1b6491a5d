"""Relearning: fine-tune the unlearned model briefly on a small part of the forget set, or on the retain data
most like it, with the task's own training loss, and see how much of what was forgotten returns.

OFFSIDE (arXiv 2510.22535) and the LLM relearning literature (ANCHORS.md s. 9): forgetting that a few
steps of fine-tuning undo is hidden, not removed. Retrain relearns too, so the same attack on a Retrain of
the same deletion set is the baseline (engine/attacks/run.py runs both).

- `on=df-sample`: `units` Df units drawn with the attack's seed (default a quarter of Df, at least one);
- `on=neighbours`: the `units` Dr units nearest to Df, by the cosine of the unlearned model's unimodal
  embedding f_I of each unit's media (the image; a graph's f_G), nearest to any Df unit first: the "related
  data" attack, which never shows the model a deleted unit;
- training: the one loop (engine/loop.py: AdamW, cosine schedule, clipping) for `steps` steps (default 10)
  on the task loss (`task_loss`: CLIP's InfoNCE, BLIP's ITC+ITM, a classifier's CE), batches of `batch_size`
  (default 8) drawn with the attack's seed, at `lr` (default the original's training rate: the recipe that
  taught Df in the first place).
Recovery is then measured on the whole Df (the sampled units included, as the relearning papers score the
whole forget set); the neighbours variant sees none of it.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.loop import LoopConfig, run_loop
from engine.methods.base import Method
from engine.seeding import derive_seed

class Relearn(Method):
    """Descend the task loss on the attack's set (the loop's forget stream)."""

    uses_forget = True

    def losses(self, forget, retain):
        loss = self.model.task_loss(forget)
        return {"total": loss, "task": loss}


def unit_embeddings(model, pairs) -> torch.Tensor:
    """[n_units, d] L2-normalised f_I of each unit of `pairs` (read from its first text's row)."""
    first = {}
    for row, unit in enumerate(pairs.pair_unit.tolist()):
        first.setdefault(unit, row)
    rows = torch.as_tensor([first[u] for u in range(pairs.n_units)])
    model.model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(rows), 128):
            batch = pairs.batch(rows[start : start + 128], model.device)
            out.append(torch.nn.functional.normalize(model.image_embed(batch).float(), dim=-1).cpu())
    return torch.cat(out)


def chosen_units(task, model, on: str, units: int, seed: int, emit=None) -> list[int]:
    """The training units of the attack (indices into the task's training units; people data: person ids). More
    neighbours than Dr holds are refused by the spec check where the parent's document records Dr's size; one
    written before that takes all of Dr, said in a warning."""
    from engine.attacks.people import deleted_units

    deletion = sorted(deleted_units(task))
    if on == "df-sample":
        rng = np.random.default_rng(derive_seed(seed, "attack", "relearn", "sample"))
        return sorted(rng.choice(deletion, size=min(units, len(deletion)), replace=False).tolist())
    deleted = set(deletion)
    retain = [i for i in range(task.train.n_units) if i not in deleted]
    if units > len(retain) and emit is not None:
        emit("log", level="warning", message=f"--units {units}: Dr holds {len(retain)} units, so the attack "
                                             f"relearns on all {len(retain)} of them")
    embeddings = unit_embeddings(model, task.train)
    nearest = (embeddings[retain] @ embeddings[deletion].t()).max(dim=1).values  # each Dr unit's closest Df unit
    order = torch.argsort(nearest, descending=True, stable=True)[: min(units, len(retain))]
    return sorted(retain[i] for i in order.tolist())


def relearn(task, model, params: dict, seed: int, emit, should_stop):
    """Fine-tune `model` in place; returns (the task that evaluates it, what was done). `params["chosen"]`, when
    given, are the units to train on (the baseline on Retrain trains on the units chosen for the unlearned model:
    neighbours found by Retrain's own embeddings would be another attack)."""
    from engine.attacks.people import is_people, relearn_setting

    people = is_people(task)
    units = params.get("chosen") or chosen_units(task, model, params["on"], params["units"], seed, emit)
    pairs = task.encode(model, units, False)
    setting = relearn_setting(task) if people else {"update": None, "lr": task.original_recipe()["lr"]}
    lr = params["lr"] or setting["lr"]
    method = Relearn({}, model)
    config = LoopConfig(lr=lr, epochs=params["steps"], iterates="forget",
                        forget_batch_size=min(params["batch_size"], len(pairs)), max_steps=params["steps"],
                        weight_decay=0.0, seed=derive_seed(seed, "attack", "relearn", "batches"), phase="attack")
    if setting["update"]:  # an LMM: the update that taught the people (LoRA merged after, as after a request)
        model.begin_update({"update": setting["update"]})
    result = run_loop(method, pairs, None, config, emit, should_stop)
    if setting["update"]:
        model.end_update()
    return task, {"units": list(units) if people else [task.train.unit_ids[i] for i in units], "chosen": units,
                  "units_asked": params["units"], "pairs": len(pairs),
                  "steps": result.steps,
                  "lr": lr, "seconds": round(result.seconds, 3)}
