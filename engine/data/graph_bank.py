"""The media bank of graph units (engine/data/pairs.py): one PyG `Data` per graph, batched with
`Batch.from_data_list` under the batch key `graphs`.

Each `Data` holds `symbols` [nodes, T] (the token ids of each node's type and text), `edge_index` [2, 2E]
(every edge both ways, as GCNConv reads an undirected graph) and `edge_symbols` [2E, T] (each direction's
edge type). The bank is imported only where a graph job runs: torch_geometric costs seconds to import.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch_geometric.data import Batch, Data

from engine.data.graph_records import Graph


def node_symbol(node) -> str:
    return f"{node.type} {node.text}" if node.text else node.type


def graph_data(graph: Graph, symbol_ids: Callable[[list[str]], torch.Tensor]) -> Data:
    """One graph as a PyG `Data`; `symbol_ids(strings) -> [len, T]` tokenises symbol texts."""
    symbols = symbol_ids([node_symbol(n) for n in graph.nodes])
    pairs = [(e.source, e.target) for e in graph.edges] + [(e.target, e.source) for e in graph.edges]
    edge_index = torch.tensor(pairs, dtype=torch.long).t().reshape(2, -1)
    edge_types = [e.type or "" for e in graph.edges]
    edge_symbols = symbol_ids(edge_types + edge_types) if edge_types else symbols.new_zeros((0, symbols.shape[1]))
    return Data(symbols=symbols, edge_index=edge_index, edge_symbols=edge_symbols, num_nodes=len(graph.nodes))


class GraphBank:
    """Graph units as PyG `Data`, batched as one PyG `Batch` (`{"graphs": Batch}`)."""

    key = "graphs"

    def __init__(self, graphs: list[Data]):
        self.graphs = graphs

    def __len__(self) -> int:
        return len(self.graphs)

    def take(self, indices: torch.Tensor) -> "GraphBank":
        return GraphBank([self.graphs[i] for i in torch.as_tensor(indices).tolist()])

    def batch(self, indices: torch.Tensor, device) -> dict:
        chosen = [self.graphs[i] for i in torch.as_tensor(indices).tolist()]
        return {self.key: Batch.from_data_list(chosen).to(device)}
