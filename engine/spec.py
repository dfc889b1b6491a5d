"""Names, parameters and defaults of models, data and methods; run-spec validation.

Torch-free on purpose: the CLI's `--help`, `methods`, `models` and the New-run screen read this module
without paying for torch or transformers. The classes behind each name are imported lazily by `target`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import SpecError


@dataclass(frozen=True)
class Param:
    name: str
    kind: type
    default: object
    help: str
    choices: tuple = ()
    minimum: float | None = None  # inclusive
    positive: bool = False  # strictly > 0

    def coerce(self, value, owner: str):
        try:
            if self.kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            coerced = self.kind(value)
        except (TypeError, ValueError):
            raise SpecError(f"{owner}: --{dash(self.name)} must be {self.kind.__name__}, got {value!r}") from None
        if isinstance(coerced, float) and not math.isfinite(coerced):
            raise SpecError(f"{owner}: --{dash(self.name)} must be a finite number, got {value!r}")
        if self.choices and coerced not in self.choices:
            raise SpecError(f"{owner}: --{dash(self.name)} must be one of {', '.join(map(str, self.choices))}; got {value!r}")
        if self.positive and coerced <= 0:
            raise SpecError(f"{owner}: --{dash(self.name)} must be > 0, got {value!r}")
        if self.minimum is not None and coerced < self.minimum:
            raise SpecError(f"{owner}: --{dash(self.name)} must be >= {self.minimum}, got {value!r}")
        return coerced


def dash(name: str) -> str:
    return name.replace("_", "-")


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
class ModelInfo:
    name: str
    family: str
    summary: str


@dataclass(frozen=True)
class DataInfo:
    name: str
    kind: str
    summary: str


# Hyperparameters every method takes. lr None = the model's recipe (tiny models learn from scratch
# and need a larger rate than the released 1e-5 for a pretrained BLIP).
COMMON_PARAMS: tuple[Param, ...] = (
    Param("lr", float, None, "learning rate (default: the model's recipe; released BLIP retrieval: 1e-5)", positive=True),
    Param("epochs", int, None, "epochs over the set the method iterates (method default)", minimum=1),
    Param("batch_size", int, 16, "deletion-set (Df) batch size", minimum=1),
    Param("retain_batch_size", int, 64, "remaining-data (Dr) batch size", minimum=1),
    Param("weight_decay", float, 0.05, "AdamW weight decay (on >=2-D weights only)", minimum=0.0),
    Param("max_grad_norm", float, 1.0, "gradient clipping norm (0 = off)", minimum=0.0),
    Param("eval_every", int, 0, "evaluate every N steps (0 = at each epoch end)", minimum=0),
)

METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo(
            "multidelete",
            "MultiDelete",
            "modality decoupling + multimodal and unimodal knowledge retention (Cheng & Amiri 2024)",
            "engine.methods.multidelete:MultiDelete",
            (
                Param("alpha", float, 1.0, "weight of modality decoupling L_MD", minimum=0.0),
                Param("beta", float, 1.0, "weight of multimodal knowledge retention L_MKR", minimum=0.0),
                Param("gamma", float, 1.0, "weight of unimodal knowledge retention L_UKR", minimum=0.0),
                Param("md_on", str, "similarity", "what L_MD regresses on retrieval models: the ITC similarity matrix "
                      "(released retrieval code), the fused embedding, or both", ("similarity", "fused", "both")),
                Param("ukr_on", str, "df", "which data L_UKR keeps unimodal embeddings on", ("df", "dr")),
                Param("ukr_modalities", str, "both", "which unimodal embeddings L_UKR keeps", ("both", "image", "text")),
                Param("train", str, "all", "which parameters are updated", ("all", "vision", "text")),
            ),
            epochs=5,
            iterates="forget",
        ),
        MethodInfo("retrain", "Retrain", "train from the starting weights on Dr only (gold standard)",
                   "engine.methods.retrain:Retrain", (), epochs=0, iterates="retain"),
        MethodInfo("ft", "FT", "fine-tune the original on Dr", "engine.methods.finetune:FineTune",
                   (), epochs=1, iterates="retain"),
        MethodInfo("neggrad", "NegGrad", "gradient ascent on the task loss over Df (true ascent)",
                   "engine.methods.neggrad:NegGrad", (), epochs=1, iterates="forget"),
        MethodInfo("ga_klr", "GA+KLR", "gradient ascent on Df + KL to the original on Dr",
                   "engine.methods.ga_klr:GAKLR",
                   (Param("kl_weight", float, 1.0, "lambda: weight of the KL term on Dr", minimum=0.0),),
                   epochs=1, iterates="forget"),
        MethodInfo("npo", "NPO", "negative preference optimisation on Df against the model before the request",
                   "engine.methods.npo:NPO",
                   (Param("npo_beta", float, 0.1, "NPO inverse temperature beta", positive=True),),
                   epochs=1, iterates="forget"),
        MethodInfo("ga", "GA", "gradient ascent on the answer NLL of the forget people (PULSE's GA = NegGrad)",
                   "engine.methods.neggrad:NegGrad", (), epochs=1, iterates="forget"),
        MethodInfo("d2d", "Descent-to-Delete", "T=1 descent step on Dr, then Gaussian noise from the (eps, delta) bound",
                   "engine.methods.descent_to_delete:DescentToDelete",
                   (Param("eps", float, 5.0, "privacy epsilon of the noise step", positive=True),),
                   epochs=1, iterates="retain"),
    )
}

MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo("blip-tiny", "blip", "BlipForImageTextRetrieval, hidden 64, 2+2 layers, ITC+ITM (tokenizer from the world)"),
        ModelInfo("clip-tiny", "clip", "CLIPModel dual encoder, hidden 64, 2+2 layers (tokenizer from the world)"),
        ModelInfo("llava-tiny", "llava", "LlavaForConditionalGeneration: CLIP vision 64 (32 px, patch 8: 16 image "
                  "tokens) + Llama 64, 2+2 layers (tokenizer from the world); for `pulse`"),
    )
}

WORLDS: dict[str, DataInfo] = {
    d.name: d
    for d in (
        DataInfo("shapes", "image-text", "built-in coloured shapes, 1500/100/300 images x 5 captions"),
        DataInfo("shapes-tiny", "image-text", "built-in coloured shapes, 160/24/48 images (tests, quick looks)"),
    )
}
DATA_FORMATS: dict[str, DataInfo] = {
    "flickr30k": DataInfo("flickr30k", "image-text", "Karpathy-style JSON (train/val/test) + images, FORMAT:DIR"),
    "mmbench": DataInfo("mmbench", "general", "MMBench TSV with an answer column (pulse --general mmbench:FILE)"),
    "mllmu": DataInfo("mllmu", "people", "MLLMU-Bench parquet folder (pulse --data mllmu:DIR)"),
}
# People worlds (PULSE): synthetic people with faces and facts, learned in pretraining (P) or fine-tuning (F).
PEOPLE_WORLDS: dict[str, DataInfo] = {
    d.name: d
    for d in (
        DataInfo("people", "people", "built-in people: 40 people (20 pretraining, 20 fine-tuning) + shape questions"),
        DataInfo("people-tiny", "people", "built-in people: 8 people (4 + 4) + a few shape questions (tests)"),
    )
}

# Original-model recipe per model family: lr for training from the starting weights, epochs over all data.
# unlearn_lr: every method's default rate; the same as the training rate, as the released MultiDelete
# unlearns a retrieval BLIP at its fine-tuning rate (1e-5).
RECIPES = {
    "tiny": {"lr": 5e-4, "epochs": 12, "batch_size": 32, "unlearn_lr": 5e-4},
    "pretrained": {"lr": 1e-5, "epochs": 6, "batch_size": 32, "unlearn_lr": 1e-5},
}

DELETION_STRATEGIES = ("random", "ids", "query")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_SEED = 42


def method_info(name: str) -> MethodInfo:
    if name not in METHODS:
        raise SpecError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def _looks_like_hub_id(ref: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", ref))


def check_model(ref: str) -> None:
    if ref in MODELS:
        return
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise SpecError(f"model directory {ref} has no config.json; point at a save_pretrained checkpoint directory")
        return
    if _looks_like_hub_id(ref) and not path.exists():
        return  # resolved from the local hub cache at load time (offline)
    raise SpecError(f"unknown model {ref!r}; choose one of {', '.join(MODELS)}, a checkpoint directory, or a hub id")


def check_data(ref: str) -> None:
    if ref in WORLDS:
        return
    if ":" in ref:
        fmt, _, location = ref.partition(":")
        if fmt not in DATA_FORMATS:
            raise SpecError(f"unknown data format {fmt!r}; choose one of: {', '.join(DATA_FORMATS)} (as FORMAT:PATH)")
        if not Path(location).expanduser().exists():
            raise SpecError(f"data path {location} does not exist; give FORMAT:PATH with an existing directory")
        return
    raise SpecError(f"unknown data {ref!r}; choose a built-in world ({', '.join(WORLDS)}) or FORMAT:PATH")


def check_deletion(deletion: dict) -> dict:
    strategy = deletion.get("strategy")
    if strategy not in DELETION_STRATEGIES:
        raise SpecError("choose a deletion set: --delete N, --delete-ids FILE or --delete-query TEXT")
    n = deletion.get("n")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise SpecError(f"--delete N must be a positive whole number of units, got {n!r}")
    if strategy == "random" and n is None:
        raise SpecError("--delete N needs N, the number of units to delete")
    if strategy == "ids":
        file = deletion.get("file")
        if not file or not Path(file).expanduser().is_file():
            raise SpecError(f"deletion ID file {file} does not exist; give a file with one unit id per line")
    if strategy == "query" and not str(deletion.get("query") or "").strip():
        raise SpecError("--delete-query needs a non-empty text to match captions against")
    seed = deletion.get("seed", DEFAULT_SEED)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SpecError(f"--seed must be a whole number, got {seed!r}")
    return {**deletion, "seed": seed}


def validate(spec: dict) -> dict:
    """Normalise a run spec (fill defaults, coerce types) or raise SpecError with one line."""
    if not isinstance(spec, dict):
        raise SpecError("a run spec must be a JSON object")
    info = method_info(spec.get("method"))
    model, data = spec.get("model"), spec.get("data")
    if not isinstance(model, str) or not model:
        raise SpecError("a run needs --model (see `mmul-workbench models`)")
    if not isinstance(data, str) or not data:
        raise SpecError("a run needs --data (see `mmul-workbench data list`)")
    check_model(model)
    check_data(data)
    device = spec.get("device", "auto")
    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", str(device)):
        raise SpecError(f"--device must be auto, cpu, cuda or cuda:N; got {device!r}")
    deletion = check_deletion(dict(spec.get("deletion") or {}))
    raw = dict(spec.get("params") or {})
    params = {}
    allowed = {p.name: p for p in COMMON_PARAMS + info.params}
    for name in raw:
        if name not in allowed:
            raise SpecError(f"method {info.name} has no parameter --{dash(name)}; it takes: "
                            + ", ".join("--" + dash(p) for p in allowed))
    for name, param in allowed.items():
        value = raw.get(name, param.default)
        params[name] = None if value is None else param.coerce(value, info.name)
    seed = spec.get("seed", DEFAULT_SEED)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SpecError(f"--seed must be a whole number, got {seed!r}")
    return {
        "kind": "run",
        "method": info.name,
        "model": model,
        "data": data,
        "device": device,
        "seed": seed,
        "deletion": deletion,
        "params": params,
        "name": spec.get("name"),
    }


# --- PULSE: sequential deletion requests on an LMM ------------------------------------------------
PULSE_METHODS = ("ga", "ga_klr", "npo", "multidelete")
KNOWLEDGE_SOURCES = ("pretrained", "finetuned")
UPDATE_TARGETS = ("llm", "proj+llm", "full")
LMM_PARAMS: tuple[Param, ...] = (
    Param("update", str, "llm", "what unlearning updates: LoRA on the language model, + the projector, or full",
          UPDATE_TARGETS),
    Param("lora_r", int, 16, "LoRA rank", minimum=1),
    Param("lora_alpha", float, 16.0, "LoRA alpha", positive=True),
    Param("lora_dropout", float, 0.05, "LoRA dropout", minimum=0.0),
    Param("mc_scoring", str, "auto", "four-option scoring: option text log-likelihood, option letter, or "
          "auto (option for registered tiny models, letter for checkpoints)", ("auto", "option", "letter")),
)
PULSE_DEFAULT_PARAMS = {"batch_size": 8, "retain_batch_size": 8}


def check_llava_model(ref: str) -> None:
    """A registered LLaVA name, a LLaVA checkpoint directory, or a hub id (checked when loaded)."""
    if ref in MODELS:
        if MODELS[ref].family != "llava":
            raise SpecError(f"model {ref!r} is a {MODELS[ref].family} model; pulse needs a LLaVA model "
                            f"({', '.join(m.name for m in MODELS.values() if m.family == 'llava')}, a LLaVA "
                            "checkpoint directory or hub id)")
        return
    path = Path(ref).expanduser()
    if path.is_dir():
        import json

        config_file = path / "config.json"
        try:
            model_type = json.loads(config_file.read_text()).get("model_type")
        except (OSError, ValueError):
            raise SpecError(f"model directory {ref} has no readable config.json; point at a LLaVA "
                            "save_pretrained directory (e.g. a local copy of llava-hf/llava-1.5-7b-hf)") from None
        if model_type != "llava":
            raise SpecError(f"model directory {ref} holds a {model_type!r} checkpoint, not LLaVA; pulse needs a "
                            "LlavaForConditionalGeneration checkpoint (config.json model_type \"llava\")")
        return
    if _looks_like_hub_id(ref) and not path.exists():
        return
    raise SpecError(f"unknown model {ref!r}; choose llava-tiny, a LLaVA checkpoint directory, or a hub id")


def _check_general(ref: str | None) -> None:
    if ref is None:
        return
    fmt, _, location = str(ref).partition(":")
    if fmt != "mmbench" or not location:
        raise SpecError(f"--general must be mmbench:FILE (an MMBench TSV with answers), got {ref!r}")
    path = Path(location).expanduser()
    if not path.is_file():
        raise SpecError(f"MMBench file {location} does not exist; give --general mmbench:FILE with a .tsv file")
    with path.open(encoding="utf-8", errors="replace") as stream:
        header = stream.readline().rstrip("\r\n").split("\t")
    if "answer" not in header:
        raise SpecError(f"{location} has no `answer` column (an MMBench test file); accuracy needs a file with "
                        "answers, such as the DEV split (MMBench_DEV_EN.tsv)")


def _people_pool(data: str, knowledge: str) -> int | None:
    """How many people the knowledge source offers in a built-in world (None for files: checked at run time)."""
    if data not in PEOPLE_WORLDS:
        return None
    from engine.data.people import WORLD_SIZES

    size = WORLD_SIZES[data]
    return size.pretrain_people if knowledge == "pretrained" else size.people - size.pretrain_people


def _whole(value, flag: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{flag} must be a whole number >= {minimum}, got {value!r}")
    return value


def validate_pulse(spec: dict) -> dict:
    """Normalise a PULSE spec (sequential deletion requests on an LMM) or raise SpecError with one line."""
    if not isinstance(spec, dict):
        raise SpecError("a run spec must be a JSON object")
    method = spec.get("method")
    if method not in PULSE_METHODS:
        raise SpecError(f"pulse runs one of: {', '.join(PULSE_METHODS)}; got {method!r}")
    info = METHODS[method]
    model, data = spec.get("model"), spec.get("data")
    if not isinstance(model, str) or not model:
        raise SpecError("pulse needs --model (llava-tiny, a LLaVA checkpoint directory or a hub id)")
    if not isinstance(data, str) or not data:
        raise SpecError("pulse needs --data (people, people-tiny or mllmu:DIR)")
    check_llava_model(model)
    if data not in PEOPLE_WORLDS:
        fmt, _, location = data.partition(":")
        if fmt != "mllmu" or not location:
            raise SpecError(f"unknown people data {data!r}; choose {', '.join(PEOPLE_WORLDS)} or mllmu:DIR")
        if not Path(location).expanduser().exists():
            raise SpecError(f"MLLMU-Bench path {location} does not exist; give mllmu:DIR with the downloaded folder")
    general = spec.get("general")
    _check_general(general)
    knowledge = spec.get("knowledge", "pretrained")
    if knowledge not in KNOWLEDGE_SOURCES:
        raise SpecError(f"--knowledge must be one of {', '.join(KNOWLEDGE_SOURCES)}; got {knowledge!r}")
    requests = _whole(spec.get("requests", 1), "--requests K")
    pool = _people_pool(data, knowledge)
    forget = spec.get("forget")
    if forget is None:
        forget = max(requests, (pool + 1) // 2) if pool is not None else None
    else:
        forget = _whole(forget, "--forget N")
    if pool is not None and forget > pool:
        raise SpecError(f"cannot forget {forget} people: {data} has {pool} {knowledge} people; "
                        f"choose --forget 1..{pool}" + (f" (and --requests K <= --forget)" if requests > 1 else ""))
    if forget is not None and requests > forget:
        raise SpecError(f"--requests K={requests} is larger than the {forget} forget people; "
                        f"choose K <= {forget} or a larger --forget N")
    device = spec.get("device", "auto")
    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", str(device)):
        raise SpecError(f"--device must be auto, cpu, cuda or cuda:N; got {device!r}")
    seed = spec.get("seed", DEFAULT_SEED)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SpecError(f"--seed must be a whole number, got {seed!r}")
    raw = dict(spec.get("params") or {})
    allowed = {p.name: p for p in COMMON_PARAMS + info.params + LMM_PARAMS}
    for name in raw:
        if name not in allowed:
            raise SpecError(f"pulse --method {method} has no parameter --{dash(name)}; it takes: "
                            + ", ".join("--" + dash(p) for p in allowed))
    params = {}
    for name, param in allowed.items():
        value = raw.get(name, PULSE_DEFAULT_PARAMS.get(name, param.default))
        params[name] = None if value is None else param.coerce(value, f"pulse {method}")
    return {
        "kind": "pulse",
        "method": method,
        "model": model,
        "data": data,
        "general": general,
        "knowledge": knowledge,
        "requests": requests,
        "forget": forget,
        "device": device,
        "seed": seed,
        "params": params,
        "name": spec.get("name"),
    }


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
