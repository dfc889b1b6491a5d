"""The engine's in-process facade for the shell: run a job headless, export a built-in world, preview a
deletion set. The CLI and the App's services import this module lazily, inside the commands that need
it; nothing else of the engine (but the torch-free `engine.spec` and `engine.errors`) is theirs to import.
"""
from __future__ import annotations

import threading
from pathlib import Path

from engine.errors import SpecError
from engine.jobs import run_job, validate
from engine.spec import PEOPLE_WORLDS, WORLDS

__all__ = ["DeletionPreview", "export_world", "preview_deletion", "run_job", "validate"]

EXPORT_FORMATS = {"retrieval": ("flickr30k",), "multiple_choice": ("mmbench", "mllmu")}

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

    def __init__(self, selected: int, total: int, samples: list[str]):
        self.selected, self.total, self.samples = selected, total, samples


def preview_deletion(data: str, deletion: dict) -> DeletionPreview | None:
    """The units `deletion` selects in built-in world `data` (None for real data: checked when the run starts);
    SpecError when the deletion spec is bad."""
    from engine.data.deletion import select_units
    from engine.spec import check_deletion

    if data not in WORLDS:
        return None
    world = cached_world(data)
    chosen = select_units(world.train, check_deletion(dict(deletion)))
    return DeletionPreview(len(chosen), len(world.train), [world.train[i].captions[0] for i in chosen[:3]])


def export_world(world: str, fmt: str, directory: Path) -> list[Path]:
    """Write built-in world `world` as `fmt` into `directory`; SpecError (naming what would work) on bad input."""
    kind = WORLDS[world].kind if world in WORLDS else PEOPLE_WORLDS[world].kind if world in PEOPLE_WORLDS else None
    if kind is None:
        raise SpecError(f"unknown world {world!r}; choose one of: {', '.join([*WORLDS, *PEOPLE_WORLDS])}", field="data")
    if fmt not in EXPORT_FORMATS[kind]:
        raise SpecError(f"unknown export format {fmt!r} for {world}; choose one of: {', '.join(EXPORT_FORMATS[kind])}",
                        field="format")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise SpecError(f"{directory} exists and is not a directory; give a new or empty directory", field="directory")
    if kind == "retrieval":
        from engine.data.flickr30k import write_flickr30k

        return write_flickr30k(cached_world(world), directory)
    from engine.data.people import export_people
    from engine.data.registry import load_data

    return export_people(load_data(world), fmt, directory)


