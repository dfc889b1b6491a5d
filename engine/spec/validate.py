"""Run-spec validation: a raw spec (from the CLI, the New-run form or a socket) becomes a normalised one,
or a SpecError that says in one line what is wrong and what would be right, and names its field."""
from __future__ import annotations

import json
import re
from pathlib import Path

from engine.errors import SpecError
from engine.spec.catalog import (
    DATA_FORMATS,
    DEFAULT_SEED,
    DELETION_STRATEGIES,
    DEVICES,
    FAMILIES,
    KNOWLEDGE_SOURCES,
    METHODS,
    MODELS,
    PEOPLE_SIZES,
    PEOPLE_WORLDS,
    PULSE_METHODS,
    SEQUENTIAL_METHODS,
    WORLDS,
    MethodInfo,
)
from engine.spec.params import COMMON_PARAMS, LMM_PARAMS, MAX_REQUESTS, REQUESTS, Param

PULSE_DEFAULT_PARAMS = {"batch_size": 8, "retain_batch_size": 8}


def method_info(name) -> MethodInfo:
    if name not in METHODS:
        raise SpecError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}", field="method")
    return METHODS[name]


def option_params(kind: str) -> list[Param]:
    """Every method hyperparameter a `run` ("run") or `pulse` ("pulse") spec takes, each name once, in
    declaration order: the common ones, then each method's (then the LMM ones for pulse)."""
    methods = [METHODS[m] for m in (PULSE_METHODS if kind == "pulse" else METHODS)]
    groups = [COMMON_PARAMS, *(m.params for m in methods)] + ([LMM_PARAMS] if kind == "pulse" else [])
    seen: dict[str, Param] = {}
    for group in groups:
        for param in group:
            seen.setdefault(param.name, param)
    return list(seen.values())


def param_owners(name: str) -> list[str]:
    """Titles of the methods that declare parameter `name` (empty for the common ones)."""
    return [m.title for m in METHODS.values() if any(p.name == name for p in m.params)]


def looks_like_hub_id(ref: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", ref))


def checkpoint_model_type(ref: str) -> str | None:
    """config.json's model_type of a checkpoint directory (None for a hub id: checked when loaded)."""
    path = Path(ref).expanduser()
    if not path.is_dir():
        return None
    try:
        return json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        raise SpecError(f"model directory {ref} has no readable config.json; point at a save_pretrained "
                        "checkpoint directory", field="model") from None


def model_family(ref: str) -> str | None:
    """The family of a registered model or checkpoint directory; None for a hub id (checked when loaded)."""
    if ref in MODELS:
        return MODELS[ref].family
    path = Path(ref).expanduser()
    if not path.is_dir() and looks_like_hub_id(ref) and not path.exists():
        return None
    if not path.is_dir():
        raise SpecError(f"unknown model {ref!r}; choose one of {', '.join(MODELS)}, a checkpoint directory, "
                        "or a hub id", field="model")
    model_type = checkpoint_model_type(ref)
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family.name
    known = sorted(t for f in FAMILIES.values() for t in f.model_types)
    raise SpecError(f"model directory {ref} holds a {model_type!r} checkpoint; the workbench loads "
                    f"{', '.join(known)} checkpoints", field="model")


def check_model_serves(ref: str, task: str, command: str) -> None:
    family = model_family(ref)
    if family is not None and task not in FAMILIES[family].tasks:
        fits = [m.name for m in MODELS.values() if task in FAMILIES[m.family].tasks]
        raise SpecError(f"model {ref!r} is a {family} model, which does not serve {task.replace('_', '-')}; "
                        f"{command} needs one of {', '.join(fits)} (or a checkpoint of their families)", field="model")


def check_data(ref) -> None:
    if not isinstance(ref, str) or not ref:
        raise SpecError("a run needs --data (see `mmul-workbench data list`)", field="data")
    if ref in WORLDS:
        return
    if ":" in ref:
        fmt, _, location = ref.partition(":")
        if fmt not in DATA_FORMATS or DATA_FORMATS[fmt].kind != "retrieval":
            raise SpecError(f"unknown data format {fmt!r}; choose one of: "
                            f"{', '.join(d.name for d in DATA_FORMATS.values() if d.kind == 'retrieval')} "
                            "(as FORMAT:PATH)", field="data")
        if not Path(location).expanduser().exists():
            raise SpecError(f"data path {location} does not exist; give FORMAT:PATH with an existing directory",
                            field="data")
        return
    hint = " (people worlds go to `mmul-workbench pulse`)" if ref in PEOPLE_WORLDS else ""
    raise SpecError(f"unknown data {ref!r}; choose a built-in world ({', '.join(WORLDS)}) or FORMAT:PATH{hint}",
                    field="data")


def check_seed(value, flag: str = "--seed") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"{flag} must be a whole number >= 0, got {value!r}", field="seed")
    return value


def check_device(device) -> str:
    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", str(device)):
        raise SpecError(f"--device must be auto, cpu, cuda or cuda:N; got {device!r}", field="device")
    return device


def check_deletion(deletion: dict) -> dict:
    def bad(message: str) -> SpecError:
        return SpecError(message, field="deletion")

    strategy = deletion.get("strategy")
    if strategy not in DELETION_STRATEGIES:
        raise bad("choose a deletion set: --delete N, --delete-ids FILE or --delete-query TEXT")
    n = deletion.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
        raise bad(f"--delete N must be a positive whole number of units, got {n!r}")
    if strategy == "random" and n is None:
        raise bad("--delete N needs N, the number of units to delete")
    if strategy == "ids":
        file = deletion.get("file")
        if not file or not Path(file).expanduser().is_file():
            raise bad(f"deletion ID file {file} does not exist; give a file with one unit id per line")
    if strategy == "query" and not str(deletion.get("query") or "").strip():
        raise bad("--delete-query needs a non-empty text to match captions against")
    return {**deletion, "seed": check_seed(deletion.get("seed", DEFAULT_SEED))}


def check_requests(value, method: str, upper: int | None = None) -> int:
    requests = REQUESTS.coerce(value if value is not None else REQUESTS.default, method)
    if requests > MAX_REQUESTS:
        raise SpecError(f"--requests K={requests} is more than {MAX_REQUESTS}; choose 1..{MAX_REQUESTS}",
                        field="requests")
    if requests > 1 and method not in SEQUENTIAL_METHODS:
        raise SpecError(f"--requests K needs a method that starts from the model before each request "
                        f"({', '.join(SEQUENTIAL_METHODS)}); {method} retrains from scratch, use K=1",
                        field="requests")
    if upper is not None and requests > upper:
        raise SpecError(f"--requests K={requests} is larger than the {upper} units to forget; choose K <= {upper}",
                        field="requests")
    return requests


def check_params(raw: dict, allowed: tuple[Param, ...], owner: str, defaults: dict | None = None) -> dict:
    table = {p.name: p for p in allowed}
    for name in raw:
        if name not in table:
            raise SpecError(f"{owner} has no parameter {Param(name, str, None, '').flag}; it takes: "
                            + ", ".join(p.flag for p in allowed), field=name)
    params = {}
    for name, param in table.items():
        value = raw.get(name, (defaults or {}).get(name, param.default))
        params[name] = None if value is None else param.coerce(value, owner)
    return params


def validate(spec: dict) -> dict:
    """Normalise a run spec (fill defaults, coerce types) or raise SpecError with one line."""
    if not isinstance(spec, dict):
        raise SpecError("a run spec must be a JSON object")
    info = method_info(spec.get("method"))
    model, data = spec.get("model"), spec.get("data")
    if not isinstance(model, str) or not model:
        raise SpecError("a run needs --model (see `mmul-workbench models`)", field="model")
    check_data(data)
    check_model_serves(model, "retrieval", "run")
    deletion = check_deletion(dict(spec.get("deletion") or {}))
    n = deletion.get("n")
    return {
        "kind": "run",
        "method": info.name,
        "model": model,
        "data": data,
        "device": check_device(spec.get("device", "auto")),
        "seed": check_seed(spec.get("seed", DEFAULT_SEED)),
        "deletion": deletion,
        "requests": check_requests(spec.get("requests"), info.name, upper=n),
        "params": check_params(dict(spec.get("params") or {}), COMMON_PARAMS + info.params, f"method {info.name}"),
        "name": spec.get("name"),
    }


# --- PULSE: sequential deletion requests of people on an LMM ----------------------------------------
def check_general(ref: str | None) -> None:
    if ref is None:
        return
    fmt, _, location = str(ref).partition(":")
    if fmt != "mmbench" or not location:
        raise SpecError(f"--general must be mmbench:FILE (an MMBench TSV with answers), got {ref!r}", field="general")
    path = Path(location).expanduser()
    if not path.is_file():
        raise SpecError(f"MMBench file {location} does not exist; give --general mmbench:FILE with a .tsv file",
                        field="general")
    with path.open(encoding="utf-8", errors="replace") as stream:
        header = stream.readline().rstrip("\r\n").split("\t")
    if "answer" not in header:
        raise SpecError(f"{location} has no `answer` column (an MMBench test file); accuracy needs a file with "
                        "answers, such as the DEV split (MMBench_DEV_EN.tsv)", field="general")


def people_pool(data: str, knowledge: str) -> int | None:
    """How many people the knowledge source offers in a built-in world (None for files: checked at run time)."""
    if data not in PEOPLE_WORLDS:
        return None
    size = PEOPLE_SIZES[data]
    return size.pretrain_people if knowledge == "pretrained" else size.people - size.pretrain_people


def check_people_data(data) -> None:
    if not isinstance(data, str) or not data:
        raise SpecError("pulse needs --data (people, people-tiny or mllmu:DIR)", field="data")
    if data in PEOPLE_WORLDS:
        return
    fmt, _, location = data.partition(":")
    if fmt != "mllmu" or not location:
        raise SpecError(f"unknown people data {data!r}; choose {', '.join(PEOPLE_WORLDS)} or mllmu:DIR", field="data")
    if not Path(location).expanduser().exists():
        raise SpecError(f"MLLMU-Bench path {location} does not exist; give mllmu:DIR with the downloaded folder",
                        field="data")


def validate_pulse(spec: dict) -> dict:
    """Normalise a PULSE spec (sequential deletion requests on an LMM) or raise SpecError with one line."""
    if not isinstance(spec, dict):
        raise SpecError("a run spec must be a JSON object")
    method = spec.get("method")
    if method not in PULSE_METHODS:
        raise SpecError(f"pulse runs one of: {', '.join(PULSE_METHODS)}; got {method!r}", field="method")
    model, data = spec.get("model"), spec.get("data")
    if not isinstance(model, str) or not model:
        raise SpecError("pulse needs --model (llava-tiny, a LLaVA checkpoint directory or a hub id)", field="model")
    check_model_serves(model, "multiple_choice", "pulse")
    check_people_data(data)
    general = spec.get("general")
    check_general(general)
    knowledge = spec.get("knowledge", "pretrained")
    if knowledge not in KNOWLEDGE_SOURCES:
        raise SpecError(f"--knowledge must be one of {', '.join(KNOWLEDGE_SOURCES)}; got {knowledge!r}",
                        field="knowledge")
    requests = check_requests(spec.get("requests"), method)
    pool = people_pool(data, knowledge)
    forget = spec.get("forget")
    if forget is None:
        forget = max(requests, (pool + 1) // 2) if pool is not None else None
    elif isinstance(forget, bool) or not isinstance(forget, int) or forget < 1:
        raise SpecError(f"--forget N must be a whole number >= 1, got {forget!r}", field="forget")
    if pool is not None and forget > pool:
        raise SpecError(f"cannot forget {forget} people: {data} has {pool} {knowledge} people; "
                        f"choose --forget 1..{pool}" + (" (and --requests K <= --forget)" if requests > 1 else ""),
                        field="forget")
    if forget is not None and requests > forget:
        raise SpecError(f"--requests K={requests} is larger than the {forget} forget people; "
                        f"choose K <= {forget} or a larger --forget N", field="requests")
    return {
        "kind": "pulse",
        "method": method,
        "model": model,
        "data": data,
        "general": general,
        "knowledge": knowledge,
        "requests": requests,
        "forget": forget,
        "device": check_device(spec.get("device", "auto")),
        "seed": check_seed(spec.get("seed", DEFAULT_SEED)),
        "params": check_params(dict(spec.get("params") or {}), COMMON_PARAMS + METHODS[method].params + LMM_PARAMS,
                               f"pulse --method {method}", PULSE_DEFAULT_PARAMS),
        "name": spec.get("name"),
    }
