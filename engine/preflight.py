"""What the engine checks before it accepts a run, beyond the spec's shape (`engine.spec.validate`): the
device exists on this machine, real-format data files are well formed, every record of them (a bad
record is refused with its file and record number), and `--model` (the base) was not trained on the data by
content (engine/spec/lineage.py: validation compares the data's reference; a copied or renamed folder, or an
original cached before lineage files, is caught here by its fingerprint). So a spec that would fail on either is refused
(``bad_spec`` / exit 2) before a session is created and before anything trains.

The data read here is handed to the job (`engine.data.preloaded`), so real files are read once.
"""
from __future__ import annotations

from engine.data.fingerprint import data_fingerprint
from engine.data.preloaded import remember
from engine.devices import check_available, check_device_count
from engine.errors import SpecError
from engine.spec import MODELS, PEOPLE_WORLDS, WORLDS
from engine.spec.lineage import read_lineage, saw, trained_on_data_message


def check_base(spec: dict) -> None:
    """Refuse a base (`--model`) whose lineage holds this data by content (not where `--model` is the original
    itself: `pulse --knowledge pretrained` on a checkpoint, as engine.spec.validate says)."""
    if spec.get("knowledge") == "pretrained" and spec["model"] not in MODELS:
        return
    if saw(read_lineage(spec["model"]), fingerprint=data_fingerprint(spec["data"])) is not None:
        raise SpecError(trained_on_data_message(spec["model"], spec["data"]), field="model")


def preflight(spec: dict) -> None:
    """SpecError (with its field) when the engine cannot run the validated `spec` here."""
    if not spec.get("cluster"):  # a cluster's nodes have their own devices; Ray places the run on one
        check_available(spec["device"])
        check_device_count(spec["device"], spec.get("devices", 1))
    data = spec.get("data")
    if isinstance(data, str) and data not in WORLDS and data not in PEOPLE_WORLDS:
        from engine.data.registry import load_data

        try:
            remember(data, load_data(data))
        except SpecError as error:
            error.field = error.field or "data"
            raise
    general = spec.get("general")
    if isinstance(general, str) and general.startswith("mmbench:"):
        from engine.data.mmbench import read_mmbench

        try:
            read_mmbench(general.partition(":")[2], require_answer=True)
        except SpecError as error:
            error.field = error.field or "general"
            raise
    check_base(spec)
