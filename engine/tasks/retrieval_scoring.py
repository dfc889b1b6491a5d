"""How one retrieval evaluation scores the pairs and galleries of the task's joint set (engine/tasks/retrieval.py).

An evaluation reads the same units many times: the test units stand in every gallery (test's own, and as the
distractors of Df's, Dr's and each holdout set's), and each image is scored once per caption by the per-pair
statistics (Df/Dr AUC, the attacks' losses). Both scorings give the same values; they differ in how often the
network runs:
- `NetworkScoring` runs the adapter on each batch it is asked for: for families that fuse image and text in one
  network pass per pair (BLIP's ITM, GCN+BERT), where a pair's score is not a function of embeddings alone;
- `EmbeddingScoring`, for a dual encoder (an adapter with `pair_scores_of`: CLIP), whose every score is a function
  of one image embedding and one text embedding: it embeds each unit and each text of the joint set at most once
  per evaluation, the first time any gallery or pair asks for it. On `shapes-tiny` one evaluation embedded 1550
  images and 2510 captions for the 208 units and 1040 captions it reads (`bench/bench_evaluation.py`).
The memo lives for one evaluation (`scoring_for` in `evaluate_splits`), so it never outlives the weights it read.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.data.pairs import PairSet
from engine.metrics.retrieval import MatrixScores

EVAL_BATCH = 128


def per_pair(fn, pairs: PairSet, indices: np.ndarray, device) -> np.ndarray:
    """`fn(batch)` of the pairs at `indices`, EVAL_BATCH pairs at a time, without gradients."""
    values = []
    with torch.no_grad():
        for start in range(0, len(indices), EVAL_BATCH):
            batch = pairs.batch(torch.as_tensor(indices[start : start + EVAL_BATCH]), device)
            values.append(fn(batch).float().cpu().numpy())
    return np.concatenate(values) if values else np.zeros(0)


def adapter_gallery_scores(adapter, gallery: PairSet):
    """The gallery's scores by rows (never the whole matrix), from an adapter that gives them; else its
    `score_matrix` (an adapter with only that: the metrics' test doubles)."""
    if hasattr(adapter, "gallery_scores"):
        return adapter.gallery_scores(gallery, EVAL_BATCH)
    return MatrixScores(*adapter.score_matrix(gallery, EVAL_BATCH))


class NetworkScoring:
    """Each statistic from a network pass over the batches asked for."""

    def __init__(self, adapter, joint: PairSet):
        self.adapter, self.joint = adapter, joint

    def pair_values(self, statistic: str, pairs: np.ndarray) -> np.ndarray:
        """[len(pairs)] `pair_scores` or `example_losses` of these pairs of the joint set."""
        return per_pair(getattr(self.adapter, statistic), self.joint, pairs, self.adapter.device)

    def gallery(self, units: list[int]) -> tuple[PairSet, object]:
        """The gallery of these units (ascending) and its scores by rows (`GalleryScores`)."""
        gallery = self.joint.select_units(units)
        return gallery, adapter_gallery_scores(self.adapter, gallery)


class EmbeddedRows:
    """Rows of one embedding of the joint set, each computed the first time it is asked for, EVAL_BATCH rows at a
    time (the missing ones, ascending); a slot table maps a row of the joint set to where its embedding is kept."""

    def __init__(self, n_rows: int, embed):
        self.embed = embed  # rows (ascending LongTensor) -> [len(rows), d]
        self.slot = torch.full((n_rows,), -1, dtype=torch.long)
        self.parts: list[torch.Tensor] = []
        self.table: torch.Tensor | None = None
        self.computed = 0  # rows embedded so far (each row's slot is its place in that order)

    def rows(self, indices: torch.Tensor) -> torch.Tensor:
        missing = torch.unique(indices[self.slot[indices] < 0])
        for start in range(0, len(missing), EVAL_BATCH):
            chunk = missing[start : start + EVAL_BATCH]
            with torch.no_grad():
                self.parts.append(self.embed(chunk))
            self.slot[chunk] = torch.arange(self.computed, self.computed + len(chunk))
            self.computed += len(chunk)
            self.table = None
        if self.table is None:
            self.table = torch.cat(self.parts)
        return self.table[self.slot[indices].to(self.table.device)]


class EmbeddingScoring:
    """A dual encoder's statistics from each unit's and text's embedding, embedded once per evaluation."""

    def __init__(self, adapter, joint: PairSet):
        self.adapter, self.joint = adapter, joint
        device = adapter.device
        self.images = EmbeddedRows(joint.n_units, lambda units: adapter.image_embed(joint.media.batch(units, device)))
        self.texts = EmbeddedRows(len(joint), lambda pairs: adapter.text_embed(joint.text_batch(pairs, device)))

    def pair_values(self, statistic: str, pairs: np.ndarray) -> np.ndarray:
        if len(pairs) == 0:
            return np.zeros(0)
        chosen = torch.as_tensor(pairs, dtype=torch.long)
        image, text = self.images.rows(self.joint.pair_unit[chosen]), self.texts.rows(chosen)
        with torch.no_grad():
            return getattr(self.adapter, f"{statistic}_of")(image, text).float().cpu().numpy()

    def gallery(self, units: list[int]) -> tuple[PairSet, object]:
        gallery = self.joint.select_units(units)
        image = self.images.rows(torch.as_tensor(sorted(units), dtype=torch.long))
        text = self.texts.rows(self.joint.pairs_of_units(units))
        with torch.no_grad():
            return gallery, self.adapter.gallery_scores_of(image, text)


def count_embedded_rows(adapter) -> dict[str, int]:
    """From now on, count the rows this adapter's `image_embed` and `text_embed` compute (wrapping them on the
    instance): how often an evaluation runs each tower, as bench/bench_evaluation.py prints and the tests check.
    The counts live in the returned dict; zero them to count again."""
    embedded = {"image_embed": 0, "text_embed": 0}
    for name in embedded:
        def counted(batch, _embed=getattr(adapter, name), _name=name):
            out = _embed(batch)
            embedded[_name] += out.shape[0]
            return out
        setattr(adapter, name, counted)
    return embedded


def scoring_for(adapter, joint: PairSet):
    """The scoring of one evaluation: by embeddings for a dual encoder, by network passes otherwise."""
    return (EmbeddingScoring if hasattr(adapter, "pair_scores_of") else NetworkScoring)(adapter, joint)
