"""What is registered, by name: methods, model families and models, tasks, worlds and data formats,
training recipes. Pure data, torch-free: the CLI's `--help`, `methods`, `models` and the New-run screen
read it instantly; the classes behind each `target` ("module:Class") are imported only when a run needs
them.

Adding a method: one file under engine/methods/ and one `MethodInfo` line below (its flags and form
fields are generated from `params`). Adding a model family: one adapter file under engine/models/ and one
`FamilyInfo` line below (plus `ModelInfo` lines for its registered tiny models).
"""
from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    model_types: tuple[str, ...]  # transformers `config.model_type` values this family loads
    # task -> adapter class ("module:Class"): `build_tiny(vocabulary, image_size, seed, directory)`,
    # `from_checkpoint(source, tiny)`; the tasks it serves are the keys
    adapters: dict[str, str]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.adapters)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    summary: str


@dataclass(frozen=True)
class TaskInfo:
    name: str
    target: str  # the task class (engine/tasks/)
    summary: str


@dataclass(frozen=True)
class DataInfo:
    name: str
    kind: str  # the task its records serve
    summary: str


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
      ), epochs=5, iterates="forget"),
    M("retrain", "Retrain", "train from the starting weights on Dr only (gold standard)",
      "engine.methods.retrain:Retrain", (), epochs=0, iterates="retain"),
    M("ft", "FT", "fine-tune the original on Dr", "engine.methods.finetune:FineTune", (), epochs=1, iterates="retain"),
    M("neggrad", "NegGrad", "gradient ascent on the task loss over Df (true ascent)",
      "engine.methods.neggrad:NegGrad", (), epochs=1, iterates="forget"),
    M("ga_klr", "GA+KLR", "gradient ascent on Df + KL to the original on Dr", "engine.methods.ga_klr:GAKLR",
      (Param("kl_weight", float, 1.0, "lambda: weight of the KL term on Dr", minimum=0.0),), epochs=1, iterates="forget"),
    M("npo", "NPO", "negative preference optimisation on Df against the model before the request",
      "engine.methods.npo:NPO", (Param("npo_beta", float, 0.1, "NPO inverse temperature beta", positive=True),),
      epochs=1, iterates="forget"),
    M("ga", "GA", "gradient ascent on the answer NLL of the forget people (PULSE's GA = NegGrad)",
      "engine.methods.neggrad:NegGrad", (), epochs=1, iterates="forget"),
    M("d2d", "Descent-to-Delete", "T=1 descent step on Dr, then Gaussian noise from the (eps, delta) bound",
      "engine.methods.descent_to_delete:DescentToDelete",
      (Param("eps", float, 5.0, "privacy epsilon of the noise step", positive=True),), epochs=1, iterates="retain"),
)}

TASKS: dict[str, TaskInfo] = {t.name: t for t in (
    TaskInfo("retrieval", "engine.tasks.retrieval:Retrieval",
             "image-text retrieval: ITC(+ITM) loss, recall@k, Df/Dr AUC and MIA on pair scores"),
    TaskInfo("multiple_choice", "engine.tasks.multiple_choice:MultipleChoice",
             "four-option QA about people (PULSE): answer NLL, accuracy with and without the image, MMBench"),
)}

FAMILIES: dict[str, FamilyInfo] = {f.name: f for f in (
    FamilyInfo("blip", ("blip",), {"retrieval": "engine.models.blip:BlipRetrievalAdapter"}),
    FamilyInfo("clip", ("clip",), {"retrieval": "engine.models.clip:ClipAdapter"}),
    FamilyInfo("llava", ("llava",), {"multiple_choice": "engine.models.llava:LlavaAdapter"}),
)}

MODELS: dict[str, ModelInfo] = {m.name: m for m in (
    ModelInfo("blip-tiny", "blip", "BlipForImageTextRetrieval, hidden 64, 2+2 layers, ITC+ITM (tokenizer from the world)"),
    ModelInfo("clip-tiny", "clip", "CLIPModel dual encoder, hidden 64, 2+2 layers (tokenizer from the world)"),
    ModelInfo("llava-tiny", "llava", "LlavaForConditionalGeneration: CLIP vision 64 (32 px, patch 8: 16 image "
              "tokens) + Llama 64, 2+2 layers (tokenizer from the world); for `pulse`"),
)}

WORLDS: dict[str, DataInfo] = {d.name: d for d in (
    DataInfo("shapes", "retrieval", "built-in coloured shapes, 1500/100/300 images x 5 captions"),
    DataInfo("shapes-tiny", "retrieval", "built-in coloured shapes, 160/24/48 images (tests, quick looks)"),
)}
# People worlds (PULSE): synthetic people with faces and facts, learned in pretraining (P) or fine-tuning (F).
PEOPLE_WORLDS: dict[str, DataInfo] = {d.name: d for d in (
    DataInfo("people", "multiple_choice", "built-in people: 40 people (20 pretraining, 20 fine-tuning) + shape questions"),
    DataInfo("people-tiny", "multiple_choice", "built-in people: 8 people (4 + 4) + a few shape questions (tests)"),
)}
@dataclass(frozen=True)
class PeopleSize:
    people: int
    pretrain_people: int
    images_per_person: int
    general_train_images: int  # each gives one training question per attribute
    general_eval_questions: int


PEOPLE_SIZES = {
    "people": PeopleSize(people=40, pretrain_people=20, images_per_person=4,
                        general_train_images=400, general_eval_questions=200),
    "people-tiny": PeopleSize(people=8, pretrain_people=4, images_per_person=4,
                             general_train_images=24, general_eval_questions=16),
}


DATA_FORMATS: dict[str, DataInfo] = {d.name: d for d in (
    DataInfo("flickr30k", "retrieval", "Karpathy-style JSON (train/val/test) + images, FORMAT:DIR"),
    DataInfo("mmbench", "general", "MMBench TSV with an answer column (pulse --general mmbench:FILE)"),
    DataInfo("mllmu", "multiple_choice", "MLLMU-Bench parquet folder (pulse --data mllmu:DIR)"),
)}
# The built-in worlds are fixed: --seed varies deletion sets, model init and training order, never the data.
WORLD_SEED = 0

# Original-model recipe for image-text models: lr for training from the starting weights, epochs over all
# data. unlearn_lr: every method's default rate; the same as the training rate, as the released
# MultiDelete unlearns a retrieval BLIP at its fine-tuning rate (1e-5).
RECIPES = {
    "tiny": {"lr": 5e-4, "epochs": 12, "batch_size": 32, "unlearn_lr": 5e-4},
    "pretrained": {"lr": 1e-5, "epochs": 6, "batch_size": 32, "unlearn_lr": 1e-5},
}

DELETION_STRATEGIES = ("random", "ids", "query")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_SEED = 42
PULSE_METHODS = ("ga", "ga_klr", "npo", "multidelete")
SEQUENTIAL_METHODS = ("multidelete", "ft", "neggrad", "ga_klr", "npo", "ga", "d2d")  # not retrain: it has no "before"
KNOWLEDGE_SOURCES = ("pretrained", "finetuned")


def method_rows() -> list[dict]:
    return [
        {
            "name": m.name,
            "title": m.title,
            "summary": m.summary,
            "epochs": m.epochs,
            "iterates": m.iterates,
            "params": [{"name": p.name, "default": p.default, "help": p.help, "choices": list(p.choices)}
                       for p in m.params],
        }
        for m in METHODS.values()
    ]
