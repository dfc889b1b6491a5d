"""Recall@1/5/10 in both directions and their mean (ANCHORS.md section 2), tie-aware.

Ties are broken pessimistically: a candidate that scores exactly as high as the right answer ranks above
it. (Broken by index, as argsort does, two identical captions of different images would hit or miss by
their position in the list; the built-in world has many identical captions.)

Equal galleries: Df, Dr and test recall rank in galleries of the same number of images (the test split's),
or Df's recall (a few hundred images at most) would look better than test's (a thousand) for the gallery
alone. A split smaller than the gallery is filled with distractor images of the test split, with their
captions: they stand in the gallery (their captions compete in text retrieval, the images in image
retrieval) but ask nothing (neither the images nor their captions are queries). A split larger than the
gallery is ranked in consecutive gallery-sized chunks (`gallery_plan`), each filled the same way.

Bounded memory (`chunked_query_ranks`): a gallery's scores are asked for a chunk of query rows at a time (an
adapter's `gallery_scores`: each image's scores over every caption, each caption's over every image), so a
5k-image COCO gallery (25k captions) never holds its [5k, 25k] matrix; the ranks are those `query_ranks`
gives on the whole matrix, row by row the same operations."""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

KS = (1, 5, 10)
RANK_CHUNK = 256  # query rows scored at a time: [256, n_texts] floats, 25 MB for a COCO 5k gallery


class GalleryScores(Protocol):
    """A gallery's scores, by rows: what `chunked_query_ranks` reads."""

    n_images: int
    n_texts: int

    def image_rows(self, images: torch.Tensor) -> torch.Tensor: ...  # [len(images), n_texts] text retrieval

    def text_rows(self, texts: torch.Tensor) -> torch.Tensor: ...  # [len(texts), n_images] image retrieval


class MatrixScores:
    """`GalleryScores` over two whole matrices (an adapter's `score_matrix`): for small galleries and tests."""

    def __init__(self, i2t: torch.Tensor, t2i: torch.Tensor):
        self.i2t, self.t2i = i2t, t2i
        self.n_images, self.n_texts = i2t.shape

    def image_rows(self, images: torch.Tensor) -> torch.Tensor:
        return self.i2t[images.to(self.i2t.device)]

    def text_rows(self, texts: torch.Tensor) -> torch.Tensor:
        return self.t2i[:, texts.to(self.t2i.device)].t()


def recall_at_k(i2t_scores: torch.Tensor, t2i_scores: torch.Tensor, pair_image: torch.Tensor,
                queries: torch.Tensor | None = None) -> dict[str, float]:
    """Scores are [n_images, n_texts]. Text retrieval: an image hits when its best-scored caption ranks in
    the top k, i.e. fewer than k other images' captions score at least as high; image retrieval: a caption
    hits when fewer than k other images score at least as high as its own. Values in percent.
    `queries` [n_images] bool: the images that ask (theirs are the caption queries); default all."""
    return recall_from_ranks(*query_ranks(i2t_scores, t2i_scores, pair_image, queries))


def query_ranks(i2t_scores: torch.Tensor, t2i_scores: torch.Tensor, pair_image: torch.Tensor,
                queries: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(text_ranks, image_ranks): for each query image, how many other images' captions score at least as
    high as its best caption; for each query caption, how many other images score at least as high as its
    own (rank 0 = a hit at k = 1)."""
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
    if queries is None:
        return first_hit, own_rank
    queries = queries.to(i2t_scores.device)
    return first_hit[queries], own_rank[queries[pair_image]]


def chunked_query_ranks(scores: GalleryScores, pair_image: torch.Tensor, queries: torch.Tensor | None = None,
                        chunk: int = RANK_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """`query_ranks` (same values, same order) with the scores asked for `chunk` query rows at a time, and
    only for the queries: query images' rows for text retrieval, query captions' rows for image retrieval."""
    pair_image = pair_image.cpu()
    asking = torch.ones(scores.n_images, dtype=torch.bool) if queries is None else queries.cpu()
    query_images = torch.nonzero(asking).squeeze(1)
    query_texts = torch.nonzero(asking[pair_image]).squeeze(1)
    text_ranks, image_ranks = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, dtype=torch.long)]
    for start in range(0, len(query_images), chunk):
        images = query_images[start : start + chunk]
        rows = scores.image_rows(images)
        positives = pair_image.to(rows.device)[None, :] == images.to(rows.device)[:, None]
        best_positive = rows.masked_fill(~positives, float("-inf")).max(dim=1, keepdim=True).values
        text_ranks.append(((rows >= best_positive) & ~positives).sum(dim=1).cpu())
    for start in range(0, len(query_texts), chunk):
        texts = query_texts[start : start + chunk]
        rows = scores.text_rows(texts)
        own_image = pair_image[texts].to(rows.device)[:, None]
        own = rows.gather(1, own_image)
        others = torch.ones_like(rows, dtype=torch.bool).scatter_(1, own_image, False)
        image_ranks.append(((rows >= own) & others).sum(dim=1).cpu())
    return torch.cat(text_ranks), torch.cat(image_ranks)


def recall_from_ranks(text_ranks: torch.Tensor, image_ranks: torch.Tensor) -> dict[str, float]:
    """Recall@k in percent from the queries' ranks (`query_ranks`, possibly of several galleries joined)."""
    metrics = {}
    for k in KS:
        metrics[f"txt_r{k}"] = 100.0 * (text_ranks < k).float().mean().item()
        metrics[f"img_r{k}"] = 100.0 * (image_ranks < k).float().mean().item()
    metrics["r_mean"] = sum(metrics.values()) / len(metrics)
    return metrics


def gallery_plan(n_queries: int, n_distractors: int, size: int, rng: np.random.Generator
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """How `n_queries` query units rank in galleries of `size` units: consecutive chunks of at most `size`
    query units, each with `size - len(chunk)` distractor units drawn without replacement from
    `n_distractors` (fewer when there are not that many). Returns (query indices, distractor indices) per
    chunk."""
    size = max(1, size)
    plan = []
    for start in range(0, n_queries, size):
        chunk = np.arange(start, min(start + size, n_queries))
        fill = min(size - len(chunk), n_distractors)
        plan.append((chunk, np.sort(rng.choice(n_distractors, size=fill, replace=False)) if fill else np.zeros(0, int)))
    return plan
