"""One retrieval evaluation's scoring (engine/tasks/retrieval_scoring.py): a dual encoder embeds each unit and text
of the joint set once, and every metric is the one the per-batch network passes give."""
from __future__ import annotations

import numpy as np
import torch

import engine.tasks.retrieval as retrieval
from engine.spec import validate
from engine.tasks import task_for
from engine.tasks.retrieval_scoring import (EmbeddedRows, EmbeddingScoring, NetworkScoring, count_embedded_rows,
                                            scoring_for)


def test_rows_are_embedded_once_each_the_missing_ones_ascending():
    asked = []

    def embed(rows):
        asked.append(rows.tolist())
        return rows.float()[:, None] * torch.tensor([[1.0, -1.0]])

    table = EmbeddedRows(6, embed)
    assert table.rows(torch.tensor([3, 1, 3])).tolist() == [[3, -3], [1, -1], [3, -3]]
    assert table.rows(torch.tensor([1, 2, 5])).tolist() == [[1, -1], [2, -2], [5, -5]]
    assert asked == [[1, 3], [2, 5]] and table.computed == 4


def test_a_dual_encoder_embeds_each_unit_and_text_once_and_scores_as_the_network_does(tmp_path, monkeypatch):
    spec = validate({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny",
                     "deletion": {"strategy": "random", "n": 6}})
    task = task_for(spec, lambda *a, **k: None, lambda: False, tmp_path / "cache")
    adapter = task.load("clip-tiny", torch.device("cpu"))  # untrained: enough to score
    task.prepare(adapter)
    forgotten = task.forget_units()
    assert isinstance(scoring_for(adapter, task.joint), EmbeddingScoring)

    embedded = count_embedded_rows(adapter)

    by_embeddings = task.evaluate(adapter, forgotten)
    assert embedded == {"image_embed": task.joint.n_units, "text_embed": len(task.joint)}  # this world reads all

    embedded.update(image_embed=0, text_embed=0)
    monkeypatch.setattr(retrieval, "scoring_for", NetworkScoring)
    by_network = task.evaluate(adapter, forgotten)
    assert embedded["image_embed"] > 5 * task.joint.n_units  # a pass per gallery and per pair
    assert set(by_network) == set(by_embeddings)

    # the same scores, up to float rounding (an embedding computed in another batch), pair by pair and row by row
    joint, pairs = task.joint, np.arange(0, len(task.joint), 7)
    network, embedding = NetworkScoring(adapter, joint), EmbeddingScoring(adapter, joint)
    for statistic in ("pair_scores", "example_losses"):
        assert np.allclose(network.pair_values(statistic, pairs), embedding.pair_values(statistic, pairs), atol=1e-5)
    units = list(range(0, joint.n_units, 3))
    (gallery, network_rows), (_, embedding_rows) = network.gallery(units), embedding.gallery(units)
    every = torch.arange(gallery.n_units)
    assert torch.allclose(network_rows.image_rows(every), embedding_rows.image_rows(every), atol=1e-5)
