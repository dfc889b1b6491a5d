"""Nothing is downloaded at run time: the Hugging Face hub is offline unless the operator says otherwise.

`engine/__init__.py` sets HF_HUB_OFFLINE=1 before transformers or huggingface_hub load (they read it once, at
import), unless the environment sets it already (HF_HUB_OFFLINE=0: the operator allows downloads). Offline, a
hub id not in the local cache used to be found missing only after five network retries (28 s) inside the run,
its session already made; `preflight` now refuses it first (`hub_id_problem`), in one line.
"""
from __future__ import annotations

import os
from collections.abc import MutableMapping

VARIABLE = "HF_HUB_OFFLINE"


def hold_offline(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set HF_HUB_OFFLINE=1 unless the environment sets it (an exported empty value counts as unset: the hub
    would read it as online); whether it was set here."""
    if environ.get(VARIABLE, "").strip():
        return False
    environ[VARIABLE] = "1"
    return True


def hub_is_offline(environ: MutableMapping[str, str] = os.environ) -> bool:
    return environ.get(VARIABLE, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_id_problem(ref, what: str, cache_dir: str | None = None) -> str | None:
    """One line when `ref` is a hub id (not a registered name, not a path) that cannot be loaded offline: its
    config.json is not in the local cache (`cache_dir`, else the hub's own); else None. Online (HF_HUB_OFFLINE=0)
    nothing is checked: downloading is then allowed."""
    from engine.spec import MODELS  # not at import: engine/__init__ imports this module on every start
    from engine.spec.validate import looks_like_hub_id

    if (not isinstance(ref, str) or ref in MODELS or ref.startswith("/") or not looks_like_hub_id(ref)
            or not hub_is_offline()):
        return None
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_CACHE

    if isinstance(try_to_load_from_cache(ref, "config.json", cache_dir=cache_dir), str):
        return None
    return (f"{what} {ref!r} is not in the local Hugging Face cache ({cache_dir or HF_HUB_CACHE}) and the workbench "
            f"downloads nothing: fetch it beforehand (`hf download {ref}` where there is internet, then copy the cache), give "
            "a checkpoint directory, or set HF_HUB_OFFLINE=0 to let it download")
