"""What is registered, by name: methods, model families and models, tasks, worlds and data formats,
training recipes. Pure data, torch-free: the CLI's `--help`, `methods`, `models` and the New-run screen
read it instantly; the classes behind each `target` ("module:Class") are imported only when a run needs
them.

Adding a method: one file under engine/methods/ and one `MethodInfo` line below (its flags and form
fields are generated from `params`). Adding a model family: one adapter file under engine/models/ and one
`FamilyInfo` line below (plus `ModelInfo` lines for its registered tiny models).
"""
from __future__ import annotations

import errno

from dataclasses import dataclass
from pathlib import Path

from engine.spec.params import Param


@dataclass(frozen=True)
class MethodInfo:
    name: str
    title: str
    summary: str
    target: str  # "module:Class", imported only when the method runs
    params: tuple[Param, ...] = ()
    epochs: int = 5  # default epochs over the set the method iterates
    iterates: str = "forget"  # "forget" (Df) or "retain" (Dr) defines an epoch
    aliases: tuple[str, ...] = ()  # other names `--method` takes for it; specs record `name`
    requires: tuple[str, ...] = ()  # CAPABILITIES the task or the model family must provide
    # what keeps it off `--strategy fsdp` (empty: it trains sharded), e.g. differentiating its own weights in a step
    unshardable: str = ""
    # which variant of the method it is: the released file it follows, its reduction, reference model and retain
    # weight; `{param}` fields are filled from the run's parameters (`method_variant`), "auto" where one is None
    variant: str = ""
    # the protocols it serves beyond one run: "requests" (`--requests k`: it unlearns each request from the
    # model the one before left; retrain has no "before") and "pulse" (it trains the answer NLL of LMM
    # question batches)
    protocols: tuple[str, ...] = ("requests",)
    # a method that takes a set number of steps whatever --epochs says (Descent-to-Delete: T = 1); a budget may
    # still give it MultiDelete's steps (engine/loop.py)
    fixed_steps: int | None = None


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    model_types: tuple[str, ...]  # transformers `config.model_type` values this family loads
    # task -> adapter class ("module:Class"): `build_tiny(vocabulary, image_size, seed, directory)`,
    # `from_checkpoint(source, tiny)`; the tasks it serves are the keys
    adapters: dict[str, str]
    media: str = "image"  # what its models read beside text ("image" or "graph"); data must bring the same
    provides: tuple[str, ...] = ()  # CAPABILITIES its adapters offer methods (e.g. "layers")
    # the heads its retrieval adapter can score a pair by for Df/Dr AUC and the MIA (`--pair-score`); the
    # first is what `auto` reads
    pair_scores: tuple[str, ...] = ()

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.adapters)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    summary: str
    decoder_layers: int | None = None  # an LMM's language-model layers (what --rmu-layer indexes), checked up front


@dataclass(frozen=True)
class Column:
    """One column of a comparison table: a header, a nested metric name, a scale (100 for fractions)."""

    header: str
    metric: str  # dotted name in a result's `metrics` ("test.accuracy")
    scale: float = 1.0
    optional: bool = False  # shown only where a row has it (the holdout sets: built-in worlds, not real files)


@dataclass(frozen=True)
class TaskInfo:
    name: str
    target: str  # the task class (engine/tasks/)
    summary: str
    columns: tuple[Column, ...] = ()  # the task's headline metrics, as the demo table and `run` show them
    demo_model: str = ""  # the registered model `demo` runs on this task's worlds
    provides: tuple[str, ...] = ()  # CAPABILITIES its batches offer methods (e.g. "refusals")

    @property
    def test_metric(self) -> str | None:
        """The test split's headline among the columns (test r_mean, test accuracy); None without columns."""
        return next((c.metric for c in self.columns if c.metric.startswith("test.")), None)


@dataclass(frozen=True)
class DataInfo:
    name: str
    kind: str  # the task its records serve
    summary: str
    # "module:function" building a world from (name, seed=) or reading a format from its PATH; empty: it is
    # not loaded as `--data` (MMBench TSVs are read as `pulse --general`)
    target: str = ""
    also: tuple[str, ...] = ()  # further tasks its records serve, chosen with `run --task` (`kind` is the default)
    media: str = "image"  # what its units hold beside text: "image" (one or two) or "graph"
    path: str = "dir"  # what FORMAT:PATH names: "dir" (a folder of annotations and images), or a file's suffix

    @property
    def tasks(self) -> tuple[str, ...]:
        return (self.kind, *self.also)

    def path_problem(self, location: str) -> str | None:
        """Why `location` cannot be this format's PATH (missing, a file given for a folder or the other way), in
        words that say what would be right; None when it can."""
        path, folder = Path(location).expanduser(), self.path == "dir"
        if not location:
            return f"{self.name}: names no path; give {self.name}:{'DIR' if folder else 'FILE'}"
        if not path.exists():
            return (f"{location} {not_there(path, folder)}; give {self.name}:PATH with an existing "
                    f"{'directory' if folder else 'file'}")
        if folder and not path.is_dir():
            return (f"{location} is a file, and {self.name} reads a folder (its annotation files and images); give "
                    f"{self.name}:{path.parent}")
        if not folder and path.is_dir():
            inside = sorted(p.name for p in path.glob(f"*{self.path}"))[:3]
            hint = f" (it holds {', '.join(inside)})" if inside else ""
            return f"{location} is a directory, and {self.name} reads one file{hint}; give {self.name}:FILE"
        return None

    def elsewhere(self) -> str:
        """Where data of a format that `run` does not unlearn goes (people data, general-ability questions)."""
        given = (f"`mmul-workbench pulse --data {self.name}:DIR`" if self.kind == "multiple_choice"
                 else f"`mmul-workbench pulse --general {self.name}:FILE`")
        return f"{self.name} data is not what `run` unlearns: {self.summary.split(' (')[0]}; give it to {given}"


# What a method may require beyond the task loss, and who provides it: a task (through `encode`, see
# engine/tasks/__init__.py) or a model family (through its adapter). Validation refuses a run whose task and
# family lack a capability its method requires, in one line naming the field `method`.
CAPABILITIES = {
    "refusals": ("task", "refusal answers for the forget questions ('I don't know' variants, a list in the data)"),
    "layers": ("family", "a decoder layer's hidden states to steer and the parameters of the layers up to it"),
    "preserve_sets": ("task", "every person's text-only questions and the retain image questions (MMUnlearner's "
                      "mask preserve sets)"),
    "vision": ("family", "a vision tower and projector apart from the language model (MMUnlearner's vision mask)"),
}

# Shared by the methods that weigh a forget term against a retain term (OpenUnlearning's gamma and alpha).
FORGET_WEIGHT = Param("forget_weight", float, 1.0, "gamma: weight of the forget term", minimum=0.0)
RETAIN_WEIGHT = Param("retain_weight", float, 1.0, "alpha: weight of the retain term (task loss on Dr; 0 drops it)",
                      minimum=0.0)

M = MethodInfo
METHODS: dict[str, MethodInfo] = {m.name: m for m in (
    M("multidelete", "MultiDelete",
      "modality decoupling + multimodal and unimodal knowledge retention (Cheng & Amiri 2024)",
      "engine.methods.multidelete:MultiDelete", (
          Param("alpha", float, 1.0, "weight of modality decoupling L_MD", minimum=0.0),
          Param("beta", float, 1.0, "weight of multimodal knowledge retention L_MKR", minimum=0.0),
          Param("gamma", float, 1.0, "weight of unimodal knowledge retention L_UKR", minimum=0.0),
          Param("md_on", str, "similarity", "what L_MD regresses on retrieval models: the ITC similarity matrix "
                "(released retrieval code), the fused embedding, or both", ("similarity", "fused", "both")),
          Param("ukr_on", str, "df", "which data L_UKR keeps unimodal embeddings on", ("df", "dr")),
          Param("ukr_modalities", str, "both", "which unimodal embeddings L_UKR keeps", ("both", "image", "text")),
          Param("train", str, "all", "which parameters are updated", ("all", "vision", "text")),
      ), epochs=5, iterates="forget", protocols=("requests", "pulse"),
      variant="MultiDelete's LAVIS fork (vl_unlearn/task_unlearn.py): MSE; L_MD on {md_on}, L_MKR on the fused "
              "embedding, L_UKR on {ukr_on} ({ukr_modalities}) on L2-normalised projections (retrieval; raw states "
              "for classification and LMMs); alpha {alpha}, beta {beta}, gamma {gamma}; ref = the model before "
              "the request"),
    M("retrain", "Retrain", "train from the starting weights on Dr only (gold standard)",
      "engine.methods.retrain:Retrain", (), epochs=0, iterates="retain", protocols=(),
      variant="MultiDelete's Retrain: the starting weights trained on Dr with the original's recipe"),
    M("ft", "FT", "fine-tune the original on Dr", "engine.methods.finetune:FineTune", (), epochs=1, iterates="retain",
      variant="MultiDelete's FT: the task loss on Dr"),
    M("neggrad", "NegGrad", "gradient ascent on the task loss over Df (true ascent)",
      "engine.methods.neggrad:NegGrad", (), epochs=1, iterates="forget",
      variant="MultiDelete's NegGrad, ascending (the released code descends by accident): -task loss on Df"),
    M("ga_klr", "GA+KLR", "gradient ascent on Df + KL to the original on Dr, averaged over answer tokens; no "
      "retain NLL (PULSE's GA+KLR)", "engine.methods.ga_klr:GAKLR",
      (Param("kl_weight", float, 1.0, "lambda: weight of the KL term on Dr", minimum=0.0),), epochs=1,
      iterates="forget", protocols=("requests", "pulse"),
      variant="PULSE's GA+KLR: -task loss on Df + {kl_weight} x KL(original || model) on Dr, the mean over answer "
              "tokens (LMMs) or rows (image-text); no retain NLL; ref = the model before the request"),
    M("kl_min", "KL_Min", "gradient ascent on Df + retain NLL + KL to the original summed over every position "
      "and the vocabulary / batch (MLLMU-Bench, MMUnlearner)", "engine.methods.kl_min:KLMin",
      (Param("kl_weight", float, 1.0, "lambda: weight of the KL term on Dr (released: 1)", minimum=0.0),), epochs=1,
      iterates="forget", protocols=("requests", "pulse"),
      variant="MLLMU-Bench baselines/KL_Min.py, MMUnlearner MLLMU_KL_Min.py: -NLL(Df) + NLL(Dr) + "
              "{kl_weight} x KL(original || model) summed over every position (padding included) and the "
              "vocabulary, / batch size; ref = the model before the request; one step on the sum"),
    M("npo", "NPO", "negative preference optimisation on Df against the model before the request, + retain NLL",
      "engine.methods.npo:NPO", (
          Param("npo_beta", float, 0.1, "NPO inverse temperature beta (OpenUnlearning 0.1; MLLMU-Bench 0.4)",
                positive=True),
          Param("npo_reduction", str, "sum", "the log-ratio over the answer tokens: summed (OpenUnlearning) or "
                "their mean (MLLMU-Bench NPO.py)", ("sum", "mean")),
          RETAIN_WEIGHT,  # alpha 1: OpenUnlearning configs/trainer/NPO.yaml (MLLMU-Bench's NPO.py has none: 0)
      ), epochs=1, iterates="forget", protocols=("requests", "pulse"),
      variant="OpenUnlearning trainer/unlearn/npo.py: log-ratio of the answer tokens' {npo_reduction}, beta "
              "{npo_beta}, ref = the model before the request, + {retain_weight} x retain NLL"),
    M("ga", "GA", "gradient ascent on the answer NLL of the forget people (PULSE's GA = NegGrad)",
      "engine.methods.neggrad:NegGrad", (), epochs=1, iterates="forget", protocols=("requests", "pulse"),
      variant="PULSE's GA (= NegGrad): -answer NLL on Df"),
    M("d2d", "Descent-to-Delete", "T=1 descent step on Dr, then Gaussian noise from the (eps, delta) bound",
      "engine.methods.descent_to_delete:DescentToDelete",
      (Param("eps", float, 5.0, "privacy epsilon of the noise step", positive=True),), epochs=1, iterates="retain",
      fixed_steps=1,
      variant="MultiDelete's Descent-to-Delete: descent on Dr, then Gaussian noise from the strongly-convex "
              "bound, eps {eps}, delta 1/n^2"),
    M("graddiff", "GradDiff", "gradient ascent on Df + task loss descent on Dr (OpenUnlearning's GradDiff)",
      "engine.methods.graddiff:GradDiff", (FORGET_WEIGHT, RETAIN_WEIGHT), epochs=1, iterates="forget", protocols=("requests", "pulse"),
      variant="OpenUnlearning trainer/unlearn/grad_diff.py (retain NLL): -{forget_weight} x NLL(Df) + "
              "{retain_weight} x NLL(Dr)"),
    M("simnpo", "SimNPO", "reference-free, length-normalised NPO with a margin, + retain loss (Fan et al. 2024)",
      "engine.methods.simnpo:SimNPO", (
          Param("simnpo_beta", float, 4.5, "SimNPO inverse temperature beta", positive=True),
          Param("simnpo_delta", float, 0.0, "SimNPO reward margin delta (gamma/beta in the paper)"),
          Param("simnpo_weight", float, 0.125, "gamma: weight of the SimNPO forget term", minimum=0.0),
          RETAIN_WEIGHT), epochs=1, iterates="forget", protocols=("requests", "pulse"),
      variant="OpenUnlearning trainer/unlearn/simnpo.py: length-normalised NLL, beta {simnpo_beta}, delta "
              "{simnpo_delta}, gamma {simnpo_weight}, no reference model, + {retain_weight} x retain NLL"),
    M("idk", "IDK", "fine-tune the forget questions towards refusal answers + retain loss (TOFU's IDK)",
      "engine.methods.idk:IDK", (FORGET_WEIGHT, RETAIN_WEIGHT), epochs=1, iterates="forget", protocols=("requests", "pulse"), requires=("refusals",),
      variant="TOFU / OpenUnlearning IDK: {forget_weight} x NLL(refusal | Df question) + {retain_weight} x NLL(Dr)"),
    M("idkdpo", "IdkDPO", "DPO preferring a refusal over the true answer on Df + retain loss (TOFU / OpenUnlearning)",
      "engine.methods.idkdpo:IdkDPO", (
          Param("dpo_beta", float, 0.1, "DPO inverse temperature beta", positive=True),
          FORGET_WEIGHT, RETAIN_WEIGHT), epochs=1, iterates="forget", protocols=("requests", "pulse"), requires=("refusals",),
      variant="OpenUnlearning trainer/unlearn/dpo.py (IdkDPO): summed log-ratios, beta {dpo_beta}, ref = the model "
              "before the request, gamma {forget_weight}, + {retain_weight} x retain NLL"),
    M("rmu", "RMU", "steer one layer's hidden states on Df to a random direction, keep them on Dr (Li et al. 2024)",
      "engine.methods.rmu:RMU", (
          Param("rmu_layer", int, None, "decoder layer whose hidden states are steered (default: WMDP's relative "
                "depth, layer 7 of 32: layer round(N/4) - 1 of N)", minimum=0),
          Param("rmu_update_layers", int, 3, "how many layers up to --rmu-layer RMU updates (their MLP down "
                "projections; WMDP: 3, layers 5-7)", minimum=1),
          Param("rmu_coeff", float, None, "steering coefficient c, the norm of the random target (default: WMDP's "
                "6.5 for hidden 4096 scaled to the model's width, 6.5 x sqrt(hidden / 4096); given: taken as is)",
                positive=True),
          Param("rmu_alpha", float, 1200.0, "weight of the Dr activation-retention term (WMDP, Zephyr-7B)",
                minimum=0.0),
      ), epochs=1, iterates="forget", protocols=("requests", "pulse"), requires=("layers",),
      variant="WMDP rmu/unlearn.py: steer layer {rmu_layer} to c x u (c {rmu_coeff}), keep it on Dr with alpha "
              "{rmu_alpha}, update the down_proj of {rmu_update_layers} layers; auto = scaled to the model's depth "
              "and width (the document's `resolved`)"),
    M("mmunlearner", "MMUnlearner", "gradient ascent on the forget image questions restricted to two saliency "
      "masks (language model vs every person's text-only knowledge + retain VQA; vision tower + projector vs "
      "retain VQA), + retain descent (Huo et al. 2025)", "engine.methods.mmunlearner:MMUnlearner", (
          Param("mask_threshold", float, 1.0, "mask weights whose forget/preserve saliency (squared-gradient ratio) "
                "is at least this (the released code: 1)", minimum=0.0),
          Param("mask_ratio", float, 1.0, "keep at most this fraction of each mask's weights, the most salient "
                "(1 = every weight over the threshold)", positive=True, maximum=1.0),
          FORGET_WEIGHT, RETAIN_WEIGHT), epochs=1, iterates="forget", protocols=("requests", "pulse"), requires=("preserve_sets", "vision"),
      variant="MMUnlearner MLLMU_gen_mask.py + MLLMU_manifold.py: two masks (language model vs every person's "
              "text-only questions + retain VQA; vision tower + projector vs retain VQA, trained whatever --update), "
              "threshold {mask_threshold}, ratio {mask_ratio}; -{forget_weight} x NLL(forget image questions) on the "
              "masked weights + {retain_weight} x NLL(Dr), one step on the sum",
      unshardable="it takes the gradients of its weights inside each step (the masked ascent), which FSDP's "
                  "shards do not give"),
    M("masked_ga", "Masked GA", "gradient ascent on Df restricted to one mask of the weights salient for Df over "
      "Dr, + retain descent (SalUn-style; this workbench's `mmunlearner` before issue 20, not MMUnlearner)",
      "engine.methods.masked_ga:MaskedGA", (
          Param("mask_threshold", float, 1.0, "mask weights whose Df/Dr saliency (squared-gradient ratio) is at "
                "least this (the released code: 1)", minimum=0.0),
          Param("mask_ratio", float, 1.0, "keep at most this fraction of the covered weights, the most salient "
                "(1 = every weight over the threshold)", positive=True, maximum=1.0),
          FORGET_WEIGHT, RETAIN_WEIGHT), epochs=1, iterates="forget", protocols=("requests", "pulse"),
      variant="saliency-masked GA (one Df-over-Dr mask, threshold {mask_threshold}, ratio {mask_ratio}): "
              "-{forget_weight} x NLL(Df) on the masked weights + {retain_weight} x NLL(Dr)",
      unshardable="it takes the gradients of its weights inside each step (the masked ascent), which FSDP's "
                  "shards do not give"),
)}


def holdout_columns(measure: str) -> tuple[Column, ...]:
    """The world's holdout sets (engine/data/facts.py), beside test: a drop there is over-generalised forgetting."""
    return (Column("holdout id", f"holdout_identity.{measure}", optional=True),
            Column("holdout assoc", f"holdout_association.{measure}", optional=True))


def shown_columns(task: str, rows) -> list[Column]:
    """TASKS[task]'s columns a table shows: every required one, and an optional one where some row (a flat
    {metric name: value} of the table) holds it."""
    rows = list(rows)
    return [c for c in TASKS[task].columns
            if not c.optional or any(c.metric in row for row in rows)] if task in TASKS else []


MIA_COLUMNS = (Column("MIA Df member", "mia.df_member_rate", 100.0), Column("MIA test member", "mia.test_member_rate", 100.0),
               Column("MIA AUC", "mia.auc", 100.0))
TASKS: dict[str, TaskInfo] = {t.name: t for t in (
    TaskInfo("retrieval", "engine.tasks.retrieval:Retrieval",
             "image-text retrieval: ITC(+ITM) loss, recall@k, Df/Dr AUC and MIA on pair scores",
             (Column("Df/Dr AUC", "df_dr_auc", 100.0), Column("test r_mean", "test.r_mean"),
              Column("Df r_mean", "df.r_mean"), Column("Dr r_mean", "dr.r_mean"), *holdout_columns("r_mean"),
              *MIA_COLUMNS), "clip-tiny"),
    TaskInfo("classification", "engine.tasks.classification:Classification",
             "classification of a unit and a text (SNLI-VE, NLVR2): cross-entropy, accuracy, Df/Dr AUC on "
             "class probabilities, MIA on per-example losses",
             (Column("Df/Dr AUC", "df_dr_auc", 100.0), Column("test acc", "test.accuracy"),
              Column("Df acc", "df.accuracy"), Column("Dr acc", "dr.accuracy"), *holdout_columns("accuracy"),
              *MIA_COLUMNS), "blip-tiny"),
    TaskInfo("multiple_choice", "engine.tasks.multiple_choice:MultipleChoice",
             "four-option QA about people (PULSE): answer NLL, accuracy with and without the image, MMBench",
             provides=("refusals", "preserve_sets")),
)}

FAMILIES: dict[str, FamilyInfo] = {f.name: f for f in (
    FamilyInfo("blip", ("blip",), {"retrieval": "engine.models.blip:BlipRetrievalAdapter",
                                   "classification": "engine.models.blip_classifier:BlipClassifierAdapter"},
               pair_scores=("itc", "itm")),
    FamilyInfo("clip", ("clip",), {"retrieval": "engine.models.clip:ClipAdapter"}, pair_scores=("itc",)),
    FamilyInfo("llava", ("llava",), {"multiple_choice": "engine.models.llava:LlavaAdapter"},
               provides=("layers", "vision")),
    FamilyInfo("qwen2_vl", ("qwen2_vl",), {"multiple_choice": "engine.models.qwen2_vl:Qwen2VLAdapter"},
               provides=("layers", "vision")),
    # a plain BERT checkpoint (`bert`) becomes the text side of a new GCN+BERT
    FamilyInfo("gcn_bert", ("gcn_bert", "bert"), {"retrieval": "engine.models.gcn_bert:GcnBertRetrievalAdapter",
                                                  "classification": "engine.models.gcn_bert:GcnBertClassifierAdapter"},
               media="graph", pair_scores=("itm",)),
)}

MODELS: dict[str, ModelInfo] = {m.name: m for m in (
    ModelInfo("blip-tiny", "blip", "BlipForImageTextRetrieval, hidden 64, 2+2 layers, ITC+ITM (tokenizer from the world); "
              "on classification data the same encoders with a classification head on the fused [CLS]"),
    ModelInfo("clip-tiny", "clip", "CLIPModel dual encoder, hidden 64, 2+2 layers (tokenizer from the world)"),
    ModelInfo("llava-tiny", "llava", "LlavaForConditionalGeneration: CLIP vision 64 (32 px, patch 8: 16 image "
              "tokens) + Llama 64, 2+2 layers (tokenizer from the world); for `pulse`", decoder_layers=2),
    ModelInfo("qwen2-vl-tiny", "qwen2_vl", "Qwen2VLForConditionalGeneration: vision 64 (32 px, patch 4, merge 2: "
              "16 image tokens) + Qwen2 64 with M-RoPE, 2+2 layers (tokenizer from the world); for `pulse`",
              decoder_layers=2),
    ModelInfo("gcn-bert-tiny", "gcn_bert", "GCN (torch_geometric, 2 layers) + BERT (2 layers), hidden 64, fused by "
              "cross-attention; ITC+ITM for retrieval, a head on the fused [CLS] for classification (graph data)"),
)}

WORLDS: dict[str, DataInfo] = {d.name: d for d in (
    DataInfo("shapes", "retrieval", "built-in coloured shapes, 1500/100/300 images x 5 captions",
             "engine.data.shapes:build_shapes_world"),
    DataInfo("shapes-tiny", "retrieval", "built-in coloured shapes, 160/24/48 images (tests, quick looks)",
             "engine.data.shapes:build_shapes_world"),
    DataInfo("shapes-ve", "classification", "built-in visual entailment (like SNLI-VE): 1000/100/300 images x 12 "
             "hypotheses, entailment/neutral/contradiction", "engine.data.shapes_ve:build_ve_world"),
    DataInfo("shapes-ve-tiny", "classification", "built-in visual entailment, 64/16/32 images (tests)",
             "engine.data.shapes_ve:build_ve_world"),
    DataInfo("shapes-nlvr2", "classification", "built-in two-image statements (like NLVR2): 800/100/300 pairs x 10 "
             "statements, True/False", "engine.data.shapes_nlvr2:build_nlvr2_world"),
    DataInfo("shapes-nlvr2-tiny", "classification", "built-in two-image statements, 64/16/32 pairs (tests)",
             "engine.data.shapes_nlvr2:build_nlvr2_world"),
    DataInfo("graph", "classification", "built-in molecule-like graphs (typed atoms and bonds), 1200/100/300 x 4 "
             "statements, acid-base class label (like PGR); --task retrieval ranks graphs and statements",
             "engine.data.graph_world:build_graph_world", also=("retrieval",), media="graph"),
    DataInfo("graph-tiny", "classification", "built-in molecule-like graphs, 64/16/32 (tests)",
             "engine.data.graph_world:build_graph_world", also=("retrieval",), media="graph"),
)}
# People worlds (PULSE): synthetic people with faces and facts, learned in pretraining (P) or fine-tuning (F).
PEOPLE_WORLDS: dict[str, DataInfo] = {d.name: d for d in (
    DataInfo("people", "multiple_choice", "built-in people: 250 people (125 pretraining, 125 fine-tuning: a "
             "100-request pulse forgets 100 distinct people), 25 held-out people never trained on + 200 MMBench-format "
             "shape questions", "engine.data.people:build_people_world"),
    DataInfo("people-tiny", "multiple_choice", "built-in people: 8 people (4 + 4), 2 held-out + 16 shape "
             "questions (tests)", "engine.data.people:build_people_world"),
    DataInfo("people-small", "multiple_choice", "built-in people: 30 people (24 + 6), 3 held-out + 50 shape "
             "questions: a 20-request pulse in minutes on a CPU", "engine.data.people:build_people_world"),
)}
@dataclass(frozen=True)
class PeopleSize:
    people: int
    pretrain_people: int
    images_per_person: int
    general_train_images: int  # each gives one training question per attribute
    general_eval_questions: int
    heldout_people: int = 0  # asked about, never trained on: the membership attacks' held-out side


PEOPLE_SIZES = {
    "people": PeopleSize(people=250, pretrain_people=125, images_per_person=4,
                        general_train_images=400, general_eval_questions=200, heldout_people=25),
    "people-tiny": PeopleSize(people=8, pretrain_people=4, images_per_person=4,
                             general_train_images=24, general_eval_questions=16, heldout_people=2),
    # people-tiny grown for long sequences: 24 pretrained people hold 20 requests with 4 retain people left;
    # a world of its own so that the tests' pulse runs on people-tiny do not unlearn and score 3x more
    "people-small": PeopleSize(people=30, pretrain_people=24, images_per_person=4,
                               general_train_images=48, general_eval_questions=50, heldout_people=3),
}


DATA_FORMATS: dict[str, DataInfo] = {d.name: d for d in (
    DataInfo("flickr30k", "retrieval", "Karpathy JSON (flickr30k_train/val/test.json or dataset_flickr30k.json) "
             "+ images, FORMAT:DIR", "engine.data.flickr30k:read_flickr30k"),
    DataInfo("coco", "retrieval", "Karpathy dataset_coco.json (or coco_karpathy_train/val/test.json) + images "
             "under <filepath>/, FORMAT:DIR", "engine.data.flickr30k:read_coco"),
    DataInfo("snli-ve", "classification", "SNLI-VE jsonl (Flickr30K_ID, sentence2, gold_label) or LAVIS JSON "
             "(image, sentence, label) + <id>.jpg images, FORMAT:DIR", "engine.data.snli_ve:read_snli_ve"),
    DataInfo("nlvr2", "classification", "NLVR2 jsonl (identifier, sentence, label) or LAVIS JSON (images, "
             "sentence, label) + <id>-img0/1.png images, FORMAT:DIR", "engine.data.nlvr2:read_nlvr2"),
    DataInfo("graph-text", "classification", "graph-text JSONL: id, graph {nodes [{type, text?}], edges [[i, j, "
             "type?]]}, texts, label?, split?; FORMAT:FILE.jsonl (--task retrieval needs no labels)",
             "engine.data.graph_text:read_graph_text", also=("retrieval",), media="graph", path=".jsonl"),
    DataInfo("mmbench", "general", "MMBench TSV with an answer column (pulse --general mmbench:FILE)", path=".tsv"),
    DataInfo("mllmu", "multiple_choice", "MLLMU-Bench parquet folder (pulse --data mllmu:DIR)",
             "engine.data.mllmu:read_mllmu"),
)}
# The built-in worlds are fixed: --seed varies deletion sets, model init and training order, never the data.
WORLD_SEED = 0

# Original-model recipe for image-text models: lr for training from the starting weights, epochs over all
# data. unlearn_lr: every method's default rate; the same as the training rate, as the released
# MultiDelete unlearns a retrieval BLIP at its fine-tuning rate (1e-5). "tiny:<family>": a family's own tiny
# recipe where it differs. blip-tiny (retrieval) trains on the same schedule from weights drawn at a scale fit
# for hidden 64 (`init_range`: the vision and text encoders; `head_init_range`: the ITC projections and ITM
# head; its build_tiny reads them): BERT's initializer_range 0.02, sized for hidden 768, leaves the tiny BLIP
# 6-14 points of test r_mean under clip-tiny on `shapes` (README "The tiny models' recipe").
RECIPES = {
    "tiny": {"lr": 5e-4, "epochs": 12, "batch_size": 32, "unlearn_lr": 5e-4},
    "tiny:blip": {"lr": 5e-4, "epochs": 12, "batch_size": 32, "unlearn_lr": 5e-4, "init_range": 0.1,
                  "head_init_range": 0.125},
    "pretrained": {"lr": 1e-5, "epochs": 6, "batch_size": 32, "unlearn_lr": 1e-5},
}

DELETION_STRATEGIES = ("random", "ids", "query")
ATTACK_KINDS = ("relearn", "quantize", "rephrase")   # engine/attacks: what `attack` and `study --attacks` offer
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_SEED = 42
PULSE_METHODS = tuple(m.name for m in METHODS.values() if "pulse" in m.protocols)
SEQUENTIAL_METHODS = tuple(m.name for m in METHODS.values() if "requests" in m.protocols)
KNOWLEDGE_SOURCES = ("pretrained", "finetuned")
RUN_TASKS = ("retrieval", "classification")  # the tasks `run` and `demo` do (multiple-choice QA is `pulse`'s)


def data_info(ref: str) -> DataInfo | None:
    """The catalogue row of a world name or a FORMAT:PATH reference; None when unknown."""
    for table in (WORLDS, PEOPLE_WORLDS):
        if ref in table:
            return table[ref]
    return DATA_FORMATS.get(ref.partition(":")[0]) if ":" in ref else None


def demo_model(ref: str, task: str | None = None) -> str | None:
    """The registered model a demo runs on this data: its task's `demo_model` when that reads the data's
    media, else the first registered model that serves the task and reads them; None for unknown data."""
    info = data_info(ref)
    if info is None or (task or info.kind) not in TASKS:
        return None
    task = task or info.kind
    for name in (TASKS[task].demo_model, *MODELS):
        family = FAMILIES[MODELS[name].family] if name in MODELS else None
        if family is not None and task in family.tasks and family.media == info.media:
            return name
    return None


def data_kind(ref: str) -> str | None:
    """The task a data reference's records serve by default (its `kind`); None when unknown."""
    info = data_info(ref)
    return info.kind if info else None


def method_variant(name: str, params: dict | None = None) -> str:
    """Method `name`'s variant with its parameters filled in: the run's `params`, else the defaults."""
    info = METHODS[name]
    values = {p.name: p.default for p in info.params} | {k: v for k, v in (params or {}).items() if k in
                                                          {p.name for p in info.params}}
    return info.variant.format(**{k: "auto" if v is None else v for k, v in values.items()})


# every method's epochs over each request under `pulse`: the people recipes' (engine/tasks/multiple_choice.py
# LMM_RECIPES "unlearn_epochs"), whatever the method's own default on image-text data
PULSE_UNLEARN_EPOCHS = 5


def budget_words(method) -> str:
    """A method's default budget (`--budget default`) in words: `5 epochs over Df`, and under `pulse` the people
    recipe's (it read `1 epoch over Df` for NPO, which runs 5 there)."""
    over = "Df" if method.iterates == "forget" else "Dr"
    if method.fixed_steps is not None:
        return f"{method.fixed_steps} step{'s' if method.fixed_steps != 1 else ''} over {over} (its own count)"
    if method.epochs == 0:  # Retrain
        return f"the original's recipe over {over}"
    words = f"{method.epochs} epoch{'s' if method.epochs != 1 else ''} over {over}"
    if "pulse" in method.protocols and method.epochs != PULSE_UNLEARN_EPOCHS:
        words += f" (under pulse: {PULSE_UNLEARN_EPOCHS} epochs over each request, the people recipe's)"
    return words


def method_rows() -> list[dict]:
    return [
        {
            "name": m.name,
            "title": m.title,
            "summary": m.summary,
            "variant": method_variant(m.name),
            "epochs": m.epochs,
            "iterates": m.iterates,
            "fixed_steps": m.fixed_steps,
            "budget": budget_words(m),
            "aliases": list(m.aliases),
            "requires": list(m.requires),
            "params": [{"name": p.name, "default": p.default, "help": p.help, "choices": list(p.choices)}
                       for p in m.params],
        }
        for m in METHODS.values()
    ]


def not_there(path: Path, folder: bool) -> str:
    """What is at `path` where a folder (`folder`) or a file was expected and is not: "does not exist", "is a
    file", "is a folder", or "is a symbolic link that loops"."""
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            return "is a symbolic link that loops"
        except OSError as error:
            if getattr(error, "errno", None) == errno.ELOOP:
                return "is a symbolic link that loops"
        return "is a symbolic link to nothing"
    if not path.exists():
        return "does not exist"
    return "is a file" if folder else "is a folder"
