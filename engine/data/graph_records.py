"""Graph-text records: a typed graph, a deletion unit (a graph with all its texts and their labels), and a
graph-text data set. Shared by the built-in `graph` world, the `graph-text` JSONL reader/writer and the
GCN+BERT family's graph bank. Pure Python: nothing here imports torch or torch_geometric.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.data.facts import HoldoutWorld


@dataclass(frozen=True)
class Node:
    type: str
    text: str | None = None  # free text about the node (a gene's name, an atom's role), read with its type


@dataclass(frozen=True)
class Edge:
    source: int
    target: int
    type: str | None = None


@dataclass
class Graph:
    nodes: list[Node]
    edges: list[Edge]  # undirected: each edge once

    def symbols(self) -> list[str]:
        """Every node type, node text and edge type: the strings a graph encoder reads through the tokenizer."""
        words = [n.type for n in self.nodes] + [n.text for n in self.nodes if n.text]
        return words + [e.type for e in self.edges if e.type]


@dataclass
class GraphUnit:
    """One deletion unit: a graph with all its texts (and, for classification, one label per text)."""

    unit_id: str
    graph: Graph
    texts: list[str]
    text_labels: list[str] | None = None  # the label of each text, as written (None: unlabelled)
    labels: list[int] | None = None  # the same as indices into the data set's `classes`

    @property
    def captions(self) -> list[str]:  # what deletion queries and previews read on every kind of unit
        return self.texts


@dataclass
class GraphTextWorld(HoldoutWorld):
    name: str
    train: list[GraphUnit]
    val: list[GraphUnit]
    test: list[GraphUnit]
    classes: tuple[str, ...]  # empty: the data has no labels and serves retrieval only
    image_size: int = 0  # graphs have no image size; the model registry passes it to every family
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> list[GraphUnit]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def vocabulary(self) -> list[str]:
        """Every word of the texts, node types and texts, and edge types (a tiny model's tokenizer)."""
        words: set[str] = set()
        for units in (self.train, self.val, self.test):
            for unit in units:
                for text in [*unit.texts, *unit.graph.symbols()]:
                    words.update(re.findall(r"[^\W_]+", text.lower()))  # as the tokenizer splits
        return sorted(words)

    def model_options(self) -> dict:
        """What a classifier must be built for beyond words: its labels."""
        return {"labels": self.classes}


def attach_labels(units: list[GraphUnit], classes: tuple[str, ...]) -> None:
    """Give each labelled unit one class index per text."""
    index = {name: i for i, name in enumerate(classes)}
    for unit in units:
        unit.labels = None if unit.text_labels is None else [index[name] for name in unit.text_labels]
