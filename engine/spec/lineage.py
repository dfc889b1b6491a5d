"""What a checkpoint the workbench saved was trained on: the base/deployed split of ANCHORS.md section 5.

An operator holds a *deployed* model (trained on all of its data) and the *base* it was trained from.
Unlearning starts from the deployed model (`--original`, or the original the workbench trains from `--model`);
Retrain starts from the base (`--model`) and trains on Dr only. A `--model` that already saw the data to forget
from would make Retrain a model that remembers Df, and every Retrain-relative number meaningless, so such a
run is refused before anything trains.

Every checkpoint the workbench saves (cached originals, run outputs) carries `mmul-lineage.json`: the list of
data it was trained on, each entry `{"data": fingerprint, "data_ref": reference, "identity": the fingerprint
without file times (what a copy keeps), "task": task}` (plus
`"excluding"`: the deletion set, for a Retrain output, which never saw it), inherited from the checkpoint it
started from. Validation (torch-free) compares the data *reference* (a world name, or FORMAT:PATH with an
absolute path); the engine compares the data *fingerprint* (by content) before anything trains, which also
catches a copied or renamed data folder. Originals cached before lineage files existed are read from their
`mmul-fingerprint.json`, which names the data they were trained on.
"""
from __future__ import annotations

import json
from pathlib import Path

LINEAGE_FILE = "mmul-lineage.json"
CACHE_FINGERPRINT_FILE = "mmul-fingerprint.json"  # engine/cache.py writes it beside every cached original


def read_lineage(checkpoint: str) -> list[dict]:
    """The data a local checkpoint directory was trained on, as far as the workbench knows ([] for a checkpoint
    it did not make, a registered name or a hub id)."""
    path = Path(checkpoint)
    if not path.is_absolute() or not path.is_dir():
        return []
    try:
        entries = json.loads((path / LINEAGE_FILE).read_text(encoding="utf-8"))["trained_on"]
        return [entry for entry in entries if isinstance(entry, dict)]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:  # an original cached before lineage files: its cache key names the data it was trained on
        recorded = json.loads((path / CACHE_FINGERPRINT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    # an original's key names its starting checkpoint (`model_ref`); other cache entries (tiny models, the
    # classification worlds' pre-trained starts) were not trained on the task's data
    if isinstance(recorded, dict) and recorded.get("data") and "model_ref" in recorded:
        return [{"data": recorded["data"], "task": recorded.get("task")}]
    return []


def saw(lineage: list[dict], *, data_ref: str | None = None, fingerprint: str | None = None,
        identity: str | None = None) -> dict | None:
    """The lineage entry saying the checkpoint was trained on all of this data (by reference, by fingerprint, or by
    identity: a copy's files without their times), or None. A Retrain output's entry (`excluding` its deletion set)
    does not count."""
    for entry in lineage:
        if entry.get("excluding"):
            continue
        if (data_ref is not None and entry.get("data_ref") == data_ref) or \
                (fingerprint is not None and entry.get("data") == fingerprint) or \
                (identity is not None and entry.get("identity") == identity):
            return entry
    return None


def write_lineage(directory: Path, entries: list[dict]) -> None:
    (Path(directory) / LINEAGE_FILE).write_text(json.dumps({"trained_on": entries}, indent=1, sort_keys=True),
                                                 encoding="utf-8")


def trained_on_data_message(model: str, data: str, trained_on: str | None = None) -> str:
    """`trained_on`: the data reference its lineage names, where it is another path to the same data (a copy)."""
    named = data if trained_on in (None, data) else f"{trained_on} (the same data as --data {data}, by content)"
    return (f"--model {model} was trained on {named}, the data this run forgets from, so Retrain would start from a "
            f"model that remembers Df; pass it as --original {model} (the deployed model, unlearned as it is) and "
            f"give --model the weights it was trained from")
