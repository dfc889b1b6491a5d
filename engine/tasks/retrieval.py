"""Image-text retrieval (Flickr30K / COCO style): units are images with all their captions.

- batch: images, captions and which image each caption belongs to (engine/data/pairs.py);
- task loss: the family's (BLIP: ITC + ITM with hard negatives; CLIP: symmetric InfoNCE);
- per-example score for Df/Dr AUC: the pair's own match score (ITM probability / cosine); for MIA: its loss;
- evaluation: R@1/5/10 both ways on test, Df and a test-sized sample of Dr; Df/Dr AUC; MIA (ANCHORS s. 2).
The original model is the starting weights trained on all training units with the model's recipe.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.data.pairs import PairSet
from engine.metrics.auc import df_dr_auc, dr_chunks
from engine.metrics.mia import membership_inference
from engine.metrics.retrieval import recall_at_k
from engine.seeding import derive_seed
from engine.spec import RECIPES as RETRIEVAL_RECIPES  # the catalogue's image-text recipes
from engine.tasks.units import UnitTask

EVAL_BATCH = 128
MIA_SAMPLE = 2000  # pairs per side for the attack: enough for a stable logistic fit, cheap on a CPU


@dataclass
class Splits:
    forget: PairSet  # Df
    retain: PairSet  # Dr
    retain_eval: PairSet  # a sample of Dr images as large as the test split, for Dr recall
    test: PairSet


def per_pair(fn, pairs: PairSet, indices: np.ndarray, device) -> np.ndarray:
    values = []
    with torch.no_grad():
        for start in range(0, len(indices), EVAL_BATCH):
            batch = pairs.batch(torch.as_tensor(indices[start : start + EVAL_BATCH]), device)
            values.append(fn(batch).float().cpu().numpy())
    return np.concatenate(values) if values else np.zeros(0)


def evaluate_splits(adapter, splits: Splits, seed: int) -> dict[str, float]:
    """Flat metrics: test.*, df.*, dr.* recall, df_dr_auc, mia.* (names as DESIGN.md section 7)."""
    device = adapter.device
    adapter.model.eval()
    rng = np.random.default_rng(seed)
    metrics: dict[str, float] = {}
    for name, pairs in (("test", splits.test), ("df", splits.forget), ("dr", splits.retain_eval)):
        i2t, t2i = adapter.score_matrix(pairs, EVAL_BATCH)
        metrics.update({f"{name}.{key}": value for key, value in recall_at_k(i2t, t2i, pairs.pair_unit).items()})

    n_forget = len(splits.forget)
    df_scores = per_pair(adapter.pair_scores, splits.forget, np.arange(n_forget), device)
    chunks = dr_chunks(len(splits.retain), n_forget, rng)
    dr_scores = [per_pair(adapter.pair_scores, splits.retain, chunk, device) for chunk in chunks]
    metrics["df_dr_auc"] = df_dr_auc(df_scores, dr_scores)

    dr_sample = rng.choice(len(splits.retain), size=min(MIA_SAMPLE, len(splits.retain)), replace=False)
    test_sample = rng.choice(len(splits.test), size=min(MIA_SAMPLE, len(splits.test)), replace=False)
    mia = membership_inference(
        per_pair(adapter.example_losses, splits.retain, dr_sample, device),
        per_pair(adapter.example_losses, splits.test, test_sample, device),
        per_pair(adapter.example_losses, splits.forget, np.arange(n_forget), device),
        rng,
    )
    metrics.update({f"mia.{key}": value for key, value in mia.items()})
    return metrics


class Retrieval(UnitTask):
    name = "retrieval"
    RECIPES = RETRIEVAL_RECIPES

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(self, model, forgotten: list[int]) -> dict[str, float]:
        """Df = the units forgotten so far (the whole deletion set before the first request); Dr = the
        training units outside the deletion set, with a test-sized sample of its images for Dr recall."""
        retain = self.retain_set(model, False)
        splits = Splits(forget=self.train.select_units(forgotten), retain=retain,
                        retain_eval=retain.select_units(self.retain_eval_units(retain)), test=self.test)
        return evaluate_splits(model, splits, derive_seed(self.spec["seed"], "evaluate"))
