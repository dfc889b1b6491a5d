"""Run-spec validation: a raw spec (from the CLI, the New-run form or a socket) becomes a normalised one,
or a SpecError that says in one line what is wrong and what would be right, and names its field."""
from __future__ import annotations

import re
from pathlib import Path

from engine.errors import SpecError, reading_inputs
from engine.spec.catalog import (
    CAPABILITIES,
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
    RUN_TASKS,
    SEQUENTIAL_METHODS,
    TASKS,
    WORLDS,
    MethodInfo,
    data_info,
)
from engine.spec.checkpoints import config_model_type, family_of, known_model_types
from engine.spec.guards import check_guards
from engine.spec.lineage import read_lineage, saw, trained_on_data_message
from engine.spec.placement import check_placement
from engine.spec.catalog import not_there
from engine.spec.inputs import (
    MAX_SEED,
    MAX_UNITS,
    check_name,
    check_object,
    check_whole,
    checkpoint_problem,
    require_absolute,
)
from engine.spec.params import (COMMON_PARAMS, COMPILE, EVAL_EVERY_REQUESTS, EVAL_SAMPLE, GRANULARITY, LMM_PARAMS,
                                 MAX_REQUESTS, NOT_ON_PEOPLE, REQUESTS, TUNE_AGAINST, Param)

PULSE_DEFAULT_PARAMS = {"batch_size": 8, "retain_batch_size": 8}
# The released MultiDelete's Df batch on NLVR2 (ANCHORS.md s. 1: 16, 8 for NLVR2), for NLVR2 files; the built-in
# shapes-nlvr2 worlds keep the common 16 their recipes were set with
FORMAT_DEFAULT_PARAMS = {"nlvr2": {"batch_size": 8}}


def format_default_params(data: str) -> dict:
    """The parameter defaults a run on `data` takes in place of the common ones (NLVR2 files: Df batch 8)."""
    return FORMAT_DEFAULT_PARAMS.get(data.partition(":")[0], {}) if ":" in data else {}
MAX_RESUME_MINUTES = 7 * 24 * 60.0  # --resume-every: a week at most
DEFAULT_RESUME_MINUTES = 10.0


def resume_minutes(spec: dict) -> float | None:
    """Minutes between a run's resume points (0: after every request), or None when it writes none: --resume-every
    off, a single request, or a --devices N run, whose ranks hold the model between them. What the engine writes
    by (engine/protocols/resume.py Cadence) and what the TUI's cancel dialog and a stopped run's line say."""
    given = spec.get("resume_every", DEFAULT_RESUME_MINUTES)
    if given == "off" or (spec.get("requests") or 1) < 2 or (spec.get("devices") or 1) > 1:
        return None
    return float(given)


def canonical_method(name: str) -> str:
    """The catalogue name of method `name` (an alias maps to its method: `kl_min` is `ga_klr`); else `name`."""
    return next((info.name for info in METHODS.values() if name in info.aliases), name)


def method_info(name) -> MethodInfo:
    if not isinstance(name, str) or canonical_method(name) not in METHODS:
        raise SpecError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}", field="method")
    return METHODS[canonical_method(name)]


def check_method_fits(info: MethodInfo, task: str, family: str | None) -> None:
    """Refuse, in one line naming `method`, a method whose required capabilities (CAPABILITIES) neither the
    task nor the model family provides. A family of None (a hub id) is checked when the model loads."""
    for need in info.requires:
        provider, what = CAPABILITIES[need]
        if provider == "task" and need not in TASKS[task].provides:
            fits = [t for t, row in TASKS.items() if need in row.provides]
            raise SpecError(f"{info.name} needs {what}, which the {task.replace('_', '-')} task does not provide; "
                            f"it runs on {', '.join(f.replace('_', '-') for f in fits)} data", field="method")
        if provider == "family" and family is not None and need not in FAMILIES[family].provides:
            fits = [m.name for m in MODELS.values() if need in FAMILIES[m.family].provides]
            raise SpecError(f"{info.name} needs {what}, which {family} models do not provide; it runs on "
                            f"{', '.join(fits)} (or a checkpoint of their families)", field="method")


def check_pair_score(params: dict, task: str, family: str | None) -> None:
    """`--pair-score` other than auto: a retrieval run on a family with that head (a hub id: checked when
    the model loads)."""
    chosen = params.get("pair_score", "auto")
    if chosen == "auto":
        return
    if task != "retrieval":
        raise SpecError(f"--pair-score {chosen} applies to retrieval runs (the head that scores an image-text "
                        f"pair); leave it at auto for {task.replace('_', '-')}", field="pair_score")
    heads = FAMILIES[family].pair_scores if family is not None else (chosen,)
    if chosen not in heads:
        raise SpecError(f"--pair-score {chosen}: {family} models score a pair by {' or '.join(heads)}; choose auto "
                        f"or {', '.join(heads)}", field="pair_score")


def check_k_test(params: dict, task: str, family: str | None) -> None:
    """`--k-test N`: a retrieval run on a family with an ITM head to re-rank by (a hub id: checked when the
    model loads)."""
    chosen = params.get("k_test")
    if chosen is None:
        return
    if task != "retrieval":
        raise SpecError(f"--k-test {chosen} applies to retrieval runs (ITM re-ranking of a gallery's top "
                        f"candidates); drop it for {task.replace('_', '-')}", field="k_test")
    if family is not None and "itm" not in FAMILIES[family].pair_scores:
        rerankers = [name for name, row in FAMILIES.items() if "itm" in row.pair_scores]
        raise SpecError(f"--k-test {chosen}: {family} models have no ITM head to re-rank by; drop --k-test, or "
                        f"use a {' or '.join(rerankers)} model", field="k_test")


def option_params(kind: str) -> list[Param]:
    """Every method hyperparameter a `run` ("run") or `pulse` ("pulse") spec takes, each name once, in
    declaration order: the common ones, then each method's (then the LMM ones for pulse; not NOT_ON_PEOPLE)."""
    methods = [METHODS[m] for m in (PULSE_METHODS if kind == "pulse" else METHODS)]
    groups = [COMMON_PARAMS, *(m.params for m in methods)] + ([LMM_PARAMS] if kind == "pulse" else [])
    seen: dict[str, Param] = {}
    for group in groups:
        for param in group:
            if not (kind == "pulse" and param.name in NOT_ON_PEOPLE):
                seen.setdefault(param.name, param)
    return list(seen.values())


def param_owners(name: str) -> list[str]:
    """Titles of the methods that declare parameter `name` (empty for the common ones)."""
    return [m.title for m in METHODS.values() if any(p.name == name for p in m.params)]


def looks_like_hub_id(ref: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", ref))


def model_family(ref: str, complete: bool = True, field: str = "model") -> str | None:
    """The family of a registered model or checkpoint directory; None for a hub id (checked when loaded).
    With `complete`, a checkpoint directory must also hold its weights and processor files. `field` names the
    option in the messages (`model`, or `original` for --original)."""
    what = "model" if field == "model" else f"--{field}"
    choices = (f"choose one of {', '.join(MODELS)}, a checkpoint directory (its path), or a hub id"
               if field == "model" else "give a checkpoint directory or a hub id")
    if ref in MODELS:
        return MODELS[ref].family
    path = Path(ref)
    if not path.is_absolute() and looks_like_hub_id(ref):
        return None  # a hub id: never resolved against the engine's directory, checked when loaded
    if not path.is_absolute():
        raise SpecError(f"unknown {what} {ref!r}; {choices}", field=field)
    if not path.is_dir():
        raise SpecError(f"{what} directory {ref} {not_there(path, folder=True)}; {choices}", field=field)
    try:
        model_type = config_model_type(path)
    except SpecError:
        model_type = None
    if model_type is None:
        raise SpecError(f"{what} directory {ref} has no readable config.json; point at a save_pretrained "
                        "checkpoint directory", field=field)
    family = family_of(model_type)
    if family is not None:
        problem = complete and checkpoint_problem(path, images=family.media == "image")
        if problem:
            raise SpecError(f"{what} directory {ref} is not a complete checkpoint: {problem}; point at a "
                            "directory written by save_pretrained (model and processor)", field=field)
        return family.name
    shown = model_type if re.fullmatch(r"[\w.-]{1,40}", model_type) else "unknown"
    raise SpecError(f"{what} directory {ref} holds a {shown!r} checkpoint; the workbench loads "
                    f"{known_model_types()} checkpoints", field=field)


def check_base_and_original(model: str, original, data: str, model_is_original: bool = False) -> dict:
    """The spec's `original` field ({} without --original) after the deployed/base checks of ANCHORS.md
    section 5: `--original` is a checkpoint directory or hub id of the same family as `--model`, and `--model`
    (the base, which Retrain trains on Dr) never saw `data` (engine/spec/lineage.py). Where the protocol makes
    `--model` the original itself (`pulse --knowledge pretrained` on a checkpoint: its pretrained knowledge is
    what is unlearned), it is not a base and may have seen the data."""
    entry = None if model_is_original else saw(read_lineage(model), data_ref=data)
    if entry is not None:
        raise SpecError(trained_on_data_message(model, data), field="model")
    if original is None:
        return {}
    if not isinstance(original, str) or not original:
        raise SpecError("--original needs a checkpoint directory or a hub id (the deployed model)", field="original")
    if original in MODELS:
        raise SpecError(f"--original {original} is a registered starting model, not a trained one; give the "
                        "deployed checkpoint's directory (or drop --original to train the original from --model)",
                        field="original")
    family, base_family = model_family(original, field="original"), model_family(model, complete=False)
    if family is not None and base_family is not None and family != base_family:
        raise SpecError(f"--original {original} is a {family} model but --model {model} is a {base_family} model; "
                        "the deployed model and its base must be of one family", field="original")
    return {"original": original}


def check_model_serves(ref: str, task: str, command: str) -> None:
    # the wrong family is the more useful complaint, so it is checked before the checkpoint's completeness
    family = model_family(ref, complete=False)
    if family is not None and task not in FAMILIES[family].tasks:
        fits = [m.name for m in MODELS.values() if task in FAMILIES[m.family].tasks]
        raise SpecError(f"model {ref!r} is a {family} model, which does not serve {task.replace('_', '-')}; "
                        f"{command} needs one of {', '.join(fits)} (or a checkpoint of their families)", field="model")
    model_family(ref)


def check_data(ref) -> None:
    if not isinstance(ref, str) or not ref:
        raise SpecError("a run needs --data (see `mmul-workbench data list`)", field="data")
    if ref in WORLDS:
        return
    if ":" in ref:
        fmt, _, location = ref.partition(":")
        if fmt in DATA_FORMATS and DATA_FORMATS[fmt].kind not in RUN_TASKS:  # people data, general questions
            raise SpecError(DATA_FORMATS[fmt].elsewhere(), field="data")
        if fmt not in DATA_FORMATS:
            raise SpecError(f"unknown data format {fmt!r}; choose one of: "
                            f"{', '.join(d.name for d in DATA_FORMATS.values() if d.kind in RUN_TASKS)} "
                            "(as FORMAT:PATH)", field="data")
        if location:
            require_absolute(location, "data", "data path")
        if (problem := DATA_FORMATS[fmt].path_problem(location)) is not None:
            raise SpecError(problem, field="data")
        return
    if ref in PEOPLE_WORLDS:  # reached only where people data is not taken: the engine, a study
        raise SpecError(f"--data {ref} is people data, which `mmul-workbench pulse` (or `run` without --engine) runs; "
                        f"here choose a built-in world ({', '.join(WORLDS)}) or FORMAT:PATH", field="data")
    raise SpecError(f"unknown data {ref!r}; choose a built-in world ({', '.join(WORLDS)}) or FORMAT:PATH (people "
                    f"worlds, {', '.join(PEOPLE_WORLDS)}, run with `pulse`, or `run` without --engine)", field="data")


def check_task(data: str, task) -> str:
    """The task a run does on `data`: its default (`kind`), or `task` where the data serves several."""
    info = data_info(data)
    if task is None:
        return info.kind
    if task not in info.tasks:
        raise SpecError(f"--task {task} does not fit {data}, which serves {', '.join(info.tasks)}", field="task")
    return task


def check_media(model: str, data: str, task: str) -> None:
    """A model reads the data's units: images for the image-text families, graphs for GCN+BERT."""
    family, media = model_family(model, complete=False), data_info(data).media
    if family is not None and FAMILIES[family].media != media:
        fits = [m.name for m in MODELS.values() if FAMILIES[m.family].media == media and task in FAMILIES[m.family].tasks]
        raise SpecError(f"model {model!r} reads {FAMILIES[family].media}s and text, but {data} holds {media}s; "
                        f"choose {', '.join(fits)} (or a checkpoint of their families)", field="model")


def check_seed(value, flag: str = "--seed") -> int:
    return check_whole(value, flag, "seed", 0, MAX_SEED)


def check_device(device) -> str:
    """auto, cpu, cuda or cuda:N (N written plainly: cuda:01 is cuda:1). Whether this machine has the
    device is checked by the engine (engine/devices.py), which knows its devices."""
    match = re.fullmatch(r"cuda:(\d{1,4})", device) if isinstance(device, str) else None
    if match:
        return f"cuda:{int(match.group(1))}"
    if not isinstance(device, str) or device not in DEVICES:
        shown = repr(device) if len(repr(device)) <= 24 else repr(device)[:21] + "..."
        raise SpecError(f"--device must be auto, cpu, cuda or cuda:N; got {shown}", field="device")
    return device


def check_deletion(deletion) -> dict:
    def bad(message: str) -> SpecError:
        return SpecError(message, field="deletion")

    deletion = check_object(deletion, "deletion", "the deletion set (deletion)")
    strategy = deletion.get("strategy")
    if not isinstance(strategy, str) or strategy not in DELETION_STRATEGIES:
        raise bad("choose a deletion set: --delete N, --delete-ids FILE or --delete-query TEXT")
    n = deletion.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_UNITS):
        shown = repr(n) if len(repr(n)) <= 24 else repr(n)[:21] + "..."
        raise bad(f"--delete N must be a positive whole number of units (at most {MAX_UNITS}), got {shown}")
    if strategy == "random" and n is None:
        raise bad("--delete N needs N, the number of units to delete")
    if strategy == "ids":
        file = deletion.get("file")
        if not isinstance(file, str) or not file or not require_absolute(file, "deletion", "deletion ID file").is_file():
            path = Path(file) if isinstance(file, str) and file else None
            what = ("is a directory" if path is not None and path.is_dir() else
                    # a pipe (/dev/stdin, <(...)): the run, or the engine, reads the file again later
                    "is not a regular file (a pipe or a device)" if path is not None and path.exists()
                    else not_there(path, folder=False) if path is not None else "does not exist")
            raise bad(f"deletion ID file {file} {what}; give a file with one unit id per line")
    if strategy == "query" and (not isinstance(deletion.get("query"), str) or not deletion["query"].strip()):
        raise bad("--delete-query needs a non-empty text to match captions against")
    granularity = GRANULARITY.coerce(deletion.get("granularity", GRANULARITY.default), "the deletion set")
    checked = {key: value for key, value in deletion.items() if key != "granularity"}
    checked["seed"] = check_seed(deletion.get("seed", DEFAULT_SEED))
    return checked | ({"granularity": granularity} if granularity != GRANULARITY.default else {})


def no_facts(data: str) -> SpecError:
    """Fact granularity on data without injected facts (real files): one line naming what it supports."""
    return SpecError(f"--granularity fact: {data} has no facts (only the built-in worlds inject them); it supports "
                     "--granularity unit", field="granularity")


def check_fact_granularity(deletion: dict, data: str, params: dict, task: str | None = None) -> None:
    if deletion.get("granularity") != "fact":
        return
    if data not in WORLDS and data not in PEOPLE_WORLDS:
        raise no_facts(data)
    if data in WORLDS and data.startswith("graph") and task == "classification":
        # measured: Retrain's Df accuracy 100.0, the original's too, every holdout 100.0 (a review)
        raise SpecError(f"--granularity fact on {data} classification: a graph's class is read from the graph, which "
                        "stays in Dr with its other texts, so no method can forget the mark's statement there; use "
                        "--task retrieval (the statements are what it matches) or --granularity unit",
                        field="granularity")
    if params.get("tune"):
        raise SpecError("--tune picks on a validation deletion set of whole training units outside Df, not of "
                        "facts; drop --tune or use --granularity unit", field="tune")


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


def check_schedule(spec: dict, requests: int, owner: str) -> dict:
    """--eval-every-requests and --eval-sample, recorded only with K > 1 (a single request is evaluated fully)."""
    given = {p.name: p.coerce(spec[p.name], owner) for p in (EVAL_EVERY_REQUESTS, EVAL_SAMPLE)
             if spec.get(p.name) is not None}
    if requests == 1:
        for name in ("resume_every", "resumes"):
            if spec.get(name) is not None:
                raise SpecError(f"{'--resume-every' if name == 'resume_every' else name} applies to a run of K > 1 "
                                "requests (a resume point falls between two requests); this one has a single request",
                                field=name)
        return {}
    every = given.get(EVAL_EVERY_REQUESTS.name, EVAL_EVERY_REQUESTS.default)
    if every > requests:
        raise SpecError(f"--eval-every-requests N={every} is more than the {requests} requests: only the last would "
                        f"be evaluated in full; choose N <= {requests}", field=EVAL_EVERY_REQUESTS.name)
    # a value equal to its default is taken (a validated spec, sent again to the engine, carries the default)
    if every == 1 and given.get(EVAL_SAMPLE.name, EVAL_SAMPLE.default) != EVAL_SAMPLE.default:
        raise SpecError("--eval-sample applies between full evaluations, and with --eval-every-requests 1 (the "
                        "default) every request is evaluated in full: add --eval-every-requests N > 1 or drop "
                        "--eval-sample", field=EVAL_SAMPLE.name)
    return {**{p.name: given.get(p.name, p.default) for p in (EVAL_EVERY_REQUESTS, EVAL_SAMPLE)},
            **check_resume_fields(spec)}


def check_resume_fields(spec: dict) -> dict:
    """`resume_every` (minutes between resume points, 0: after every request, "off"; recorded only when given)
    and `resumes` (the session whose resume point this run goes on from: engine/protocols/resume.py)."""
    fields = {}
    every = spec.get("resume_every")
    if every is not None:
        if every != "off" and (isinstance(every, bool) or not isinstance(every, (int, float))
                               or not 0 <= every <= MAX_RESUME_MINUTES):
            raise SpecError(f"--resume-every {every!r}: give minutes between resume points, 0..{MAX_RESUME_MINUTES:g} "
                            "(0: after every request), or off", field="resume_every")
        fields["resume_every"] = every if every == "off" else float(every)
        devices = spec.get("devices", 1)
        if every != "off" and isinstance(devices, int) and not isinstance(devices, bool) and devices > 1:
            # its ranks hold the model between them (engine/protocols/resume.py Cadence): it was accepted and
            # wrote none, and a crash found nothing to go on from
            raise SpecError(f"--resume-every {every:g}: a --devices {devices} run writes no resume points (its ranks "
                            "hold the model between them); drop --resume-every, or run on one device to have them",
                            field="resume_every")
    resumes = spec.get("resumes")
    if resumes is not None:
        if (not isinstance(resumes, dict) or not isinstance(resumes.get("session"), str)
                or set(resumes) - {"session", "request", "unusable"}
                or not isinstance(resumes.get("request", 0), int) or isinstance(resumes.get("request"), bool)
                or not isinstance(resumes.get("unusable", []), list)
                or not all(isinstance(problem, str) for problem in resumes.get("unusable", []))):
            raise SpecError("resumes must be {\"session\": ID} (the session whose resume point the run goes on from)",
                            field="resumes")
        fields["resumes"] = dict(resumes)
    return fields


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


def check_compile(raw_params: dict, owner: str) -> tuple[dict, bool]:
    """The params without ``compile``, and whether --compile is on (recorded in params only when it is)."""
    given = {name: value for name, value in raw_params.items() if name != COMPILE.name}
    return given, bool(COMPILE.coerce(raw_params.get(COMPILE.name, COMPILE.default), owner))


def check_tune_against(raw_params: dict, owner: str) -> tuple[dict, bool]:
    """The params without ``tune_against``, and whether --tune is to come closest to a validation Retrain
    (recorded in params only then: `study --tune` with Retrain sets it)."""
    given = {name: value for name, value in raw_params.items() if name != TUNE_AGAINST.name}
    return given, TUNE_AGAINST.coerce(raw_params.get(TUNE_AGAINST.name, TUNE_AGAINST.default), owner) == "retrain"


def check_strategy_fits(info: MethodInfo, placement: dict) -> None:
    """A method that cannot train on FSDP's shards is refused with --strategy fsdp, naming why."""
    if placement.get("strategy") == "fsdp" and info.unshardable:
        raise SpecError(f"--strategy fsdp cannot run {info.name}: {info.unshardable}; use --strategy ddp",
                        field="strategy")


def check_budget(params: dict, method: str) -> None:
    """A matched budget sets the steps (or seconds) itself, and Retrain (the reference) keeps the original's
    recipe."""
    if params.get("budget_seconds") is not None and params.get("budget") != "matched-time":
        raise SpecError("--budget-seconds applies to --budget matched-time; add it, or drop --budget-seconds",
                        field="budget_seconds")
    if params.get("budget") == "default":
        return
    if method == "retrain":
        raise SpecError("Retrain is the reference: it trains with the original's recipe; --budget applies to the "
                        "unlearning methods", field="budget")
    if params.get("epochs") is not None:
        raise SpecError(f"--epochs and --budget {params['budget']} both set the steps; give one of them",
                        field="epochs")


def check_given_options_apply(spec: dict, given: dict, normal: dict, info: MethodInfo) -> None:
    """An option that the rest of the spec makes a no-op is refused, not silently dropped: --keep-tolerance and
    --target-auc without --keep best, --eval-every-requests and --eval-sample with one request, --epochs on a
    method with its own step count, LoRA's shape under --update full, --retain-batch-size on Retrain (which trains in
    the recipe's batches). `given`: the raw params. A value equal to
    its default is taken (the New-run form sends every field it shows, as text)."""
    schedule = (EVAL_EVERY_REQUESTS, EVAL_SAMPLE)
    defaults = {p.name: p.default for p in (*COMMON_PARAMS, *LMM_PARAMS, *schedule)}
    coerced = {**normal["params"], **{p.name: p.coerce(spec[p.name], f"method {info.name}") for p in schedule
                                      if spec.get(p.name) is not None}}
    named = set(given) | {p.name for p in schedule if spec.get(p.name) is not None}
    changed = {name for name in named if coerced.get(name) is not None and coerced.get(name) != defaults.get(name)}
    if normal["params"].get("keep") != "best":
        for name in sorted(changed & {"keep_tolerance", "target_auc"}):
            raise SpecError(f"--{name.replace('_', '-')} applies to --keep best; add --keep best, or drop it",
                            field=name)
    if normal["requests"] == 1:
        for name in sorted(changed & {EVAL_EVERY_REQUESTS.name, EVAL_SAMPLE.name}):
            raise SpecError(f"--{name.replace('_', '-')} applies to --requests K > 1 (one request is evaluated "
                            "fully); add --requests, or drop it", field=name)
    if coerced.get("update") == "full":
        for name in sorted(changed & {"lora_r", "lora_alpha", "lora_dropout"}):
            raise SpecError(f"--{name.replace('_', '-')} shapes the LoRA adapter of --update llm or proj+llm; "
                            "--update full trains the weights themselves: drop it, or choose an adapter", field=name)
    if info.name == "retrain" and "retain_batch_size" in changed:
        raise SpecError("Retrain trains on Dr in the original's recipe batches (its --lr and --epochs may be given); "
                        "--retain-batch-size sets the unlearning methods' Dr batch: drop it", field="retain_batch_size")
    if info.fixed_steps is not None and "epochs" in changed and coerced["epochs"] != info.fixed_steps:
        raise SpecError(f"{info.title} takes {info.fixed_steps} step(s) whatever --epochs says (its released "
                        "setting); drop --epochs (--budget matched-steps gives it MultiDelete's steps)", field="epochs")


def check_tune(params: dict, method: str, people: bool = False) -> None:
    """--tune picks lr and epochs itself, on a validation split that people data does not have."""
    if not params.get("tune"):
        return
    if people:
        raise SpecError("--tune needs data with a validation split; people data has none (give --lr and --epochs)",
                        field="tune")
    if method == "retrain":
        raise SpecError("Retrain is the reference: it trains with the original's recipe; --tune applies to the "
                        "unlearning methods", field="tune")
    for name in ("lr", "epochs"):
        if params.get(name) is not None:
            raise SpecError(f"--tune picks --{name} itself; drop --{name}, or drop --tune", field=name)


@reading_inputs
def validate(spec: dict) -> dict:
    """Normalise a run spec (fill defaults, coerce types) or raise SpecError with one line."""
    if not isinstance(spec, dict):
        raise SpecError("a run spec must be a JSON object")
    info = method_info(spec.get("method"))
    model, data = spec.get("model"), spec.get("data")
    if not isinstance(model, str) or not model:
        raise SpecError("a run needs --model (see `mmul-workbench models`)", field="model")
    check_data(data)
    task = check_task(data, spec.get("task"))
    check_media(model, data, task)
    check_model_serves(model, task, "run")
    check_method_fits(info, task, model_family(model))
    deletion = check_deletion(spec.get("deletion"))
    n = deletion.get("n")
    raw_params, compiling = check_compile(check_object(spec.get("params"), "params", "method parameters (params)"),
                                          f"method {info.name}")
    raw_params, against_retrain = check_tune_against(raw_params, f"method {info.name}")
    normal = {
        "kind": "run",
        "method": info.name,
        "model": model,
        "data": data,
        "task": task,
        "device": check_device(spec.get("device", "auto")),
        "seed": check_seed(spec.get("seed", DEFAULT_SEED)),
        "deletion": deletion,
        "requests": check_requests(spec.get("requests"), info.name, upper=n),
        **check_schedule(spec, check_requests(spec.get("requests"), info.name, upper=n), f"method {info.name}"),
        "params": check_params(raw_params, COMMON_PARAMS + info.params, f"method {info.name}",
                               format_default_params(data)),
        "name": check_name(spec.get("name")),
        **check_placement(spec),
        **check_base_and_original(model, spec.get("original"), data),
    }
    if compiling:
        normal["params"][COMPILE.name] = True
    if against_retrain:
        if not normal["params"]["tune"]:
            raise SpecError("tune_against retrain is --tune's criterion; it needs --tune", field="tune")
        normal["params"][TUNE_AGAINST.name] = "retrain"
    check_strategy_fits(info, normal)
    check_given_options_apply(spec, raw_params, normal, info)
    check_guards(normal["params"], task)
    check_budget(normal["params"], info.name)
    check_tune(normal["params"], info.name)
    check_fact_granularity(deletion, data, normal["params"], task)
    check_pair_score(normal["params"], task, model_family(model))
    check_k_test(normal["params"], task, model_family(model))
    return normal


# --- PULSE: sequential deletion requests of people on an LMM ----------------------------------------
def check_general(ref: str | None) -> None:
    if ref is None:
        return
    fmt, _, location = str(ref).partition(":")
    if fmt != "mmbench" or not location:
        raise SpecError(f"--general must be mmbench:FILE (an MMBench TSV with answers), got {ref!r}", field="general")
    path = require_absolute(location, "general", "MMBench file")
    if not path.is_file():
        raise SpecError(f"MMBench file {location} {not_there(path, folder=False)}; give --general mmbench:FILE with "
                        "a .tsv file", field="general")
    with path.open(encoding="utf-8", errors="replace") as stream:
        first = stream.readline()
    if not first.strip():   # it read as "no `answer` column (an MMBench test file)"
        raise SpecError(f"MMBench file {location} is empty (no header line); give --general mmbench:FILE with an "
                        "MMBench TSV with answers, such as the DEV split (MMBench_DEV_EN.tsv)", field="general")
    header = first.rstrip("\r\n").split("\t")
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
        raise SpecError(f"pulse needs --data ({', '.join(PEOPLE_WORLDS)} or mllmu:DIR)", field="data")
    if data in PEOPLE_WORLDS:
        return
    fmt, _, location = data.partition(":")
    if fmt != "mllmu" or not location:
        raise SpecError(f"unknown people data {data!r}; choose {', '.join(PEOPLE_WORLDS)} or mllmu:DIR", field="data")
    if not require_absolute(location, "data", "MLLMU-Bench path").exists():
        raise SpecError(f"MLLMU-Bench path {location} does not exist; give mllmu:DIR with the downloaded folder",
                        field="data")


PROFILE_FACTS = 5  # facts per person in the people worlds (engine/data/people.py FACTS; a test keeps them equal)


def check_pulse_granularity(value, data: str, checkpoint_knowledge: bool) -> str:
    granularity = GRANULARITY.coerce(value, "pulse")
    if granularity == "fact" and data not in PEOPLE_WORLDS:
        raise no_facts(data)
    if granularity == "fact" and checkpoint_knowledge:
        raise SpecError("--granularity fact draws facts of the people a tiny model learned; a checkpoint's pretrained "
                        "people are found by scoring, whole: use --granularity unit, or --knowledge finetuned",
                        field="granularity")
    return granularity


@reading_inputs
def validate_pulse(spec: dict) -> dict:
    """Normalise a PULSE spec (sequential deletion requests on an LMM) or raise SpecError with one line."""
    if not isinstance(spec, dict):
        raise SpecError("a run spec must be a JSON object")
    method = spec.get("method")
    if not isinstance(method, str) or canonical_method(method) not in PULSE_METHODS:
        raise SpecError(f"pulse runs one of: {', '.join(PULSE_METHODS)}; got {method!r}", field="method")
    info = method_info(method)
    method = info.name
    model, data = spec.get("model"), spec.get("data")
    if not isinstance(model, str) or not model:
        lmms = [m.name for m in MODELS.values() if "multiple_choice" in FAMILIES[m.family].tasks]
        raise SpecError(f"pulse needs --model ({', '.join(lmms)}, an LMM checkpoint directory or a hub id)",
                        field="model")
    check_model_serves(model, "multiple_choice", "pulse")
    check_method_fits(info, "multiple_choice", model_family(model))
    check_people_data(data)
    general = spec.get("general")
    check_general(general)
    knowledge = spec.get("knowledge", "pretrained")
    if not isinstance(knowledge, str) or knowledge not in KNOWLEDGE_SOURCES:
        raise SpecError(f"--knowledge must be one of {', '.join(KNOWLEDGE_SOURCES)}; got {knowledge!r}",
                        field="knowledge")
    requests = check_requests(spec.get("requests"), method)
    raw_params, compiling = check_compile(check_object(spec.get("params"), "params", "method parameters (params)"),
                                          f"pulse --method {method}")
    # a real checkpoint's pretrained people are those it already answers: counted when the run scores them
    checkpoint_knowledge = knowledge == "pretrained" and model not in MODELS
    pool = None if checkpoint_knowledge else people_pool(data, knowledge)
    granularity = check_pulse_granularity(spec.get("granularity", GRANULARITY.default), data, checkpoint_knowledge)
    forget = spec.get("forget")
    if forget is None:
        forget = max(requests, (pool + 1) // 2) if pool is not None else None
        if pool is not None and granularity != "fact" and requests >= pool > 1:  # K raised the default to them all
            raise SpecError(f"--requests {requests} forgets one person a request at least, and {data} has {pool} "
                            f"{knowledge} people: none would be left to retain, so nothing could measure what is kept; "
                            f"choose --requests {pool - 1} or fewer"
                            + (f", or --forget {pool} to forget them all on purpose" if requests == pool else ""),
                            field="requests")
    else:
        check_whole(forget, "--forget N", "forget", 1, MAX_UNITS)
    if granularity == "fact":
        facts = pool * PROFILE_FACTS
        if forget >= facts or requests > forget:
            raise SpecError(f"cannot forget {forget} facts in {requests} request{'s' * (requests != 1)}: the {knowledge} "
                            f"people of {data} have "
                            f"{facts} facts; choose --forget 1..{facts - 1} (and --requests K <= --forget)", field="forget")
    elif pool is not None and forget > pool:
        raise SpecError(f"cannot forget {forget} people: {data} has {pool} {knowledge} people; "
                        f"choose --forget 1..{pool}" + (" (and --requests K <= --forget)" if requests > 1 else ""),
                        field="forget")
    if granularity != "fact" and forget is not None and requests > forget:
        raise SpecError(f"--requests K={requests} is larger than the {forget} forget people; "
                        f"choose K <= {forget} or a larger --forget N", field="requests")
    normal = {
        "kind": "pulse",
        "method": method,
        "model": model,
        "data": data,
        "general": general,
        "knowledge": knowledge,
        "requests": requests,
        **check_schedule(spec, requests, f"pulse --method {method}"),
        "forget": forget,
        **({"granularity": granularity} if granularity != GRANULARITY.default else {}),
        "device": check_device(spec.get("device", "auto")),
        "seed": check_seed(spec.get("seed", DEFAULT_SEED)),
        "params": check_params(raw_params, COMMON_PARAMS + METHODS[method].params + LMM_PARAMS,
                               f"pulse --method {method}", PULSE_DEFAULT_PARAMS),
        "name": check_name(spec.get("name")),
        **check_placement(spec),
        **check_base_and_original(model, spec.get("original"), data, model_is_original=checkpoint_knowledge),
    }
    if compiling:
        normal["params"][COMPILE.name] = True
    check_strategy_fits(info, normal)
    check_given_options_apply(spec, raw_params, normal, info)
    check_guards(normal["params"], "multiple_choice")
    check_budget(normal["params"], method)
    check_tune(normal["params"], method, people=True)
    check_pair_score(normal["params"], "multiple_choice", None)
    check_k_test(normal["params"], "multiple_choice", None)
    if method == "mmunlearner" and normal["params"]["forget_rows"] != "image":
        raise SpecError("--forget-rows all: mmunlearner ascends on the forget people's image questions only (as "
                        "released); leave --forget-rows at image", field="forget_rows")
    return normal
