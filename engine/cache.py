"""Entries of the model caches (the original models, the registered tiny models): keyed by what they are
made from, made once per key whoever asks first, and never reused when they do not match.

An entry is a directory published atomically (staged beside it, then renamed into place) holding a
`mmul-fingerprint.json` that names what it was made from. Producers of one key take the key's lock
(`<cache>/<kind>/.locks/<key>.lock`, an flock): the second producer waits for the first and then finds
its entry, so two cold runs started together train once and neither fails after training; a run asked
to stop while it waits stops. An entry whose fingerprint does not match (made by an older release, or
tampered with) is replaced, never reused.

`checkpoint_fingerprint` fingerprints a starting checkpoint: a local directory by its files (configs,
tokenizer and processor files hashed, weights by size and mtime), a hub id by its local snapshot.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from engine.data.fingerprint import digest, path_fingerprint
from engine.errors import Cancelled
from sessions.errors import DiskFull, is_disk_full

FINGERPRINT_FILE = "mmul-fingerprint.json"
WAIT_POLL = 0.2  # seconds between lock attempts while another producer makes the entry


def slug(text: str) -> str:
    """A name fit for a cache directory (the readable part of a key; the digest makes it unique)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")[:60]


def checkpoint_fingerprint(source: str) -> str:
    """The fingerprint of a starting checkpoint: a directory's files, a hub id's local snapshot (its
    commit is in the path), else the name itself."""
    path = Path(source).expanduser()
    if path.is_dir():
        return digest({"checkpoint": path_fingerprint(path)})
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source, "config.json")
    except Exception:  # not a valid repo id, no hub library: the name is all we know
        found = None
    if isinstance(found, str):
        return digest({"hub": source, "snapshot": path_fingerprint(Path(found).parent)})
    return digest({"name": source})


@contextmanager
def producing(directory: Path, should_stop: Callable[[], bool] = lambda: False,
              on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the lock of cache entry `directory` for the `with` block (waiting for another producer
    first; `on_wait` is told once). Raises Cancelled when `should_stop()` turns true while waiting."""
    locks = directory.parent / ".locks"
    try:
        locks.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(locks / f"{directory.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(locks / f"{directory.name}.lock") from None
        raise
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and on_wait is not None:
                    on_wait()
                told = True
                if should_stop():
                    raise Cancelled(f"stopped while waiting for another run to make {directory.name}") from None
                time.sleep(WAIT_POLL)
        _clean_staging(directory)
        yield
    finally:
        os.close(fd)


def entry_matches(directory: Path, fingerprint: dict) -> bool:
    """True when `directory` is a complete entry made from exactly `fingerprint`, its weights whole (a cut or
    damaged file is no entry: it is made again, where every run on it failed to load it)."""
    try:
        recorded = json.loads((directory / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (recorded == json.loads(json.dumps(fingerprint)) and (directory / "config.json").is_file()
            and damaged_weights(directory) is None)


def damaged_weights(directory: Path) -> str | None:
    """What is wrong with the first of the entry's .safetensors files that cannot load (read from their headers),
    or None."""
    from engine.spec.inputs import safetensors_problem

    for weights in sorted(Path(directory).glob("*.safetensors")):
        try:
            problem = safetensors_problem(weights)
        except OSError as error:
            problem = f"{weights.name} cannot be read ({error.strerror})"
        if problem is not None:
            return problem
    return None


def recorded_fingerprint(directory: Path) -> dict | None:
    """What a cache entry says it was made from (None when it says nothing)."""
    try:
        return json.loads((Path(directory) / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def publish(directory: Path, write: Callable[[Path], None], fingerprint: dict) -> None:
    """Make entry `directory` atomically: `write(staging)`, the fingerprint beside it, one rename. An
    entry already there (one that did not match) is moved aside and removed. Call under `producing`. A disk
    that fills raises `DiskFull` naming the entry, with the staging removed and any old entry left as it was."""
    with staged(directory) as staging:
        write(staging)
        (staging / FINGERPRINT_FILE).write_text(json.dumps(fingerprint, indent=1, sort_keys=True), encoding="utf-8")
        if os.path.lexists(directory):
            old = directory.with_name(f".{directory.name}.old-{secrets.token_hex(3)}")
            os.replace(directory, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, directory)


@contextmanager
def staged(directory: Path) -> Iterator[Path]:
    """A staging directory beside `directory` for the `with` block (removed after it, whatever happens). A write
    in it that finds the disk full (ENOSPC, or a library's error saying so: safetensors') becomes one `DiskFull`
    naming `directory` and what was written before the disk filled: what the run needed at least."""
    staging: Path | None = None
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        yield staging
    except DiskFull:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        written = tree_bytes(staging) if staging is not None else 0
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise DiskFull(directory, written=written) from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def tree_bytes(path: Path) -> int:
    """The bytes of the files under `path` (0 when it is gone)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def _clean_staging(directory: Path) -> None:
    """Remove what producers of this key that crashed left behind (we hold its lock: nobody writes them)."""
    try:
        leftovers = [p for p in directory.parent.iterdir() if p.name.startswith(f".{directory.name}.")]
    except FileNotFoundError:
        return
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
