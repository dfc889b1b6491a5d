"""What the tasks over units with texts share (retrieval and classification): the data, the deletion set, the
original's training with the task's recipe, the encoded training and test sets, Df and Dr, and the
reported entries. A task adds its recipes (`RECIPES`: "tiny" for registered tiny models, "pretrained" for
real checkpoints) and its `evaluate` (engine/tasks/__init__.py describes the whole shape).
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch

from engine.data.deletion import select_units
from engine.data.fact_deletion import FactSplit, select_facts, split_facts
from engine.data.fingerprint import data_fingerprint
from engine.data.pairs import PairSet, encode_units
from engine.data.registry import load_data
from engine.errors import RunFailed, SpecError
from engine.metrics.forget_quality import unit_means
from engine.models.registry import load_adapter
from engine.seeding import derive_seed
from engine.spec import MODELS
from sessions.metric_names import nest

DR_EVAL_UNITS_MAX = 300
BUILT_IN_IMAGES = 32  # the built-in worlds' image size, which the tiny models are made for
LARGE_TINY_IMAGES = 128  # a tiny model built for larger images than this is said to be slow
SCORE_BATCH = 128  # the evaluation's batch: per-example losses come out as the MIA's (same batches)


def finite_weights(model) -> bool:
    """Whether every weight of an adapter's model is finite."""
    with torch.no_grad():
        return all(torch.isfinite(p).all() for p in model.model.parameters())


class UnitTask:
    name = ""
    cpu_threads = None  # torch's default
    RECIPES: dict[str, dict] = {}
    fact_split: FactSplit | None = None  # --granularity fact: the training units with the deleted facts split off

    def __init__(self, spec: dict, emit, should_stop, cache):
        self.spec, self.emit, self.should_stop, self.cache = spec, emit, should_stop, cache
        self.world = load_data(spec["data"])
        self.data_name = self.world.name
        self.data_fingerprint = data_fingerprint(spec["data"])  # the original's cache key: content, not name
        tiny = self.RECIPES.get(f"tiny:{self.data_name}", self.RECIPES.get("tiny"))  # a built-in world's own first
        fmt = spec["data"].partition(":")[0] if ":" in spec["data"] else None  # a data format's own recipe first
        pretrained = self.RECIPES.get(f"pretrained:{fmt}", self.RECIPES["pretrained"])
        self.recipe = dict(tiny if spec["model"] in MODELS else pretrained)
        size = getattr(self.world, "image_size", None)
        if spec["model"] in MODELS and isinstance(size, int) and size > LARGE_TINY_IMAGES:  # said as the run starts
            emit("log", level="warning", message=f"{spec['model']} is built here for {size}-px images (the first "
                 f"training image's width): {(size / BUILT_IN_IMAGES) ** 2:.0f}x the pixels of the built-in worlds' "
                 f"{BUILT_IN_IMAGES} px, and each step about as much slower; resize the images (to 64 px, say) for a "
                 "quick look, or give a real checkpoint, whose processor resizes them")
        self.train: PairSet | None = None
        self.test: PairSet | None = None
        self.deletion: list[int] = []

    def load(self, source: str, device):
        return load_adapter(source, self.model_world(), self.spec["seed"], self.cache, self.name).to(device)

    def model_world(self):
        """The world a registered tiny model (and its tokenizer) is built for: the data as loaded, also where a
        validation view stands its validation split in for test (`validation_view`, tune's `validation_task`).
        A tiny tokenizer's vocabulary is the world's words, so the view's world (no test texts) built another
        base: tune's validation Retrain trained from it and fed the original its token ids, which read as an
        untrained model (validation r_mean 22.1 against 59.7)."""
        return getattr(self, "loaded_world", None) or self.world

    def with_validation_as_test(self) -> None:
        """Stand the world's validation split in for its test split; models are still built for the world as
        loaded (`model_world`)."""
        self.loaded_world = self.model_world()
        self.world = dataclasses.replace(self.world, test=self.world.val)

    def forget_units(self) -> list[int]:
        deletion = self.spec["deletion"]
        if deletion.get("granularity") == "fact":
            self.fact_split = split_facts(self.world, select_facts(self.world, deletion))
            self.deletion = self.fact_split.deletion
            touched = len({self.fact_split.train[i].unit_id.partition("#")[0] for i in self.deletion})
            facts = f"{len(self.deletion)} fact" + ("s" if len(self.deletion) != 1 else "")
            self.emit("log", level="info", message=f"deletion set: {facts} of {touched} of {len(self.world.train)} "
                      "units (their other texts kept)")
            return self.deletion
        self.deletion = select_units(self.world.train, deletion)
        self.emit("log", level="info", message=f"deletion set: {len(self.deletion)} of {len(self.world.train)} units")
        return self.deletion

    def train_units(self) -> list:
        """The training units Df and Dr are drawn from: the world's, or with --granularity fact the world's with the
        deleted facts split off into units of their own (engine/data/fact_deletion.py); the original trains on the
        world's as they are."""
        return self.fact_split.train if self.fact_split is not None else self.world.train

    # --- the original ---------------------------------------------------------------------------
    def original_recipe(self) -> dict:
        return self.recipe

    def train_original(self, model, run_training) -> None:
        run_training(model, encode_units(self.world.train, model), lr=self.recipe["lr"], epochs=self.recipe["epochs"],
                     batch_size=self.recipe["batch_size"], update=None, phase="original")

    # --- data -----------------------------------------------------------------------------------
    def prepare(self, model) -> None:
        self.train = encode_units(self.train_units(), model)
        self.test = encode_units(self.world.test, model)
        self.train_size = len(self.train)

    def encode(self, model, units: list[int], unimodal: bool) -> PairSet:
        return self.train.select_units(units)

    def retain_set(self, model, unimodal: bool) -> PairSet:
        deleted = set(self.deletion)
        return self.train.select_units([i for i in range(self.train.n_units) if i not in deleted])

    def retain_eval_units(self, n_retain: int) -> list[int]:
        """A sample of Dr's `n_retain` units as large as the test split (at most DR_EVAL_UNITS_MAX), for Dr
        performance: indices into Dr's units."""
        sample = np.random.default_rng(derive_seed(self.spec["seed"], "dr-eval")).choice(
            n_retain, size=min(n_retain, max(len(self.world.test), 1), DR_EVAL_UNITS_MAX), replace=False)
        return sorted(sample.tolist())

    def holdout_units(self) -> dict[str, list[int]]:
        """The world's holdout sets of the deletion set (training units outside it: engine/data/facts.py), by
        name, each a seeded sample of at most DR_EVAL_UNITS_MAX units as Dr's is; none where the data has no
        injected facts (real files)."""
        sets = getattr(self.world, "holdout_sets", None)
        if self.fact_split is not None:  # the split's own, by the deleted facts' entities
            found = self.fact_split.holdout
        else:
            found = sets(self.deletion) if sets else {}
        chosen = {}
        for name, units in found.items():
            if len(units) > DR_EVAL_UNITS_MAX:
                rng = np.random.default_rng(derive_seed(self.spec["seed"], f"{name}-eval"))
                units = sorted(rng.choice(units, size=DR_EVAL_UNITS_MAX, replace=False).tolist())
            if units:
                chosen[name] = units
        return chosen

    def unlearn_defaults(self, retraining: bool) -> dict:
        if retraining:  # Retrain: the original's recipe on Dr
            return {"lr": self.recipe["lr"], "epochs": self.recipe["epochs"], "retain_batch_size": self.recipe["batch_size"]}
        return {"lr": self.recipe["unlearn_lr"], "epochs": None, "retain_batch_size": None}

    def validation_view(self, model) -> "UnitTask":
        """This task with the world's validation split standing in for its test split (galleries, test metrics,
        the MIA's non-members) and the same Df and Dr: what the guardrails judge (engine/spec/guards.py), so
        that no choice reads the reported test split. Its metrics keep the reported names (`test.*`);
        engine.spec.guards.as_validation renames them."""
        if not getattr(self.world, "val", None):
            raise SpecError(f"{self.spec['data']} has no validation split, and --keep best and --stop-if judge on "
                            "it (never on test); drop them, or give data with a val split", field="keep")
        view = copy.copy(self)
        view.with_validation_as_test()
        view.prepare(model)
        return view

    # --- reporting ------------------------------------------------------------------------------
    def evaluate(self, model, forgotten: list[int]) -> dict[str, float]:
        raise NotImplementedError

    @staticmethod
    def check_finite(model) -> None:
        """Fail the run in one line where an update left nan or inf weights: a step's loss can still be finite
        while the update it drives is not, and then every score the evaluation reads is nan."""
        if not finite_weights(model):
            raise RunFailed("loss became nan after the last update (the model's weights hold nan or inf); lower "
                            "--lr or the method's loss weights")

    def df_unit_scores(self, model, forgotten: list[int]) -> list[float]:
        """One number per Df unit: the mean of the per-example Df losses the MIA attack reads (the adapter's
        `example_losses`, in evaluation mode and the evaluation's batches) over the unit's examples, in Df's
        unit order. The run result carries them so a study can compare their distribution with Retrain's
        (forget quality, engine/metrics/forget_quality.py): a unit's examples are not independent samples."""
        forget = self.train.select_units(forgotten)
        model.model.eval()
        values = []
        with torch.no_grad():
            for start in range(0, len(forget), SCORE_BATCH):
                batch = forget.batch(torch.arange(start, min(start + SCORE_BATCH, len(forget))), model.device)
                values.append(model.example_losses(batch).float().cpu())
        if not values:
            return []
        return unit_means(torch.cat(values).tolist(), forget.pair_unit.tolist())

    UTILITY_METRIC = ""  # the Dr headline the history's summary reads (each task names it)

    def utility(self, metrics: dict) -> float | None:
        """The Dr headline of flat metrics, for the history's stability and retain curve."""
        return metrics.get(self.UTILITY_METRIC)

    def entry(self, metrics: dict) -> dict:
        return nest(metrics)

    def request_entry(self, units: list[int], metrics: dict) -> dict:
        return {"units": len(units), "metrics": nest(metrics)}

    def result_fields(self, forgotten: list[int]) -> dict:
        forget = self.train.select_units(forgotten)
        if self.fact_split is not None:
            return {"deletion": {"granularity": "fact", "facts": list(forget.unit_ids), "units": len(forget.unit_ids),
                                 "pairs": len(forget)}, "df_unit_ids": list(forget.unit_ids)}  # the facts' ids
        # which units were forgotten, by their data's ids (an ID file may change later, a random draw is a seed's):
        # a document proves what it deleted; kept out of the catalog's rows, as the per-unit scores are
        # retain_units: what `attack relearn --on neighbours` can draw from, checked before it runs: Dr, the units
        # outside the whole deletion set (a run a --stop-if rule ended forgot part of it and said 60 where Dr held 52)
        return {"deletion": {"units": len(forget.unit_ids), "pairs": len(forget),
                             "retain_units": self.train.n_units - len(set(self.deletion))},
                "df_unit_ids": list(forget.unit_ids)}
