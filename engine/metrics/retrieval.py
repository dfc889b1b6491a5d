"""Recall@1/5/10 in both directions and their mean (ANCHORS.md section 2), tie-aware.

Ties are broken pessimistically: a candidate that scores exactly as high as the right answer ranks above
it. (Broken by index, as argsort does, two identical captions of different images would hit or miss by
their position in the list; the built-in world has many identical captions.)"""
from __future__ import annotations

import torch

KS = (1, 5, 10)


def recall_at_k(i2t_scores: torch.Tensor, t2i_scores: torch.Tensor, pair_image: torch.Tensor) -> dict[str, float]:
    """Scores are [n_images, n_texts]. Text retrieval: an image hits when its best-scored caption ranks in
    the top k, i.e. fewer than k other images' captions score at least as high; image retrieval: a caption
    hits when fewer than k other images score at least as high as its own. Values in percent."""
    n_images, n_texts = i2t_scores.shape
    pair_image = pair_image.to(i2t_scores.device)
    positives = pair_image[None, :] == torch.arange(n_images, device=i2t_scores.device)[:, None]
    # text retrieval: the best positive caption of each image, against every caption of other images
    best_positive = i2t_scores.masked_fill(~positives, float("-inf")).max(dim=1, keepdim=True).values
    first_hit = ((i2t_scores >= best_positive) & ~positives).sum(dim=1)
    # image retrieval: each caption's own image, against every other image
    by_caption = t2i_scores.t()  # [n_texts, n_images]
    own = by_caption.gather(1, pair_image[:, None])
    others = torch.ones_like(by_caption, dtype=torch.bool).scatter_(1, pair_image[:, None], False)
    own_rank = ((by_caption >= own) & others).sum(dim=1)
    metrics = {}
    for k in KS:
        metrics[f"txt_r{k}"] = 100.0 * (first_hit < k).float().mean().item()
        metrics[f"img_r{k}"] = 100.0 * (own_rank < k).float().mean().item()
    metrics["r_mean"] = sum(metrics.values()) / len(metrics)
    return metrics
