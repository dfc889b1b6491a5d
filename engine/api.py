"""The engine's in-process facade for the shell: check that a spec can run here (`preflight`: devices,
data records), run a job headless, export a built-in world, preview a deletion set, score a run's Df
against Retrain's (`forget_quality`, for `study`). The CLI and the App's services import this module lazily, inside the commands that need
it; nothing else of the engine (but the torch-free `engine.spec` and `engine.errors`) is theirs to import.
"""
from __future__ import annotations

import os
import secrets
import shutil
import threading
from pathlib import Path

from engine.cpu_kernels import cpu_model
from engine.errors import SpecError, reading_inputs
from engine.jobs import run_job, validate
from engine.preflight import preflight
from engine.spec import PEOPLE_WORLDS, WORLDS

__all__ = ["DeletionPreview", "attack_kinds", "cpu_model", "attack_spec", "run_attack", "data_info", "export_world", "forget_quality", "memory_plan", "preflight", "run_plan",
           "preview_deletion", "run_job", "validate"]

EXPORT_FORMATS = {"retrieval": ("flickr30k", "coco"), "classification": ("snli-ve", "nlvr2"),
                  "multiple_choice": ("mmbench", "mllmu")}
WRITERS = {  # format -> the writer of a built-in world ("module:function(world, directory)")
    "flickr30k": "engine.data.flickr30k:write_flickr30k",
    "coco": "engine.data.flickr30k:write_coco",
    "snli-ve": "engine.data.snli_ve:write_snli_ve",
    "nlvr2": "engine.data.nlvr2:write_nlvr2",
    "graph-text": "engine.data.graph_text:write_graph_text",
}
MEDIA_EXPORT_FORMATS = {"graph": ("graph-text",)}  # worlds of graphs write graph-text, whatever their task

_worlds: dict[str, object] = {}
_worlds_lock = threading.Lock()


def cached_world(name: str):
    """A built-in image-text world, built once per process (previews ask for it on every keystroke)."""
    from engine.data.registry import load_data

    with _worlds_lock:
        if name not in _worlds:
            _worlds[name] = load_data(name)
        return _worlds[name]


class DeletionPreview:
    """What a deletion spec selects in a built-in world: counts and a few sample captions."""

    def __init__(self, selected: int, total: int, samples: list[str], kind: str = "units"):
        self.selected, self.total, self.samples, self.kind = selected, total, samples, kind


def preview_deletion(data: str, deletion: dict) -> DeletionPreview | None:
    """The units `deletion` selects in built-in world `data` (None for real data: checked when the run starts);
    SpecError when the deletion spec is bad."""
    from engine.data.deletion import select_units
    from engine.data.labelled import unit_texts
    from engine.spec import check_deletion

    if data not in WORLDS:
        return None
    world = cached_world(data)
    deletion = check_deletion(dict(deletion))
    if deletion.get("granularity") == "fact":
        from engine.data.fact_deletion import select_facts, world_facts

        facts = select_facts(world, deletion)
        return DeletionPreview(len(facts), len(world_facts(world)), [
            f"{fact.fact_id}: {unit_texts(world.train[fact.unit])[fact.texts[0]]}" for fact in facts[:3]], "facts")
    chosen = select_units(world.train, deletion)
    return DeletionPreview(len(chosen), len(world.train), [unit_texts(world.train[i])[0] for i in chosen[:3]])


@reading_inputs
def data_info(ref: str, decode: bool = False) -> tuple[dict, str, str | None]:
    """(document, text, problem) of `data info`: counts per split, texts per unit and the fingerprint; with
    `decode` every image decoded too, and `problem` the line naming those that do not decode (else None)."""
    from engine.data.describe import decoding_problem, describe_data, describe_text

    info = describe_data(ref, decode)
    return info, describe_text(info), decoding_problem(info)


@reading_inputs
def unit_ids(ref: str, granularity: str = "unit") -> list[str]:
    """The training units' ids of data `ref`, in order, or (`granularity` "fact") their facts' ids `UNIT#KEY`: what
    `--delete-ids FILE` takes at that granularity, one a line (`data ids`)."""
    from engine.data.registry import load_data

    if ref in PEOPLE_WORLDS or ref.partition(":")[0] in ("mllmu", "mmbench"):
        raise SpecError(f"{ref} is people data: a PULSE run forgets people (--forget N), drawn by seed, not units "
                        "named by id", field="data")
    world = load_data(ref)
    if granularity == "fact":  # (a file's data has none: world_facts says so in one line)
        from engine.data.fact_deletion import world_facts

        return [fact.fact_id for fact in world_facts(world)]
    return [unit.unit_id for unit in world.train]


def export_world(world: str, fmt: str, directory: Path, force: bool = False) -> list[Path]:
    """Write built-in world `world` as `fmt` into `directory`; SpecError (naming what would work) on bad input.
    A directory that holds anything is refused unless `force`: the export writes over files of its names (a real
    data set's annotation files, exported into by mistake, would be lost)."""
    kind = WORLDS[world].kind if world in WORLDS else PEOPLE_WORLDS[world].kind if world in PEOPLE_WORLDS else None
    if kind is None:
        raise SpecError(f"unknown world {world!r}; choose one of: {', '.join([*WORLDS, *PEOPLE_WORLDS])}", field="data")
    media = WORLDS[world].media if world in WORLDS else "image"
    formats = MEDIA_EXPORT_FORMATS.get(media) or EXPORT_FORMATS[kind]
    if fmt not in formats:
        raise SpecError(f"unknown export format {fmt!r} for {world}; choose one of: {', '.join(formats)}",
                        field="format")
    directory = Path(directory)
    from engine.spec.inputs import blocking_file

    if (blocking := blocking_file(directory)) is not None:
        raise SpecError(f"{directory} cannot be a directory: {blocking} is a file; give a new or empty directory",
                        field="directory")
    held = sorted(directory.iterdir()) if directory.is_dir() and not force else []
    if held:
        more = f" and {len(held) - 1} more" if len(held) > 1 else ""
        raise SpecError(f"{directory} is not empty (it holds {held[0].name}{more}); give a new or empty directory, "
                        "or --force to write over files of the same names", field="directory")
    # a new (or empty) folder is written beside it and renamed into place at the end: a full disk or Ctrl-C left
    # a partial export there, which the retry then refused as not empty; --force writes over what is there
    staged = not (force and directory.is_dir())
    target = directory.parent / f".{directory.name}.export-{secrets.token_hex(4)}" if staged else directory
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:   # /proc/x, a read-only mount, someone else's folder
        raise SpecError(f"cannot make the directory {directory} ({error.strerror}); give one you can write",
                        field="directory") from None
    if not staged:
        return write_world(world, fmt, target)
    try:
        written = write_world(world, fmt, target)
        if directory.is_dir():
            directory.rmdir()   # empty, as checked above
        os.rename(target, directory)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return [directory / path.relative_to(target) if path.is_relative_to(target) else path for path in written]


def write_world(world: str, fmt: str, directory: Path) -> list[Path]:
    """Write built-in `world` as `fmt` into `directory`; the files written."""
    if fmt in WRITERS:
        from engine.data.registry import target_function

        return target_function(WRITERS[fmt])(cached_world(world), directory)
    from engine.data.people import export_people
    from engine.data.registry import load_data

    return export_people(load_data(world), fmt, directory)


def forget_quality(scores, reference) -> float | None:
    """The KS p-value between a run's per-unit Df scores and Retrain's (engine/metrics/forget_quality.py);
    scipy loads here, on first use, not with this module."""
    from engine.metrics.forget_quality import forget_quality as ks_p_value

    return ks_p_value(scores, reference)


def attack_kinds() -> tuple[str, ...]:
    """The attacks `mmul-workbench attack` and `study --attacks` offer (engine/attacks: torch-free)."""
    from engine.attacks import ATTACKS

    return tuple(ATTACKS)


def check_attack_params(kind: str, options: dict) -> None:
    """SpecError (one line) when `options` are not parameters attack `kind` takes (engine/attacks: torch-free)."""
    from engine.attacks import check_params

    check_params(kind, options)


def attack_spec(kind: str, parent: dict, options: dict) -> dict:
    """`mmul-workbench attack KIND SESSION`'s spec, checked (engine/attacks: torch-free); SpecError (one line)."""
    from engine.attacks import attack_spec as checked

    return checked(kind, parent, options)


def run_attack(spec: dict, parent: dict, retrain: dict | None, emit, should_stop) -> dict:
    """Run an attack on a finished session (engine/attacks/run.py; torch loads here)."""
    from engine.attacks.run import run_attack as attack

    return attack(spec, parent, retrain, emit, should_stop)


def memory_plan(model: str, method: str, **options) -> dict:
    """`mmul-workbench plan`: the memory a run needs per device (engine/plan.py; torch loads here, the model
    is built on the meta device). SpecError (one line) for a model, method or size that cannot be planned."""
    from engine.offline import hub_id_problem
    from engine.plan import parse_bytes, plan
    from engine.spec import MODELS

    if model in MODELS:
        raise SpecError(f"{model} is a registered tiny model, built for a world when it runs (a few MB); plan reads "
                        "a checkpoint's config.json: give a checkpoint directory or a hub id in the local cache",
                        field="model")
    if (problem := hub_id_problem(model, "model")) is not None:
        raise SpecError(problem, field="model")
    from engine.spec.validate import looks_like_hub_id

    # a name that is neither a path nor a hub id is refused here (plan asked the hub for 'bogus' and printed
    # transformers' "couldn't connect to https://huggingface.co" after 4 s); a path is plan's own to check
    if not looks_like_hub_id(model) and not any(mark in model for mark in ("/", "\\", "~")) and not os.path.exists(model):
        raise SpecError(f"unknown model {model!r}: plan reads a checkpoint or config directory (its path, with its "
                        "config.json) or a hub id in the local cache", field="model")
    try:
        if isinstance(options.get("gpu_memory"), str):
            options["gpu_memory"] = parse_bytes(options["gpu_memory"])
        return plan(model, method, **options)
    except SpecError:
        raise
    except (OSError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SpecError(f"cannot plan {model}: {first}") from None


def run_plan(spec: dict, gpu_memory: str | None = None) -> dict | None:
    """The memory plan of a validated run spec (engine/plan.py's spec_plan) against --gpu-memory (a size such
    as 80GB), else the CUDA device's own memory; None when there is nothing to plan before the run loads (a
    registered tiny model) or the model's config cannot be read here (the run itself then says why).
    SpecError (field gpu_memory) for a size that is not one."""
    from engine.plan import parse_bytes, spec_plan

    try:
        limit = parse_bytes(gpu_memory) if gpu_memory is not None else None
    except ValueError as error:
        raise SpecError(str(error), field="gpu_memory") from None
    try:
        return spec_plan(spec, limit)
    except (OSError, ValueError, KeyError):
        return None
