"""Which family a checkpoint belongs to, by its config.json `model_type`: the one resolver that validation
(torch-free, before anything loads) and the engine's model registry (when it loads) both ask."""
from __future__ import annotations

import json
from pathlib import Path

from engine.errors import SpecError
from engine.spec.catalog import FAMILIES, FamilyInfo


def config_model_type(directory: str | Path) -> str | None:
    """config.json's `model_type` of a checkpoint directory, read as it is (our own families, gcn_bert, are
    not in transformers' AutoConfig table until their module is imported); None where the directory has no
    config.json; one line where it is unreadable."""
    config = Path(directory).expanduser() / "config.json"
    if not config.exists():
        return None
    try:
        return str(json.loads(config.read_text(encoding="utf-8"))["model_type"])
    except (OSError, ValueError, KeyError, TypeError):
        raise SpecError(f"model directory {directory} has no readable config.json (with a model_type); point at "
                        "a save_pretrained checkpoint directory", field="model") from None


def family_of(model_type: object) -> FamilyInfo | None:
    return next((f for f in FAMILIES.values() if model_type in f.model_types), None)


def known_model_types() -> str:
    return ", ".join(sorted(t for f in FAMILIES.values() for t in f.model_types))
