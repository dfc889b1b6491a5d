"""Where everything lives: one home directory, $MMUL_HOME (default: the XDG data dir)."""
from __future__ import annotations

import os
from pathlib import Path


def mmul_home() -> Path:
    explicit = os.environ.get("MMUL_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "mmul-workbench"


def sessions_dir() -> Path:
    return mmul_home() / "sessions"


def engine_dir() -> Path:
    return mmul_home() / "engine"


def cache_dir() -> Path:
    """The original-model cache and run checkpoints: $MMUL_HOME/cache, or on a cluster node the shared
    path the run was given (``--artifacts``, set as $MMUL_ARTIFACTS by the run's task)."""
    artifacts = os.environ.get("MMUL_ARTIFACTS")
    return Path(artifacts) if artifacts else mmul_home() / "cache"
