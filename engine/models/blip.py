"""BLIP image-text retrieval (`BlipForImageTextRetrieval`): ITC + ITM, as BLIP fine-tunes on Flickr30K.

f_I = the vision encoder's [CLS] state, f_T = the text encoder's [CLS] state without the image,
f(I, T) = the text encoder's [CLS] state with cross-attention to the image tokens (what the ITM head
reads). Pair score (Df/Dr AUC) and per-pair loss (MIA) read the head `pair_score` names: "itc" (the
default, as the released MultiDelete evaluation) the cosine of the pair's ITC features, with the loss
-log sigmoid(cosine / temperature) as CLIP's; "itm" the ITM match probability, with the loss -log p(match).
NPO and the other methods read `log_likelihood`, the ITM's, whatever scores the pair. Ranking = ITC
similarity re-ranked by ITM on each query's top `k_test` (`--k-test`; 0 = ITC only).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from engine.models.base import (
    ITC_TEMPERATURE,
    TINY_HIDDEN,
    TINY_SPECIAL_IDS,
    RetrievalAdapter,
    contrastive_loss,
    positive_mask,
    tiny_vision_config,
)
from engine.models.tokenizer import build_word_tokenizer

RERANK_TOP_K = 16  # k_test on the tiny galleries (the task sets the run's: `--k-test`, or the released one)


def tiny_blip_config(vocab_size: int, image_size: int, init_range: float | None = None,
                     head_init_range: float | None = None):
    """BLIP with hidden 64, 2 vision + 2 text layers, patch 8: the tiny models' shape (retrieval and
    classification alike). Weights are drawn at BERT's initializer_range 0.02 unless `init_range` (the vision
    and text encoders) and `head_init_range` (the layers directly on the model: projections, ITM head) say
    otherwise: the retrieval model takes its tiny recipe's (engine/spec/catalog.py RECIPES["tiny:blip"])."""
    from transformers import BlipConfig

    text = dict(vocab_size=vocab_size, hidden_size=TINY_HIDDEN, encoder_hidden_size=TINY_HIDDEN,
                intermediate_size=2 * TINY_HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=64, sep_token_id=3, **TINY_SPECIAL_IDS)
    if init_range is not None:
        text["initializer_range"] = init_range
    heads = {} if head_init_range is None else {"initializer_range": head_init_range}
    return BlipConfig(
        text_config=text,
        vision_config=dict(tiny_vision_config(image_size), initializer_range=init_range or 0.02),
        image_text_hidden_size=TINY_HIDDEN,
        projection_dim=TINY_HIDDEN,
        **heads,
    )

class BlipRetrievalAdapter(RetrievalAdapter):
    family = "blip"
    pair_score = "itc"  # the head scoring a pair for Df/Dr AUC and the MIA: "itc" or "itm" (the task sets it)
    k_test = RERANK_TOP_K  # candidates per query that ITM re-ranks in evaluation; 0 = ITC only (the task sets it)

    @staticmethod
    def model_class():
        from transformers import BlipForImageTextRetrieval

        return BlipForImageTextRetrieval

    @classmethod
    def build_tiny(cls, vocabulary: list[str], image_size: int, seed: int, directory: Path) -> None:
        """BlipForImageTextRetrieval with hidden 64, 2 vision + 2 text layers, patch 8, its weights drawn at
        the scale its tiny recipe names (RECIPES["tiny:blip"]: at BERT's 0.02, made for hidden 768, the tiny
        BLIP's [CLS] features learn image-text matching 6-14 points of test r_mean below clip-tiny's)."""
        from transformers import BlipImageProcessorPil

        from engine.spec import RECIPES

        recipe = RECIPES["tiny:blip"]
        tokenizer = build_word_tokenizer(vocabulary)
        config = tiny_blip_config(len(tokenizer), image_size, recipe["init_range"], recipe["head_init_range"])
        torch.manual_seed(seed)
        model = cls.model_class()(config)
        processor = BlipImageProcessorPil(size={"height": image_size, "width": image_size},
                                          image_mean=[0.5] * 3, image_std=[0.5] * 3)
        for part in (model, tokenizer, processor):
            part.save_pretrained(directory)

    def parameter_groups(self):
        m = self.model
        vision = list(m.vision_model.parameters()) + list(m.vision_proj.parameters())
        text = list(m.text_encoder.parameters()) + list(m.text_proj.parameters()) + list(m.itm_head.parameters())
        return {"all": list(m.parameters()), "vision": vision, "text": text}

    # --- encoders ---------------------------------------------------------------------------------
    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.vision_model(pixel_values=pixel_values).last_hidden_state

    def _text_cls(self, input_ids, attention_mask) -> torch.Tensor:
        return self.model.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]

    def _fused_cls(self, input_ids, attention_mask, image_tokens) -> torch.Tensor:
        image_mask = torch.ones(image_tokens.shape[:-1], dtype=torch.long, device=image_tokens.device)
        out = self.model.text_encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=image_tokens,
            encoder_attention_mask=image_mask,
        )
        return out.last_hidden_state[:, 0]

    def _image_feat(self, image_tokens):
        return F.normalize(self.model.vision_proj(image_tokens[:, 0]), dim=-1)

    def _text_feat(self, text_cls):
        return F.normalize(self.model.text_proj(text_cls), dim=-1)

    def _itm_logits(self, input_ids, attention_mask, image_tokens):
        return self.model.itm_head(self._fused_cls(input_ids, attention_mask, image_tokens))

    # --- adapter contract ---------------------------------------------------------------------------
    def image_embed(self, batch):
        return self.image_tokens(batch["pixel_values"])[:, 0]

    def text_embed(self, batch):
        return self._text_cls(batch["input_ids"], batch["attention_mask"])

    def fused_embed(self, batch):
        return self._fused_cls(batch["input_ids"], batch["attention_mask"], self.image_tokens(batch["pixel_values"]))

    def similarity(self, batch):
        return self.similarity_of(self.image_embed(batch), self.text_embed(batch))

    def unimodal_features(self, embeds, modality):
        """The released `get_embed`'s image_feat / text_feat: F.normalize of vision_proj / text_proj of the [CLS]."""
        if modality == "image":
            return F.normalize(self.model.vision_proj(embeds), dim=-1)
        return self._text_feat(embeds)

    def similarity_of(self, image_embeds, text_embeds):
        """`similarity` from f_I and f_T rows (MultiDelete's cached targets)."""
        return F.normalize(self.model.vision_proj(image_embeds), dim=-1) @ self._text_feat(text_embeds).t()

    def task_loss(self, batch):
        """ITC + ITM with hard negatives sampled by ITC similarity, as BLIP's retrieval fine-tuning."""
        ids, mask, index = batch["input_ids"], batch["attention_mask"], batch["image_index"]
        image_tokens = self.image_tokens(batch["pixel_values"])
        image_feat = self._image_feat(image_tokens)
        text_feat = self._text_feat(self._text_cls(ids, mask))
        logits = image_feat @ text_feat.t() / ITC_TEMPERATURE
        loss_itc = contrastive_loss(logits, index)

        batch_size = ids.shape[0]
        with torch.no_grad():
            not_positive = 1.0 - positive_mask(index)
            weights_i2t = F.softmax(logits.float(), dim=1) * not_positive + 1e-8 * not_positive
            weights_t2i = F.softmax(logits.t().float(), dim=1) * not_positive + 1e-8 * not_positive
        has_negative = not_positive.sum(dim=1) > 0
        if not bool(has_negative.all()):  # a batch of one image: no negative exists, ITC only
            return loss_itc
        negative_text = torch.multinomial(weights_i2t, 1).squeeze(1)
        negative_image = torch.multinomial(weights_t2i, 1).squeeze(1)
        all_ids = torch.cat([ids, ids[negative_text], ids])
        all_mask = torch.cat([mask, mask[negative_text], mask])
        all_images = torch.cat([image_tokens, image_tokens, image_tokens[negative_image]])
        itm_logits = self._itm_logits(all_ids, all_mask, all_images)
        itm_labels = torch.cat(
            [torch.ones(batch_size, dtype=torch.long), torch.zeros(2 * batch_size, dtype=torch.long)]
        ).to(itm_logits.device)
        loss_itm = F.cross_entropy(itm_logits.float(), itm_labels)
        return loss_itc + loss_itm

    def log_likelihood(self, batch):
        logits = self._itm_logits(batch["input_ids"], batch["attention_mask"], self.image_tokens(batch["pixel_values"]))
        return F.log_softmax(logits.float(), dim=1)[:, 1]

    def pair_cosine(self, batch):
        """[B] the ITC cosine of each example's own pair."""
        image_feat = self._image_feat(self.image_tokens(batch["pixel_values"]))
        return (image_feat * self._text_feat(self.text_embed(batch))).sum(dim=-1).float()

    def pair_scores(self, batch):
        return self.pair_cosine(batch) if self.pair_score == "itc" else self.log_likelihood(batch).exp()

    def example_losses(self, batch):
        if self.pair_score == "itc":
            return -F.logsigmoid(self.pair_cosine(batch) / ITC_TEMPERATURE)
        return -self.log_likelihood(batch)

    @torch.no_grad()
    def gallery_scores(self, pairset, batch_size):
        """The gallery's ITC features and image tokens, computed once; rows of scores on demand, each row's
        top `k_test` re-ranked by ITM (`ItmRerankScores`), so a large gallery never holds its score matrix."""
        device = self.device
        tokens, feats = [], []
        for images in self.unit_batches(pairset, batch_size):
            chunk = self.image_tokens(images["pixel_values"])
            tokens.append(chunk)
            feats.append(self._image_feat(chunk))
        text_feat = torch.cat(
            [
                self._text_feat(
                    self._text_cls(
                        pairset.input_ids[s : s + batch_size].to(device),
                        pairset.attention_mask[s : s + batch_size].to(device),
                    )
                )
                for s in range(0, len(pairset), batch_size)
            ]
        )
        return ItmRerankScores(self, pairset, torch.cat(tokens), torch.cat(feats), text_feat, batch_size, self.k_test)

    def score_matrix(self, pairset, batch_size):
        scores = self.gallery_scores(pairset, batch_size)
        return scores.image_rows(torch.arange(scores.n_images)), scores.text_rows(torch.arange(scores.n_texts)).t()


class ItmRerankScores:
    """BLIP's retrieval scores as its evaluation computes them (LAVIS lavis/models/albef_models/__init__.py
    `compute_sim_matrix`, which blip_retrieval.py calls with the task config's `k_test`): ITC cosine for every
    pair, then each image's top-k captions and each caption's top-k images re-scored by ITM + ITC; the rest stay
    at -100. Given by rows (engine/metrics/retrieval.py `GalleryScores`). k is the run's `--k-test`; by default
    the released configs' (lavis/projects/blip/eval/ret_flickr_eval.yaml 128, ret_coco_eval.yaml 256) on
    Karpathy folders and RERANK_TOP_K (16) on the tiny galleries.
    Deliberate differences: the ITM term is the match probability (softmax), where the released code adds the
    raw match logit `itm_head(...)[:, 1]`; k larger than the gallery re-ranks all of it (the released `topk`
    fails); k = 0 ranks by ITC alone (no ITM pass)."""

    def __init__(self, adapter, pairset, image_tokens, image_feat, text_feat, batch_size: int, k: int):
        self.adapter, self.pairset, self.batch_size = adapter, pairset, batch_size
        self.image_tokens, self.image_feat, self.text_feat = image_tokens, image_feat, text_feat
        self.n_images, self.n_texts = image_feat.shape[0], text_feat.shape[0]
        self.k = k

    def _itm(self, texts: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        device = self.adapter.device
        logits = self.adapter._itm_logits(self.pairset.input_ids[texts].to(device),
                                          self.pairset.attention_mask[texts].to(device),
                                          self.image_tokens[images.to(device)])
        return F.softmax(logits.float(), dim=1)[:, 1]

    @torch.no_grad()
    def image_rows(self, images: torch.Tensor) -> torch.Tensor:
        """[len(images), n_texts]: each image's top-k captions by ITC re-scored, one ITM batch per image."""
        itc = (self.image_feat[images.to(self.image_feat.device)] @ self.text_feat.t()).float()
        if self.k == 0:
            return itc
        scores = torch.full_like(itc, -100.0)
        k = min(self.k, self.n_texts)
        top_sim, top_text = itc.topk(k, dim=1)
        for row, image in enumerate(images.tolist()):
            prob = self._itm(top_text[row].cpu(), torch.full((k,), image, dtype=torch.long))
            scores[row, top_text[row]] = prob + top_sim[row]
        return scores

    @torch.no_grad()
    def text_rows(self, texts: torch.Tensor) -> torch.Tensor:
        """[len(texts), n_images]: each caption's top-k images by ITC re-scored, batch_size // k captions per
        ITM batch."""
        itc = (self.image_feat @ self.text_feat[texts.to(self.text_feat.device)].t()).float().t()
        if self.k == 0:
            return itc
        scores = torch.full_like(itc, -100.0)
        k = min(self.k, self.n_images)
        top_sim, top_image = itc.topk(k, dim=1)
        group = max(1, self.batch_size // k)
        for start in range(0, len(texts), group):
            rows = torch.arange(start, min(start + group, len(texts)))
            prob = self._itm(texts[rows].repeat_interleave(k, 0), top_image[rows].reshape(-1).cpu())
            scores[rows[:, None].to(scores.device), top_image[rows]] = prob.view(len(rows), k) + top_sim[rows]
        return scores
