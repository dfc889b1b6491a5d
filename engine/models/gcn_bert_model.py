"""GCN + BERT for graph-text data, as one transformers model (`GcnBertModel`, model_type "gcn_bert").

- graph encoder: every node reads its symbols (its type and optional text, through the tokenizer, as the
  mean of a symbol embedding), plus the mean of its edges' symbols (their types); then `GCNConv` layers
  (torch_geometric) and a LayerNorm give node states, and their global mean is f_G;
- text encoder: a `BertModel` (the `text_config`; a real BERT checkpoint's weights can be dropped in), its
  [CLS] state is f_T;
- fusion: layers of self-attention over the text tokens, cross-attention of the text tokens over the node
  states and a feed-forward block (as a BERT layer with cross-attention); its [CLS] state is f(G, T);
- heads: projections of f_G and f_T for contrastive similarity and a match head over f(G, T) (retrieval,
  as BLIP's ITC + ITM), and a classification head over f(G, T) (`num_labels`).

Node and edge types are read through the tokenizer rather than a closed type list, so one checkpoint reads
any graph-text file whose words its tokenizer knows. Saved and loaded with save_pretrained/from_pretrained.
"""
from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import GCNConv, global_mean_pool
from torch_geometric.utils import to_dense_batch
from transformers import AutoConfig, AutoModel, BertConfig, BertModel, PreTrainedConfig, PreTrainedModel


class GcnBertConfig(PreTrainedConfig):
    model_type = "gcn_bert"
    sub_configs_defaults = {"text_config": BertConfig}

    text_config: dict | PreTrainedConfig | None = None
    graph_hidden_size: int = 768
    graph_layers: int = 2
    symbol_vocab_size: int = 30522  # the tokenizer's vocabulary: node types, node texts and edge types are words
    symbol_max_tokens: int = 8  # tokens kept of each node's or edge's symbol text
    fusion_layers: int = 1
    fusion_heads: int = 12
    projection_dim: int = 256
    dropout: float = 0.1
    initializer_range: float = 0.02


class FusionLayer(nn.Module):
    """Self-attention over the text tokens, cross-attention over the node states, feed-forward (post-norm)."""

    def __init__(self, hidden: int, heads: int, intermediate: int, dropout: float, eps: float):
        super().__init__()
        self.self_attention = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.self_norm = nn.LayerNorm(hidden, eps=eps)
        self.cross_attention = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.cross_norm = nn.LayerNorm(hidden, eps=eps)
        self.feed_forward = nn.Sequential(nn.Linear(hidden, intermediate), nn.GELU(), nn.Linear(intermediate, hidden))
        self.output_norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens, text_mask, nodes, node_mask):
        attended = self.self_attention(tokens, tokens, tokens, key_padding_mask=~text_mask, need_weights=False)[0]
        tokens = self.self_norm(tokens + self.dropout(attended))
        attended = self.cross_attention(tokens, nodes, nodes, key_padding_mask=~node_mask, need_weights=False)[0]
        tokens = self.cross_norm(tokens + self.dropout(attended))
        return self.output_norm(tokens + self.dropout(self.feed_forward(tokens)))


class GcnBertModel(PreTrainedModel):
    config_class = GcnBertConfig
    base_model_prefix = "gcn_bert"
    main_input_name = "input_ids"

    def __init__(self, config: GcnBertConfig):
        super().__init__(config)
        text = config.text_config
        hidden, graph = text.hidden_size, config.graph_hidden_size
        self.text_encoder = BertModel(text, add_pooling_layer=False)
        self.symbol_embeddings = nn.Embedding(config.symbol_vocab_size, graph)
        self.edge_transform = nn.Linear(graph, graph)
        self.gcn = nn.ModuleList(GCNConv(graph, graph) for _ in range(config.graph_layers))
        self.graph_norm = nn.LayerNorm(graph, eps=text.layer_norm_eps)
        self.node_to_text = nn.Linear(graph, hidden)
        self.fusion = nn.ModuleList(
            FusionLayer(hidden, config.fusion_heads, text.intermediate_size, config.dropout, text.layer_norm_eps)
            for _ in range(config.fusion_layers)
        )
        self.graph_proj = nn.Linear(graph, config.projection_dim)
        self.text_proj = nn.Linear(hidden, config.projection_dim)
        self.itm_head = nn.Linear(hidden, 2)
        self.classifier = nn.Linear(hidden, config.num_labels)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, std)
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
        elif isinstance(module, nn.MultiheadAttention):
            module.in_proj_weight.normal_(0.0, std)
            module.in_proj_bias.zero_()
        elif isinstance(module, GCNConv):
            module.reset_parameters()

    # --- graph side -------------------------------------------------------------------------------
    def embed_symbols(self, ids: torch.Tensor) -> torch.Tensor:
        """[M, T] token ids of M symbol texts -> [M, graph hidden]: the mean embedding of their tokens."""
        mask = (ids != self.config.text_config.pad_token_id).unsqueeze(-1).to(self.symbol_embeddings.weight.dtype)
        return (self.symbol_embeddings(ids) * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)

    def node_inputs(self, graphs) -> torch.Tensor:
        """Each node's symbols plus the mean of its incoming edges' symbols (edges are stored both ways)."""
        nodes = self.embed_symbols(graphs.symbols)
        if graphs.edge_index.shape[1] == 0:
            return nodes
        target = graphs.edge_index[1]
        edges = self.edge_transform(self.embed_symbols(graphs.edge_symbols)).to(nodes.dtype)  # bf16 under autocast
        total = torch.zeros_like(nodes).index_add_(0, target, edges)
        count = torch.zeros(nodes.shape[0], device=nodes.device).index_add_(0, target, torch.ones_like(target, dtype=torch.float))
        return nodes + total / count.clamp_min(1.0).unsqueeze(-1).to(total.dtype)

    def encode_graphs(self, graphs) -> tuple[torch.Tensor, torch.Tensor]:
        """A PyG `Batch` -> node states [N, graph hidden] and f_G [B, graph hidden] (global mean pool)."""
        x = self.node_inputs(graphs)
        for layer in self.gcn:
            x = torch.relu(layer(x, graphs.edge_index))
        x = self.graph_norm(x)
        return x, global_mean_pool(x, graphs.batch, size=graphs.num_graphs)

    def dense_nodes(self, node_states: torch.Tensor, graphs) -> tuple[torch.Tensor, torch.Tensor]:
        """Node states as fusion keys: [B, max nodes, text hidden] and the mask of real nodes."""
        return to_dense_batch(self.node_to_text(node_states), graphs.batch, batch_size=graphs.num_graphs)

    # --- text side and fusion ---------------------------------------------------------------------
    def encode_text(self, input_ids, attention_mask) -> torch.Tensor:
        return self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def fuse(self, text_states, attention_mask, nodes, node_mask) -> torch.Tensor:
        """[B, L, text hidden] text states attending to [B, N, text hidden] nodes -> the fused [CLS] [B, hidden]."""
        tokens, text_mask = text_states, attention_mask.bool()
        for layer in self.fusion:
            tokens = layer(tokens, text_mask, nodes, node_mask)
        return tokens[:, 0]

    def forward(self, input_ids, attention_mask, graphs):
        """f_G, f_T and f(G, T) of a batch whose row i pairs graph i with text i."""
        node_states, graph_embeds = self.encode_graphs(graphs)
        text_states = self.encode_text(input_ids, attention_mask)
        nodes, node_mask = self.dense_nodes(node_states, graphs)
        return {"graph_embeds": graph_embeds, "text_embeds": text_states[:, 0],
                "fused_embeds": self.fuse(text_states, attention_mask, nodes, node_mask)}

    @classmethod
    def from_text_encoder(cls, source: str, labels: tuple[str, ...] = (), projection_dim: int = 256) -> "GcnBertModel":
        """A GCN+BERT whose text side is a BERT checkpoint's; the graph side, fusion and heads start from a
        fixed seed (the same starting weights on every call). Symbols start from BERT's word embeddings."""
        text = BertModel.from_pretrained(source, add_pooling_layer=False)
        base = text.config
        config = GcnBertConfig(text_config=base.to_dict(), graph_hidden_size=base.hidden_size,
                               symbol_vocab_size=base.vocab_size, fusion_heads=base.num_attention_heads,
                               projection_dim=projection_dim, **({"id2label": dict(enumerate(labels))} if labels else {}))
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = cls(config)
        model.text_encoder.load_state_dict(text.state_dict())
        with torch.no_grad():
            model.symbol_embeddings.weight.copy_(text.embeddings.word_embeddings.weight)
        return model


AutoConfig.register(GcnBertConfig.model_type, GcnBertConfig)
AutoModel.register(GcnBertConfig, GcnBertModel)
