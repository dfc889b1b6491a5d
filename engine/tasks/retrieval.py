"""Image-text retrieval (Flickr30K / COCO style): units are images with all their captions.

- batch: images, captions and which image each caption belongs to (engine/data/pairs.py);
- task loss: the family's (BLIP: ITC + ITM with hard negatives; CLIP: symmetric InfoNCE);
- per-example score for Df/Dr AUC: the pair's own match score, read from the head `--pair-score` names
  (`auto` = the family's first in the catalogue: BLIP and CLIP the ITC cosine, as the released MultiDelete
  evaluation scores retrieval; GCN+BERT the ITM probability; BLIP also offers `itm`); for MIA: the pair's
  loss from the same head;
- evaluation: R@1/5/10 both ways on test, Df and a test-sized sample of Dr, each ranked in a gallery of as
  many images as the test split (engine/metrics/retrieval.py: equal galleries, filled with test images);
  recall is computed a chunk of query rows at a time from the gallery's embeddings (the adapters'
  `gallery_scores`), so a 1k Flickr30K or 5k COCO gallery never holds its score matrix; BLIP and GCN+BERT
  rank by ITC with each query's top `k_test` re-ranked by ITM (`--k-test`, `k_test_for`); Df/Dr AUC; MIA; the standard attacks (engine/metrics/attacks.py) of Df against the test sample, the
  pair's match being the one "token" (LOSS = Min-K%; zlib over the caption; no Min-K%++: a pair score has
  no distribution over alternatives to standardise by).
The original model is the starting weights trained on all training units with the model's recipe (a registered
tiny model: its family's `tiny:<family>` recipe where the catalogue has one, else `tiny`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.data.pairs import PairSet, encode_units
from engine.errors import SpecError
from engine.metrics.attacks import attack_aucs, one_token_examples
from engine.metrics.auc import df_dr_auc, dr_chunks
from engine.metrics.mia import membership_inference
from engine.metrics.retrieval import chunked_query_ranks, gallery_plan, recall_from_ranks
from engine.seeding import derive_seed
from engine.spec import FAMILIES, MODELS
from engine.spec import RECIPES as RETRIEVAL_RECIPES
from engine.tasks.retrieval_scoring import scoring_for
from engine.tasks.units import UnitTask

# k_test of the released BLIP retrieval evaluation by data format (LAVIS lavis/projects/blip/eval/
# ret_flickr_eval.yaml, ret_coco_eval.yaml); built-in worlds keep the adapters' RERANK_TOP_K
RELEASED_K_TEST = {"flickr30k": 128, "coco": 256}
MIA_SAMPLE = 2000  # pairs per side for the attack: enough for a stable logistic fit, cheap on a CPU


@dataclass
class Splits:
    joint: PairSet  # the training and test units in one set (train first): galleries mix them
    forget: list[int]  # Df: units of `joint`
    retain: list[int]  # Dr: units of `joint`
    retain_eval: list[int]  # a sample of Dr's units as large as the test split, for Dr recall
    test: list[int]  # units of `joint`
    holdout: dict[str, list[int]] | None = None  # holdout sets (units of `joint`, inside Dr) by name


def k_test_for(spec: dict, tiny: int) -> int:
    """The candidates per query ITM re-ranks: the run's --k-test; else the released config's for its data format
    (flickr30k:DIR 128, coco:DIR 256); else `tiny` (the adapter's RERANK_TOP_K, for the built-in worlds)."""
    chosen = spec["params"].get("k_test")
    if chosen is not None:
        return chosen
    return RELEASED_K_TEST.get(spec["data"].partition(":")[0], tiny) if ":" in spec["data"] else tiny


def gallery_recall(scoring, queries: list[int], distractors: list[int], size: int,
                   rng: np.random.Generator) -> dict[str, float]:
    """Recall@k of the `queries` units, ranked in galleries of `size` units filled with `distractors`
    (units of the scoring's joint set whose images and captions compete but ask nothing:
    engine/metrics/retrieval.py)."""
    text_ranks, image_ranks = [], []
    for chunk, fill in gallery_plan(len(queries), len(distractors), size, rng):
        asking = {queries[i] for i in chunk}
        units = sorted(asking | {distractors[j] for j in fill})
        gallery, scores = scoring.gallery(units)  # its units in this (ascending) order
        ranks = chunked_query_ranks(scores, gallery.pair_unit, torch.tensor([u in asking for u in units]))
        text_ranks.append(ranks[0].cpu())
        image_ranks.append(ranks[1].cpu())
    return recall_from_ranks(torch.cat(text_ranks), torch.cat(image_ranks))


def unit_ranks(scoring, queries: list[int], distractors: list[int], size: int,
               rng: np.random.Generator) -> tuple[np.ndarray, torch.Tensor, np.ndarray, torch.Tensor]:
    """`gallery_recall`'s ranks kept with the query unit each belongs to: (units of the text ranks, text ranks,
    units of the image ranks, image ranks), for recall over any subset of the queries (the history)."""
    text_units, text_ranks, image_units, image_ranks = [], [], [], []
    for chunk, fill in gallery_plan(len(queries), len(distractors), size, rng):
        asking = {queries[i] for i in chunk}
        units = sorted(asking | {distractors[j] for j in fill})
        gallery, scores = scoring.gallery(units)
        is_query = torch.tensor([u in asking for u in units])
        ranks = chunked_query_ranks(scores, gallery.pair_unit, is_query)
        gallery_units = np.asarray(units)
        text_units.append(gallery_units[is_query.numpy()])
        caption_units = gallery_units[gallery.pair_unit.cpu().numpy()]
        image_units.append(caption_units[is_query[gallery.pair_unit.cpu()].numpy()])
        text_ranks.append(ranks[0].cpu())
        image_ranks.append(ranks[1].cpu())
    return np.concatenate(text_units), torch.cat(text_ranks), np.concatenate(image_units), torch.cat(image_ranks)


def evaluate_splits(adapter, splits: Splits, seed: int) -> dict[str, float]:
    """Flat metrics: test.*, df.*, dr.* recall, df_dr_auc, mia.* (names as DESIGN.md section 7). Every score
    comes from one scoring of the joint set (engine/tasks/retrieval_scoring.py)."""
    adapter.model.eval()
    joint = splits.joint
    scoring = scoring_for(adapter, joint)
    rng = np.random.default_rng(seed)
    galleries = np.random.default_rng(derive_seed(seed, "galleries"))
    metrics: dict[str, float] = {}
    size = len(splits.test)
    holdout = [(name, units) for name, units in (splits.holdout or {}).items() if units]
    for name, units in (("test", splits.test), ("df", splits.forget), ("dr", splits.retain_eval), *holdout):
        recall = gallery_recall(scoring, units, [] if name == "test" else splits.test, size, galleries)
        metrics.update({f"{name}.{key}": value for key, value in recall.items()})

    forget, retain, test = (joint.pairs_of_units(units).numpy()
                            for units in (splits.forget, splits.retain, splits.test))
    n_forget = len(forget)
    df_scores = scoring.pair_values("pair_scores", forget)
    chunks = dr_chunks(len(retain), n_forget, rng)
    dr_scores = [scoring.pair_values("pair_scores", retain[chunk]) for chunk in chunks]
    metrics["df_dr_auc"] = df_dr_auc(df_scores, dr_scores)

    dr_sample = rng.choice(len(retain), size=min(MIA_SAMPLE, len(retain)), replace=False)
    test_sample = rng.choice(len(test), size=min(MIA_SAMPLE, len(test)), replace=False)
    test_losses = scoring.pair_values("example_losses", test[test_sample])
    df_losses = scoring.pair_values("example_losses", forget)
    mia = membership_inference(scoring.pair_values("example_losses", retain[dr_sample]), test_losses, df_losses, rng)
    mia |= attack_aucs(one_token_examples(-df_losses, [joint.texts[i] for i in forget]),
                       one_token_examples(-test_losses, [joint.texts[i] for i in test[test_sample]]))
    metrics.update({f"mia.{key}": value for key, value in mia.items()})
    return metrics


class Retrieval(UnitTask):
    name = "retrieval"
    HISTORY_METRIC, UTILITY_METRIC = "df.r_mean", "dr.r_mean"
    RECIPES = RETRIEVAL_RECIPES

    def __init__(self, spec: dict, emit, should_stop, cache):
        super().__init__(spec, emit, should_stop, cache)
        if spec["model"] in MODELS:  # a registered tiny model: its family's own tiny recipe where it has one
            self.recipe = dict(self.RECIPES.get(f"tiny:{MODELS[spec['model']].family}", self.RECIPES["tiny"]))

    def load(self, source: str, device):
        adapter = super().load(source, device)
        heads = FAMILIES[adapter.family].pair_scores
        chosen = self.spec["params"].get("pair_score", "auto")
        if chosen != "auto" and chosen not in heads:  # a hub id's family is known only now
            raise SpecError(f"--pair-score {chosen}: {adapter.family} models score a pair by "
                            f"{' or '.join(heads)}; choose auto or {', '.join(heads)}", field="pair_score")
        self.pair_score = heads[0] if chosen == "auto" else chosen
        if len(heads) > 1:
            adapter.pair_score = self.pair_score
        self.k_test = None
        if "itm" in heads:  # a family with an ITM head re-ranks each query's top k_test in evaluation
            adapter.k_test = self.k_test = k_test_for(self.spec, adapter.k_test)
        elif self.spec["params"].get("k_test") is not None:  # a hub id's family is known only now
            raise SpecError(f"--k-test {self.spec['params']['k_test']}: {adapter.family} models have no ITM head "
                            "to re-rank by; drop --k-test", field="k_test")
        return adapter

    def prepare(self, model) -> None:
        """Training and test units encoded as one set (a gallery mixes them), then split."""
        train = list(self.train_units())
        self.joint = encode_units(train + list(self.world.test), model)
        n_train = len(train)
        self.train = self.joint.select_units(list(range(n_train)))
        self.test = self.joint.select_units(list(range(n_train, self.joint.n_units)))
        self.train_size = len(self.train)

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(self, model, forgotten: list[int]) -> dict[str, float]:
        """Df = the units forgotten so far (the whole deletion set before the first request); Dr = the
        training units outside the deletion set, with a test-sized sample of its images for Dr recall; the
        world's holdout sets of the deletion set (engine/data/facts.py), ranked as Df is."""
        self.check_finite(model)
        deleted = set(self.deletion)
        retain = [i for i in range(self.train.n_units) if i not in deleted]  # train units = joint's first
        retain_eval = [retain[i] for i in self.retain_eval_units(len(retain))]
        splits = Splits(joint=self.joint, forget=sorted(forgotten), retain=retain, retain_eval=retain_eval,
                        test=list(range(self.train.n_units, self.joint.n_units)), holdout=self.holdout_units())
        return evaluate_splits(model, splits, derive_seed(self.spec["seed"], "evaluate"))

    def request_headlines(self, model, requests: list[list[int]]) -> list[float]:
        """Each request's own Df r_mean (the history, sessions/history.py): every request's units ranked at once
        in test-sized galleries filled with test images (as Df recall is), with one seeded gallery plan, so a
        request's value changes between rows only with the model."""
        model.model.eval()
        queries = sorted(u for request in requests for u in request)
        test = list(range(self.train.n_units, self.joint.n_units))
        rng = np.random.default_rng(derive_seed(self.spec["seed"], "history"))
        text_units, text_ranks, image_units, image_ranks = unit_ranks(scoring_for(model, self.joint), queries, test,
                                                                      len(test), rng)
        headlines = []
        for request in requests:
            members = list(request)
            recall = recall_from_ranks(text_ranks[torch.from_numpy(np.isin(text_units, members))],
                                       image_ranks[torch.from_numpy(np.isin(image_units, members))])
            headlines.append(recall["r_mean"])
        return headlines

    def result_fields(self, forgotten: list[int]) -> dict:
        return super().result_fields(forgotten) | {"pair_score": self.pair_score} | (
            {"k_test": self.k_test} if self.k_test is not None else {})
