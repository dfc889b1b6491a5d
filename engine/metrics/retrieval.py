"""Recall@1/5/10 in both directions and their mean (ANCHORS.md section 2)."""
from __future__ import annotations

import torch

KS = (1, 5, 10)


def recall_at_k(i2t_scores: torch.Tensor, t2i_scores: torch.Tensor, pair_image: torch.Tensor) -> dict[str, float]:
    """Scores are [n_images, n_texts]. Text retrieval: an image hits when any of its captions is in its
    top k; image retrieval: a caption hits when its own image is in its top k. Values in percent."""
    n_images, n_texts = i2t_scores.shape
    pair_image = pair_image.to(i2t_scores.device)
    positives = pair_image[None, :] == torch.arange(n_images, device=i2t_scores.device)[:, None]
    # rank of the best positive caption for each image
    text_order = i2t_scores.argsort(dim=1, descending=True)
    first_hit = positives.gather(1, text_order).float().argmax(dim=1)
    # rank of the own image for each caption
    image_order = t2i_scores.t().argsort(dim=1, descending=True)
    own_rank = (image_order == pair_image[:, None]).float().argmax(dim=1)
    metrics = {}
    for k in KS:
        metrics[f"txt_r{k}"] = 100.0 * (first_hit < k).float().mean().item()
        metrics[f"img_r{k}"] = 100.0 * (own_rank < k).float().mean().item()
    metrics["r_mean"] = sum(metrics.values()) / len(metrics)
    return metrics
