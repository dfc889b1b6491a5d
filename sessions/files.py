"""The file primitives of the session store: atomic writes, fresh reads, locks, file names.

On-disk layout under ``$MMUL_HOME/sessions/``::

    catalog.json              {"_meta": {"1": {"schema": 1}}, "sessions": {"1": row, ...}}
    <id>/session.json         {"meta": {"1": meta}, "events": {"<seq+1>": event, ...}}
    <id>/seg-000000.json      {"events": {...}}   sealed segment: events [0, S), never rewritten
    <id>/seg-000001.json      events [S, 2S), ...
    <id>/.writer.lock         flock held by the live writer (engine job or headless run)

All files are plain TinyDB JSON documents (``TinyDB(path, access_mode="r").table("events")``), but
TinyDB never writes them: it rewrites a whole file in place on every insert and caches across
processes. Writers build the JSON text in memory and write it with ``atomic_write_text``
(``NAME.json.partial`` + fsync + ``os.replace`` + fsync of the directory), so no reader ever sees a
torn file; readers open every file afresh (``read_json``), since an open handle would keep reading
a replaced inode. Everything the store creates is private to the user (directories 0700, files 0600),
whatever the process's umask.

A file that cannot be read (truncated, overwritten, unreadable, a directory where a file belongs) is
described by ``describe_error`` in one line that names the file and never quotes its contents.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sessions.errors import DiskFull, is_disk_full

SESSION_FILE = "session.json"
WRITER_LOCK = ".writer.lock"
LOCK_MODE = 0o600
FILE_MODE = 0o600
DIR_MODE = 0o700
PARTIAL = ".partial"


def segment_name(index: int) -> str:
    """The file name of sealed segment ``index`` (``seg-000000.json``, ...)."""
    return f"seg-{index:06d}.json"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str, *, sync_dir: bool = True) -> None:
    """Write ``path`` so that no reader ever sees a partial file: .partial + fsync + replace + dir fsync. A disk
    without room for it raises ``DiskFull`` (naming the path and the bytes it needed) with the .partial removed
    and ``path`` as it was."""
    path = Path(path)
    tmp = path.with_name(path.name + PARTIAL)
    data = text.encode("utf-8")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # a stale .partial of an older release may be 0644
        with open(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise DiskFull(path, needed=len(data)) from None
    if sync_dir:
        _fsync_dir(path.parent)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing directory of ours is tightened to 0700."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    info = os.stat(path)
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        os.chmod(path, DIR_MODE)
    return path


def remove_tree(path: Path) -> None:
    """Remove a file or a directory tree we own, even one whose modes forbid reading it."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    try:
        os.chmod(path, DIR_MODE)
    except OSError:
        pass
    for folder, dirs, _ in os.walk(path):  # top-down: each directory is opened up before it is entered
        for name in dirs:
            try:
                os.chmod(os.path.join(folder, name), DIR_MODE)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)


def describe_error(exc: BaseException, path: Path) -> str:
    """What is wrong with the file at ``path``, in one line that names it and never quotes its contents."""
    name = Path(path).name
    if isinstance(exc, IsADirectoryError):
        return f"{name} is a directory, not a file"
    if isinstance(exc, PermissionError):
        return f"{name} cannot be read (permission denied)"
    if isinstance(exc, FileNotFoundError):
        return f"{name} is missing"
    if isinstance(exc, OSError):
        return f"{name} cannot be read ({exc.strerror or type(exc).__name__})"
    if isinstance(exc, UnicodeDecodeError):
        return f"{name} is not UTF-8 text (byte {exc.start})"
    if isinstance(exc, json.JSONDecodeError):
        problem = exc.msg[:-len(" at")] if exc.msg.endswith(" at") else exc.msg   # "Unterminated string starting at"
        return f"{name} is not valid JSON ({problem}, byte {exc.pos}: truncated or overwritten)"
    if isinstance(exc, RecursionError):
        return f"{name} is nested too deeply to be a session file"
    return f"{name} cannot be read ({type(exc).__name__})"


def jsonable(obj: Any) -> Any:
    """``json.dumps``'s ``default``: numpy / torch scalars and arrays as plain values, else a string."""
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def dumps(obj: Any) -> str:
    """Compact JSON text, with ``jsonable`` for what JSON has no type for."""
    return json.dumps(obj, separators=(",", ":"), default=jsonable)


def plain(obj: Any) -> Any:
    """``obj`` with only plain JSON values (numpy / torch scalars converted): what crosses a process boundary
    or is stored."""
    return json.loads(dumps(obj))


def read_json(path: Path) -> Any:
    """The JSON document at ``path``, opened afresh (never a handle kept from an earlier read)."""
    with open(path, "rb") as handle:
        return json.loads(handle.read())


def table(doc: dict, name: str, path: Path) -> dict:
    """TinyDB table ``name`` of a document read from ``path``: ``{doc_id: record}``."""
    records = doc.get(name, {})
    if not isinstance(records, dict):
        raise ValueError(f"{path}: table {name!r} is not an object")
    return records


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if missing) for the ``with`` block; waits for it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def lock_is_held(path: Path) -> bool:
    """Whether a process holds the exclusive flock on `path` (a writer's), probed through a read-only descriptor
    with a shared lock: a home on a read-only file system can still be read (nothing can be writing it), and
    two readers probing at once never take each other for a writer."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


PROBE_PATIENCE = (0.001, 0.002, 0.004, 0.008)   # seconds between tries: a probe's shared lock lasts microseconds


def try_lock(path: Path) -> int | None:
    """Take an exclusive flock without waiting for a holder; returns the fd (keep it open) or None if held. A
    reader's probe (`lock_is_held`) holds a shared lock for microseconds, so a refusal is tried again a few times
    over 15 ms before it is taken for a writer's: a probe that happened to sit there made a new session's writer
    fail, recovery skip a dead session, and a delete say "queued or running"."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
    except FileNotFoundError:
        return None
    for pause in (*PROBE_PATIENCE, None):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if pause is None:
                break
            time.sleep(pause)
        except OSError:
            break
    os.close(fd)
    return None
