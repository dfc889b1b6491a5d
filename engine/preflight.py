"""What the engine checks before it accepts a run, beyond the spec's shape (`engine.spec.validate`): the
device exists on this machine, real-format data files are well formed, every record of them (a bad
record is refused with its file and record number), and `--model` (the base) was not trained on the data by
content (engine/spec/lineage.py: validation compares the data's reference; a copied or renamed folder, or an
original cached before lineage files, is caught here by its fingerprint), and a run's deletion set resolves against
the data (`--delete N` below the units there are, an ID file naming at least its ids, a query matching some units,
`--requests K` no more than the units chosen), and a resumed run's point exists for its spec (whose `resumes` it
completes with the request the point follows). So a spec that would fail on any of these is refused (``bad_spec`` /
exit 2) before a session is created and before anything trains. The headless CLI and the daemon (through
`engine.jobs.validate`) both call `preflight`: one check, one line, whichever way the run is started.

Torch-free: the daemon calls it, and building a built-in world or reading real files needs only numpy and PIL.

The data read here is handed to the job (`engine.data.preloaded`), so real files are read once.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from engine.cpu_kernels import check_setting
from engine.data.fingerprint import data_fingerprint, data_identity
from engine.data.preloaded import remember
from engine.devices import check_available, check_device_count
from engine.errors import SpecError, reading_inputs
from engine.offline import hub_id_problem
from engine.spec import METHODS, MODELS, PEOPLE_WORLDS, WORLDS, people_pool
from engine.spec.inputs import check_layer_within
from engine.spec.lineage import LINEAGE_FILE, read_lineage, saw, trained_on_data_message


def check_base(spec: dict) -> None:
    """Refuse a base (`--model`) whose lineage holds this data by content. Where `--model` is the original itself
    (`pulse --knowledge pretrained` on a checkpoint, as engine.spec.validate says), a checkpoint the workbench
    trained on these people holds them as fine-tuned knowledge: scored as a pretrained checkpoint it "knew none
    of them" and the run failed (exit 1) for a reason that was not so; it is refused, pointing to --original."""
    lineage = read_lineage(spec["model"])
    if not lineage:  # a registered name, a hub id, a checkpoint the workbench did not make: nothing to compare (and
        return       # a real folder's two walks, its fingerprint and its identity, are not paid for on every run)
    # by fingerprint first; by identity (a copy of the data, with new file times) only when that finds nothing
    seen = saw(lineage, fingerprint=data_fingerprint(spec["data"])) or saw(lineage, identity=data_identity(spec["data"]))
    if seen is None:
        return
    if spec.get("knowledge") == "pretrained" and spec["model"] not in MODELS:
        raise SpecError(f"--model {spec['model']} was trained on {seen.get('data_ref') or spec['data']} (its "
                        f"{LINEAGE_FILE}): it holds these people as fine-tuned knowledge, not pretrained; pass it as "
                        f"--original {spec['model']} (the deployed model, unlearned as it is) and give --model the "
                        "weights it was trained from (e.g. llava-tiny)", field="model")
    raise SpecError(trained_on_data_message(spec["model"], spec["data"], seen.get("data_ref")), field="model")


def check_original_task(spec: dict) -> None:
    """Refuse an --original the workbench trained for another task (its lineage says so): a BLIP fine-tuned for
    SNLI-VE classification given to a COCO retrieval run loads without its retrieval heads, and the run unlearned a
    model at chance as if it were the deployed one."""
    original, task = spec.get("original"), spec.get("task")
    tasks = {entry.get("task") for entry in read_lineage(original)} - {None} if original else set()
    if task and tasks and task not in tasks:
        trained = ", ".join(sorted(tasks))
        raise SpecError(f"--original {original} was trained for {trained} (its {LINEAGE_FILE}), and this run unlearns "
                        f"{task}: give the checkpoint deployed for {task} on this data", field="original")


def check_original_head(spec: dict, world) -> None:
    """Refuse an --original classifier whose head does not fit the data's labels (and images per example): a
    SNLI-VE classifier given to an NLVR2 run loaded with a fresh head, at chance, and was unlearned as if it were
    the deployed model (a warning said the original's training would teach the head, and nothing trains it)."""
    from engine.models.registry import model_options

    original = spec.get("original")
    config_file = Path(str(original)).expanduser() / "config.json" if original else None
    if spec.get("task") != "classification" or config_file is None or not config_file.is_file():
        return
    options = model_options(world)
    labels = list(options.get("labels") or ())
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # the checkpoint checks name what is wrong with it
    held = config.get("id2label") if isinstance(config.get("id2label"), dict) else {}
    held_labels = [held[key] for key in sorted(held, key=lambda key: int(key) if str(key).isdigit() else 0)]
    images = options.get("images_per_example")
    held_images = config.get("images_per_example", 1)
    if not labels or (held_labels == labels and (images is None or held_images == images)):
        return
    has = f"labels {', '.join(map(str, held_labels))}" + (f" over {held_images} image(s)" if images else "")
    wants = f"labels {', '.join(labels)}" + (f" over {images} image(s)" if images else "")
    raise SpecError(f"--original {original} has no classification head for {spec['data']} (its head answers {has}; "
                    f"this data's {wants}): a deployed model is unlearned as it is, and a fresh head is at chance; give "
                    f"the checkpoint deployed on this data, or give it as --model to train an original from it",
                    field="original")


def decoder_layers(model: str) -> int | None:
    """An LMM's language-model layer count, read without loading it: a registered tiny model's from the catalog, a
    checkpoint directory's from its config.json (text_config); None when it cannot be told here (a hub id)."""
    if model in MODELS:
        return MODELS[model].decoder_layers
    try:
        config = json.loads((Path(model).expanduser() / "config.json").read_text())
    except (OSError, ValueError):
        return None
    layers = (config.get("text_config") or {}).get("num_hidden_layers", config.get("num_hidden_layers"))
    return layers if isinstance(layers, int) else None


def check_rmu_layer(spec: dict) -> None:
    """--rmu-layer past the model's decoder layers, refused before the session exists; the method's own check came
    after the original had trained, and failed the session (exit 1)."""
    layer = (spec.get("params") or {}).get("rmu_layer")
    count = decoder_layers(spec.get("original") or spec["model"]) if layer is not None else None
    if count is not None:
        check_layer_within(layer, count)


def check_hub_ids(spec: dict) -> None:
    """A hub id given as `--model` or `--original` is in the local cache (offline, the default: engine/offline.py)."""
    for field, what in (("model", "model"), ("original", "--original")):
        if (problem := hub_id_problem(spec.get(field), what)) is not None:
            raise SpecError(problem, field=field)


def check_retain_people(spec: dict) -> None:
    """A pulse method that trains on the retain people, asked to forget every person of the knowledge source, is
    refused here: it was found after the original's evaluation, and failed the session (exit 1)."""
    if spec.get("kind") != "pulse" or spec.get("granularity") == "fact" or not isinstance(spec.get("forget"), int):
        return
    pool = people_pool(spec["data"], spec["knowledge"])
    if pool is None or spec["forget"] < pool:
        return
    from engine.data.registry import target_function

    if target_function(METHODS[spec["method"]].target).needs_retain(spec.get("params") or {}):
        raise SpecError(f"pulse --method {spec['method']} trains on the retain people (Dr), and --forget {spec['forget']} "
                        f"leaves none of {spec['data']}'s {pool} {spec['knowledge']} people; choose --forget "
                        f"{pool - 1} or fewer", field="forget")


def check_cache_dir(spec: dict) -> None:
    """A --cache-dir this machine cannot make (under /proc, past a name's length) is refused here: the run made its
    session and then failed on the first write. Made now, as the run would make it; a cluster's is the nodes'."""
    artifacts = spec.get("artifacts")
    if not artifacts or spec.get("cluster"):
        return
    try:
        os.makedirs(artifacts, mode=0o700, exist_ok=True)
    except OSError as error:
        raise SpecError(f"--cache-dir {artifacts} cannot be made ({error.strerror}); give a directory you can write "
                        "(made if missing)", field="artifacts") from None


@reading_inputs
def preflight(spec: dict, alone: bool = True) -> None:
    """SpecError (with its field) when the engine cannot run the validated `spec` here. `alone`: the run starts by
    itself, so a `--budget matched-time` source must exist now; a study's cells are checked up front (alone=False),
    before the study's own MultiDelete cell, which runs first, has made it."""
    check_setting()
    check_hub_ids(spec)
    check_rmu_layer(spec)
    check_cache_dir(spec)
    check_retain_people(spec)
    if alone and spec.get("kind", "run") in ("run", "pulse"):
        from engine.protocols.budget import time_budget

        time_budget(spec)
    if not spec.get("cluster"):  # a cluster's nodes have their own devices; Ray places the run on one
        check_available(spec["device"])
        check_device_count(spec["device"], spec.get("devices", 1))
    from engine.data.registry import load_data

    data = spec.get("data")
    loaded = None
    if isinstance(data, str) and data not in WORLDS and data not in PEOPLE_WORLDS:
        try:
            loaded = load_data(data)
        except SpecError as error:
            error.field = error.field or "data"
            raise
        remember(data, loaded)
        check_validation_split(spec, loaded)

    @functools.cache
    def world():
        """The data the checks below read: the files read above, or a built-in world built once for them all."""
        return loaded if loaded is not None else load_data(data)

    check_deletion_set(spec, world)
    general = spec.get("general")
    if isinstance(general, str) and general.startswith("mmbench:"):
        from engine.data.mmbench import read_mmbench

        try:
            read_mmbench(general.partition(":")[2], require_answer=True)
        except SpecError as error:
            error.field = error.field or "general"
            raise
    check_base(spec)
    check_original_task(spec)
    if spec.get("original") and spec.get("task") == "classification":
        check_original_head(spec, world())
    if spec.get("resumes"):  # the point exists and was written for this spec: the request it goes on after
        spec["resumes"] = check_resumed(spec)


def check_resumed(spec: dict) -> dict:
    """`resumes` completed with the request of the point it goes on from (engine/protocols/resume.py): the
    resumed session is in this home, no other run is resuming it or has gone on past it, and it has a complete
    point its events reach, written for this spec. Its events up to that point are copied into the new session
    when it is created (sessions/resuming.py)."""
    from engine.protocols.resume import NoPoint, check_resumable
    from sessions.errors import SessionDamaged, UnknownSession
    from sessions.paths import cache_dir
    from sessions.resuming import reached_points, resume_conflict, resumers
    from sessions.store import SessionStore

    store, session = SessionStore(), spec["resumes"]["session"]
    try:
        if (conflict := resume_conflict(store, session)) is not None:
            raise SpecError(conflict, field="resumes")
        reached = reached_points(store, session)
    except (UnknownSession, SessionDamaged) as error:
        raise SpecError((getattr(error, "message", None) or str(error)).splitlines()[0], field="resumes") from None
    try:
        return check_resumable(spec, cache_dir(spec.get("artifacts")), reached)
    except NoPoint:
        others = [f"{row['id']} ({row.get('state')})" for row in resumers(store, session)]
        if others:  # a run that resumed it and wrote points of its own has removed this session's
            raise SpecError(f"session {session} has no resume point left: {', '.join(others)} resumed it and went on "
                            "past it; resume that one instead", field="resumes") from None
        went_on_from = ((store.get(session).get("spec") or {}).get("resumes") or {}).get("session")
        if went_on_from and not store.session_dir(went_on_from).exists():   # deleted since, with its points
            raise SpecError(f"session {session} stopped before a resume point of its own, and {went_on_from}, the "
                            "session it went on from, has been deleted with its points; nothing is left to resume "
                            "from: run its command again (it starts from the first request)", field="resumes") from None
        if went_on_from:  # a resumed run stopped before a point of its own: the one it went on from still stands
            raise SpecError(f"session {session} stopped before a resume point of its own; resume {went_on_from}, the "
                            "session it went on from, instead (the same requests, from its point)", field="resumes") \
                from None
        raise


def check_validation_split(spec: dict, world) -> None:
    """Refuse --tune, --keep best and --stop-if on real data whose val split is empty: they judge on it, never on
    test, and found it empty only once the session had started (the built-in worlds all have one)."""
    params = spec.get("params") or {}
    judging = [flag for flag, given in (("--tune", params.get("tune")), ("--keep best", params.get("keep") == "best"),
                                        ("--stop-if", params.get("stop_if"))) if given]
    if judging and isinstance(getattr(world, "val", None), list) and not world.val:
        raise SpecError(f"{spec['data']} has no validation units, and {' and '.join(judging)} "
                        f"{'judges' if len(judging) == 1 else 'judge'} on them (never on "
                        f"test); drop {' and '.join(judging)}, or give the data a val split",
                        field="tune" if params.get("tune") else "keep" if params.get("keep") == "best" else "stop_if")


def check_deletion_set(spec: dict, data) -> None:
    """A run's deletion set chosen from its data as the job will choose it (engine.data.deletion.select_units):
    SpecError (field ``deletion``, or ``requests``) when it cannot be. `data()`: the data, read or built once for
    preflight's checks (a built-in world in well under a second; the job builds it again)."""
    deletion = spec.get("deletion")
    if spec.get("kind", "run") != "run" or not isinstance(deletion, dict):
        return
    from engine.data.deletion import select_units

    world = data()
    try:
        if deletion.get("granularity") == "fact":
            from engine.data.fact_deletion import select_facts

            chosen = select_facts(world, deletion)
        else:
            chosen = select_units(world.train, deletion)
    except SpecError as error:
        error.field = error.field or "deletion"
        raise
    requests = spec.get("requests", 1)
    kind = "facts" if deletion.get("granularity") == "fact" else "units"
    if requests > len(chosen):
        raise SpecError(f"--requests K={requests} is larger than the {len(chosen)} {kind} the deletion set holds; "
                        f"choose K <= {len(chosen)}", field="requests")
    if spec.get("task") == "retrieval" and METHODS[spec["method"]].iterates == "forget":
        from engine.data.deletion import split_requests
        from engine.data.labelled import unit_texts

        pairs = [len(item.texts) if kind == "facts" else len(unit_texts(world.train[item])) for item in chosen]
        smallest = min(sum(request) for request in split_requests(pairs, requests))
        if smallest < 2:
            raise SpecError(f"a request of this deletion set holds 1 image-text pair: a retrieval loss contrasts the "
                            f"pairs of a batch, and one pair alone has nothing to contrast (its gradient is zero); "
                            f"delete at least 2 {kind} a request (a larger --delete, fewer --requests)"
                            + (" or whole units" if kind == "facts" else ""), field="deletion")
