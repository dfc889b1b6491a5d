"""Everything a run reports about an image-text model, from the splits of one deletion request."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.data.pairs import PairSet
from engine.metrics.auc import df_dr_auc, dr_chunks
from engine.metrics.mia import membership_inference
from engine.metrics.retrieval import recall_at_k

EVAL_BATCH = 128
MIA_SAMPLE = 2000  # pairs per side for the attack: enough for a stable logistic fit, cheap on a CPU


@dataclass
class Splits:
    forget: PairSet  # Df
    retain: PairSet  # Dr
    retain_eval: PairSet  # a sample of Dr images as large as the test split, for Dr recall
    test: PairSet


def _per_pair(fn, pairs: PairSet, indices: np.ndarray, device) -> np.ndarray:
    values = []
    with torch.no_grad():
        for start in range(0, len(indices), EVAL_BATCH):
            batch = pairs.batch(torch.as_tensor(indices[start : start + EVAL_BATCH]), device)
            values.append(fn(batch).float().cpu().numpy())
    return np.concatenate(values) if values else np.zeros(0)


def recall(adapter, pairs: PairSet) -> dict[str, float]:
    i2t, t2i = adapter.score_matrix(pairs, EVAL_BATCH)
    return recall_at_k(i2t, t2i, pairs.pair_image)


def evaluate_image_text(adapter, splits: Splits, seed: int) -> dict[str, float]:
    """Flat metrics: test.*, df.*, dr.* recall, df_dr_auc, mia.* (names as DESIGN.md section 7)."""
    device = adapter.device
    adapter.model.eval()
    rng = np.random.default_rng(seed)
    metrics: dict[str, float] = {}
    for name, pairs in (("test", splits.test), ("df", splits.forget), ("dr", splits.retain_eval)):
        for key, value in recall(adapter, pairs).items():
            metrics[f"{name}.{key}"] = value

    n_forget = len(splits.forget)
    df_scores = _per_pair(adapter.pair_scores, splits.forget, np.arange(n_forget), device)
    chunks = dr_chunks(len(splits.retain), n_forget, rng)
    dr_scores = [_per_pair(adapter.pair_scores, splits.retain, chunk, device) for chunk in chunks]
    metrics["df_dr_auc"] = df_dr_auc(df_scores, dr_scores)

    dr_sample = rng.choice(len(splits.retain), size=min(MIA_SAMPLE, len(splits.retain)), replace=False)
    test_sample = rng.choice(len(splits.test), size=min(MIA_SAMPLE, len(splits.test)), replace=False)
    mia = membership_inference(
        _per_pair(adapter.example_losses, splits.retain, dr_sample, device),
        _per_pair(adapter.example_losses, splits.test, test_sample, device),
        _per_pair(adapter.example_losses, splits.forget, np.arange(n_forget), device),
        rng,
    )
    metrics.update({f"mia.{key}": value for key, value in mia.items()})
    return metrics


def nest(flat: dict[str, float]) -> dict:
    """{"test.r_mean": x, "df_dr_auc": y} -> {"test": {"r_mean": x}, "df_dr_auc": y}."""
    nested: dict = {}
    for name, value in flat.items():
        head, dot, tail = name.partition(".")
        if dot:
            nested.setdefault(head, {})[tail] = value
        else:
            nested[name] = value
    return nested
