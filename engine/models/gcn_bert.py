"""The GCN + BERT family (graph-text, engine/models/gcn_bert_model.py): retrieval and classification adapters.

f_G = the GCN's global mean pool ("image_embed" in the adapter protocol), f_T = BERT's [CLS], f(G, T) =
the fusion module's [CLS]. Batches (engine/data/pairs.py with engine/data/graph_bank.py) carry `graphs`
(a PyG `Batch` whose graph i goes with text i), `input_ids`, `attention_mask`, `image_index` (the unit
of each text) and, for classification, `labels`.

- retrieval: ITC between projected f_G and f_T plus a match head (ITM) over f(G, T) with hard negatives,
  as BLIP; pair score = match probability; ranking = ITC re-ranked by ITM on the top k, both ways.
- classification: a linear head over f(G, T); cross-entropy; log p(label) for NPO and the MIA loss.

A checkpoint is a `gcn_bert` directory (save_pretrained), or a plain BERT checkpoint (`bert`), whose
weights become the text side of a new GCN+BERT (graph side, fusion and heads from a fixed seed).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.data.graph_bank import GraphBank, graph_data
from engine.models.base import ITC_TEMPERATURE, TINY_HIDDEN, AdapterBase, contrastive_loss, positive_mask
from engine.models.gcn_bert_model import GcnBertConfig, GcnBertModel
from engine.models.tokenizer import build_word_tokenizer

RERANK_TOP_K = 16  # k_test on the tiny galleries (the task sets the run's `--k-test`)


class GcnBertAdapter(AdapterBase):
    """What both tasks share: loading, tokenising texts and graph symbols, the three representations."""

    family = "gcn_bert"
    head_initialised = False  # True when the checkpoint had no classification head for this data's labels

    def __init__(self, model: GcnBertModel, tokenizer, source: str, max_text_length: int = 32):
        self.model, self.tokenizer, self.source = model, tokenizer, source
        self.processors = (tokenizer,)
        self.max_text_length = max_text_length
        self._symbols: dict[str, torch.Tensor] = {}

    @classmethod
    def build_tiny(cls, vocabulary: list[str], image_size: int, seed: int, directory: Path,
                   labels: tuple[str, ...] = (), **_options) -> None:
        """Hidden 64, 2 GCN + 2 BERT layers, one fusion layer; a word tokenizer from the world's vocabulary."""
        tokenizer = build_word_tokenizer(vocabulary)
        config = GcnBertConfig(
            text_config=dict(vocab_size=len(tokenizer), hidden_size=TINY_HIDDEN, intermediate_size=2 * TINY_HIDDEN,
                             num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64,
                             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0),
            graph_hidden_size=TINY_HIDDEN, graph_layers=2, symbol_vocab_size=len(tokenizer), fusion_layers=1,
            fusion_heads=2, projection_dim=TINY_HIDDEN, dropout=0.0,
            **({"id2label": dict(enumerate(labels))} if labels else {}),
        )
        torch.manual_seed(seed)
        GcnBertModel(config).save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    @classmethod
    def from_checkpoint(cls, source: str, tiny: bool, *, labels: tuple[str, ...] = (), **_options):
        """Load through `from_pretrained`; a classification head that does not fit the data's `labels` is
        initialised afresh (`head_initialised`)."""
        from transformers import AutoTokenizer

        path = Path(source).expanduser() / "config.json"
        if path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("model_type") == "bert":
            adapter = cls(GcnBertModel.from_text_encoder(source, labels=labels), AutoTokenizer.from_pretrained(source), source)
            adapter.head_initialised = True
            return adapter
        config = GcnBertConfig.from_pretrained(source)
        refit = bool(labels) and [config.id2label[i] for i in sorted(config.id2label)] != list(labels)
        if refit:
            config.id2label = dict(enumerate(labels))
            config.label2id = {label: index for index, label in enumerate(labels)}
        model = GcnBertModel.from_pretrained(source, config=config, ignore_mismatched_sizes=refit)
        adapter = cls(model, AutoTokenizer.from_pretrained(source), source)
        adapter.head_initialised = refit
        return adapter

    def parameter_groups(self):
        m = self.model
        graph = [m.symbol_embeddings, m.edge_transform, m.gcn, m.graph_norm, m.graph_proj]
        text = [m.text_encoder, m.text_proj, m.node_to_text, m.fusion, m.itm_head, m.classifier]
        return {"all": list(m.parameters()), "vision": [p for part in graph for p in part.parameters()],
                "text": [p for part in text for p in part.parameters()]}

    # --- data -------------------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(texts, padding="longest", truncation=True, max_length=self.max_text_length,
                                 return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def symbol_ids(self, strings: list[str]) -> torch.Tensor:
        """[len, T] token ids of node and edge symbol texts (no special tokens, padded), cached per string."""
        missing = [s for s in dict.fromkeys(strings) if s not in self._symbols]
        if missing:
            ids = self.tokenizer(missing, add_special_tokens=False, padding="max_length", truncation=True,
                                 max_length=self.model.config.symbol_max_tokens, return_tensors="pt")["input_ids"]
            self._symbols.update(zip(missing, ids))
        return torch.stack([self._symbols[s] for s in strings])

    def prepare_media(self, units) -> GraphBank:
        """The media bank of graph units: one PyG `Data` per graph."""
        return GraphBank([graph_data(unit.graph, self.symbol_ids) for unit in units])

    def permute_texts(self, batch, permutation: torch.Tensor) -> dict:
        """The same graphs paired with the batch's texts in another order (modality decoupling's T_pi)."""
        return {**batch, "input_ids": batch["input_ids"][permutation],
                "attention_mask": batch["attention_mask"][permutation]}

    # --- representations (DESIGN.md section 3) ----------------------------------------------------
    def graph_parts(self, graphs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """f_G [B, H] and the node states as fusion keys [B, N, H] with their mask."""
        node_states, pooled = self.model.encode_graphs(graphs)
        nodes, node_mask = self.model.dense_nodes(node_states, graphs)
        return pooled, nodes, node_mask

    def image_embed(self, batch):  # f_G
        return self.model.encode_graphs(batch["graphs"])[1]

    def text_embed(self, batch):  # f_T
        return self.model.encode_text(batch["input_ids"], batch["attention_mask"])[:, 0]

    def fused_embed(self, batch):  # f(G, T)
        _, nodes, node_mask = self.graph_parts(batch["graphs"])
        text_states = self.model.encode_text(batch["input_ids"], batch["attention_mask"])
        return self.model.fuse(text_states, batch["attention_mask"], nodes, node_mask)

    def example_losses(self, batch) -> torch.Tensor:
        """[B] per-example loss used by the membership-inference attack."""
        return -self.log_likelihood(batch)


class GcnBertClassifierAdapter(GcnBertAdapter):
    """The relation label of a graph-text pair from f(G, T) through the classification head."""

    def class_logits(self, batch) -> torch.Tensor:
        return self.model.classifier(self.fused_embed(batch))

    def task_loss(self, batch):
        return F.cross_entropy(self.class_logits(batch).float(), batch["labels"])

    def log_likelihood(self, batch):
        """[B] log p(label | G, T)."""
        log_probs = F.log_softmax(self.class_logits(batch).float(), dim=-1)
        return log_probs.gather(1, batch["labels"].unsqueeze(1)).squeeze(1)

    def retention_logits(self, batch):
        return self.class_logits(batch), None


class GcnBertRetrievalAdapter(GcnBertAdapter):
    """Graph <-> text retrieval: ITC on projected f_G and f_T, ITM over f(G, T), as BLIP."""

    k_test = RERANK_TOP_K  # candidates per query that ITM re-ranks in evaluation; 0 = ITC only (the task sets it)

    def _graph_feat(self, pooled):
        return F.normalize(self.model.graph_proj(pooled), dim=-1)

    def _text_feat(self, text_cls):
        return F.normalize(self.model.text_proj(text_cls), dim=-1)

    def _itm_logits(self, text_states, attention_mask, nodes, node_mask):
        return self.model.itm_head(self.model.fuse(text_states, attention_mask, nodes, node_mask))

    def similarity(self, batch):
        """[B_graphs, B_texts] ITC cosine similarity between every graph and every text of the batch."""
        return self.similarity_of(self.image_embed(batch), self.text_embed(batch))

    def unimodal_features(self, embeds, modality):
        """As BLIP's: the L2-normalised ITC projections of f_G and f_T."""
        return self._graph_feat(embeds) if modality == "image" else self._text_feat(embeds)

    def similarity_of(self, graph_embeds, text_embeds):
        """`similarity` from f_G and f_T rows (MultiDelete's cached targets)."""
        return self._graph_feat(graph_embeds) @ self._text_feat(text_embeds).t()

    def similarity_logits(self, batch):
        return self.similarity(batch) / ITC_TEMPERATURE

    def retention_logits(self, batch):
        """Each graph over the batch's texts and each text over the batch's graphs."""
        logits = self.similarity_logits(batch)
        return torch.cat([logits, logits.t()]), None

    def task_loss(self, batch):
        """ITC + ITM with hard negatives sampled by ITC similarity (BLIP's retrieval fine-tuning)."""
        mask, index = batch["attention_mask"], batch["image_index"]
        pooled, nodes, node_mask = self.graph_parts(batch["graphs"])
        text_states = self.model.encode_text(batch["input_ids"], mask)
        logits = self._graph_feat(pooled) @ self._text_feat(text_states[:, 0]).t() / ITC_TEMPERATURE
        loss_itc = contrastive_loss(logits, index)
        with torch.no_grad():
            not_positive = 1.0 - positive_mask(index)
            weights_g2t = F.softmax(logits.float(), dim=1) * not_positive + 1e-8 * not_positive
            weights_t2g = F.softmax(logits.t().float(), dim=1) * not_positive + 1e-8 * not_positive
        if not bool((not_positive.sum(dim=1) > 0).all()):  # one graph in the batch: no negative, ITC only
            return loss_itc
        negative_text = torch.multinomial(weights_g2t, 1).squeeze(1)
        negative_graph = torch.multinomial(weights_t2g, 1).squeeze(1)
        itm = self._itm_logits(torch.cat([text_states, text_states[negative_text], text_states]),
                               torch.cat([mask, mask[negative_text], mask]),
                               torch.cat([nodes, nodes, nodes[negative_graph]]),
                               torch.cat([node_mask, node_mask, node_mask[negative_graph]]))
        size = mask.shape[0]
        labels = torch.cat([torch.ones(size, dtype=torch.long), torch.zeros(2 * size, dtype=torch.long)]).to(itm.device)
        return loss_itc + F.cross_entropy(itm.float(), labels)

    def log_likelihood(self, batch):
        """[B] log p(match) of each example's own graph-text pair."""
        _, nodes, node_mask = self.graph_parts(batch["graphs"])
        text_states = self.model.encode_text(batch["input_ids"], batch["attention_mask"])
        return F.log_softmax(self._itm_logits(text_states, batch["attention_mask"], nodes, node_mask).float(), dim=1)[:, 1]

    def pair_scores(self, batch):
        return self.log_likelihood(batch).exp()

    @torch.no_grad()
    def score_matrix(self, pairset, batch_size):
        """Scores [n_graphs, n_texts]: ITC, with each graph's top-k texts and each text's top-k graphs
        re-scored by ITC + ITM match probability (as BLIP's evaluation, k = `k_test`); the rest stay at -100.
        k_test 0: ITC alone."""
        device, n_units = self.device, pairset.n_units
        feats, node_chunks = [], []
        for start in range(0, n_units, batch_size):
            graphs = pairset.media.batch(torch.arange(start, min(start + batch_size, n_units)), device)["graphs"]
            pooled, nodes, node_mask = self.graph_parts(graphs)
            feats.append(self._graph_feat(pooled))
            node_chunks.append((nodes, node_mask))
        width = max(nodes.shape[1] for nodes, _ in node_chunks)
        nodes = torch.cat([F.pad(n, (0, 0, 0, width - n.shape[1])) for n, _ in node_chunks])
        node_mask = torch.cat([F.pad(m, (0, width - m.shape[1])) for _, m in node_chunks])
        text_feat = torch.cat([self._text_feat(self.text_embed(pairset.text_batch(slice(s, s + batch_size), device)))
                               for s in range(0, len(pairset), batch_size)])
        itc = (torch.cat(feats) @ text_feat.t()).float()
        if self.k_test == 0:
            return itc.cpu(), itc.cpu()

        def rerank(scores, graph_index, text_index):
            for start in range(0, len(graph_index), batch_size):
                g, t = graph_index[start:start + batch_size], text_index[start:start + batch_size]
                texts = pairset.text_batch(t, self.device)
                states = self.model.encode_text(texts["input_ids"], texts["attention_mask"])
                itm = self._itm_logits(states, texts["attention_mask"], nodes[g.to(device)], node_mask[g.to(device)])
                scores[g, t] = F.softmax(itm.float(), dim=1)[:, 1].cpu() + itc[g, t].cpu()

        i2t = torch.full(itc.shape, -100.0)
        top = itc.topk(min(self.k_test, itc.shape[1]), dim=1).indices.cpu()
        rerank(i2t, torch.arange(itc.shape[0]).repeat_interleave(top.shape[1]), top.reshape(-1))
        t2i = torch.full(itc.shape, -100.0)
        top = itc.t().topk(min(self.k_test, itc.shape[0]), dim=1).indices.cpu()
        rerank(t2i, top.reshape(-1), torch.arange(itc.shape[1]).repeat_interleave(top.shape[1]))
        return i2t, t2i
