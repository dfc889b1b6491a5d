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
    return mmul_home() / "cache"
