"""What the session store raises on purpose, each with a one-line message."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path


class UnknownSession(KeyError):
    """No session with that id (one-line message)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class AmbiguousSession(UnknownSession):
    """Several sessions match a reference: `candidates` (their ids and names, in words) for a command that says
    what to give in its own terms (`sessions delete` takes only a whole id)."""

    def __init__(self, message: str, candidates: str):
        super().__init__(message)
        self.candidates = candidates


class SessionBusy(RuntimeError):
    """The session is queued or running in a live process (cannot be deleted or reopened)."""


class SessionDamaged(ValueError):
    """A session whose files cannot be read; ``reason`` names the file and what is wrong with it (never
    quoting its contents)."""

    def __init__(self, session_id: str, reason: str):
        super().__init__(f"session {session_id} is damaged: {reason}; `mmul-workbench sessions check --repair` "
                         "moves it aside (`sessions delete` removes it)")
        self.session_id = session_id
        self.reason = reason


def human_bytes(count: int) -> str:
    """A byte count for people: 512 B, 12.3 kB, 4.1 GB (powers of 1000, as `df -H`)."""
    size = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{count} B"


def is_disk_full(exc: BaseException) -> bool:
    """True for a write that found no space: ENOSPC or EDQUOT, or a library's error that only says so in its
    text (safetensors' SafetensorError wraps the Rust io error: `StorageFull`, "No space left on device")."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "StorageFull" in text or "Disk quota exceeded" in text


def free_bytes(path: Path) -> int | None:
    """The space free on the disk that holds `path` (its nearest existing folder); None when unknown."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


class DiskFull(OSError):
    """A write that found no space left on its disk: one line naming the path and the space it needed (or, when
    that is not known, what it wrote before the disk filled). The write's partial file is already removed."""

    def __init__(self, path: Path | str, needed: int | None = None, written: int | None = None):
        self.path, self.needed, self.free = Path(path), needed, free_bytes(Path(path))
        if needed is not None:
            room = f"it needs {human_bytes(needed)}"
        elif written:
            room = f"it needs more than the {human_bytes(written)} written before the disk filled"
        else:
            room = "no space left"
        free = f", {human_bytes(self.free)} free there" if self.free is not None else ""
        self.message = f"disk full writing {self.path}: {room}{free}"
        super().__init__(errno.ENOSPC, self.message)

    def __str__(self) -> str:
        return self.message
