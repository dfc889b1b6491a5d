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


def cache_dir(chosen: str | None = None, home: Path | None = None) -> Path:
    """The original-model cache and run checkpoints: the run's own (its spec's ``artifacts``: ``--cache-dir``,
    or with --cluster ``--artifacts``), on a cluster node the shared path its task was given ($MMUL_ARTIFACTS),
    else $MMUL_CACHE (another disk, for every local run of the process: headless, or the engine as started),
    else $MMUL_HOME/cache (``home``'s, for a store opened on another home)."""
    place = chosen or os.environ.get("MMUL_ARTIFACTS") or os.environ.get("MMUL_CACHE")
    return Path(place).expanduser() if place else (home or mmul_home()) / "cache"


def resume_point_dirs(cache: Path, session_id: str) -> tuple[Path, Path]:
    """Where a run of K requests keeps its resume point (engine/protocols/resume.py), and where the point it
    replaces waits while the new one is swapped in."""
    point = cache / "runs" / f"{session_id}.resume"
    return point, previous_point(point)


def previous_point(point: Path) -> Path:
    """Where the point before `point` waits (kept until the next is written)."""
    return point.with_name(point.name + ".old")


def point_staging(point: Path) -> list[Path]:
    """The staging folders a write of `point` left when a kill cut it short (engine.cache.staged's names)."""
    return sorted(point.parent.glob(f".{point.name}.*"))


def point_folders(cache: Path, session_id: str) -> list[Path]:
    """Every folder of the session's resume point in `cache`: the point, the one before it, and the staging of a
    write a kill cut short (what a finished or discarded run removes)."""
    point, previous = resume_point_dirs(cache, session_id)
    return [point, previous, *point_staging(point)]
