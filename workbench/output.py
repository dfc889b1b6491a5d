"""stdout is data, stderr is for people: exit codes, one-line errors, progress, the JSON document."""
from __future__ import annotations

import errno
import json
import math
import os
import sys
import time
from enum import IntEnum
from pathlib import Path

from sessions.numbers import fmt


try:  # typer 0.2x vendors click; before, it used click's own exceptions (the parser's refusals)
    from typer._click import exceptions as parser_errors
except ImportError:  # pragma: no cover - the older typer's path
    from click import exceptions as parser_errors


UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)   # a home on a read-only mount, or one not the user's


def unwritable_home(error: OSError) -> str | None:
    """The one line for a write refused under the workbench's home or its cache (a read-only mount), or None for
    any other error, which is not the home's to explain."""
    from sessions.paths import cache_dir, mmul_home

    if error.errno not in UNWRITABLE or not error.filename:
        return None
    path = Path(os.fsdecode(error.filename)).absolute()
    if not any(path == root or root in path.parents for root in (mmul_home().absolute(), cache_dir().absolute())):
        return None
    return (f"cannot write {path} ({error.strerror}); set MMUL_HOME to a directory you can write (reading "
            "sessions needs no write access)")


def home_folders() -> list[Path]:
    """The folders the workbench keeps under its home: sessions, studies, engine (the model cache is apart: $MMUL_CACHE
    may put it elsewhere)."""
    from sessions.paths import engine_dir, sessions_dir
    from sessions.study import studies_dir

    return [sessions_dir(), studies_dir(), engine_dir()]


def store_folder_holding(path: Path) -> Path | None:
    """The workbench's own folder (sessions, studies, engine, the model cache) that `path` lies in, if any."""
    from sessions.paths import cache_dir

    resolved = Path(os.path.realpath(path))
    cache = cache_dir()
    # $MMUL_CACHE may name a wide shared folder: there only the folders the workbench made in it are its own
    caches = [cache] if "MMUL_CACHE" not in os.environ else \
        [child for child in (cache.iterdir() if cache.is_dir() else ()) if child.is_dir()]
    for folder in (*home_folders(), *caches):
        root = Path(os.path.realpath(folder))
        if resolved == root or root in resolved.parents:
            return folder
    return None


def output_file(path: Path, flag: str = "--out", ours=None, force: bool = False) -> Path:
    """``path`` as the regular file a command writes (replaced atomically), or one line and exit 2:
    - a path in the workbench's store is refused (`sessions export --out` onto a session's own file replaced its
      events with the export, for good);
    - a symbolic link is followed to its file; anything else already there (a device such as /dev/stdout, a pipe,
      a socket) is refused: the atomic write replaces what it finds, so an export given /dev/null as root
      replaced the device;
    - a file already there is replaced only when ``ours(first bytes)`` says this command wrote it (an earlier
      export or report), or with ``--force``: an export given an unrelated file's name overwrote it."""
    if (folder := store_folder_holding(path)) is not None:
        fail(f"{flag} {path} is inside the workbench's store ({folder}), whose files the write would replace; "
             "choose a path outside it")
    if not os.path.lexists(path):
        return path
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():
        fail(f"{flag} {path} is not a regular file (a device, a pipe or a socket), which the write would replace; "
             "give a file path")
    if ours is not None and not force and target.exists():
        try:
            with open(target, "rb") as existing:
                head = existing.read(65536)
        except OSError:
            head = b""
        if not ours(head):
            fail(f"{flag} {path} already holds a file this command did not write; give another path, or add "
                 "--force to replace it")
    return target


def missing_parent(path: Path, flag: str = "--out") -> None:
    """One line and exit 2 when the folder `path` would be written in is missing or is a file: a typo in a path
    made `sessions export` build the whole tree (at / as root), where `sessions report` refused it."""
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        fail(f"{flag} {path}: {parent} is a file, not a directory; choose another path")
    if not parent.is_dir():
        fail(f"{flag} {path}: directory {parent} does not exist; create it or choose another path")


# an OSError no command caught: the disk or the device failed the write (the run's fault, exit 1), or the path
# itself cannot be (bad input, exit 2)
DEVICE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS)


def os_error_line(error: OSError) -> tuple[str, int]:
    """(the one line, the exit code) for an OSError that reached the command line: the path and what is wrong
    with it, and what to do; the traceback only under MMUL_DEBUG."""
    if (line := unwritable_home(error)) is not None:
        return line, int(Exit.BAD_INPUT)
    path = f"{os.fsdecode(error.filename)}: " if error.filename else ""
    what = error.strerror or type(error).__name__
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"{path}{what}; free some space there (or set MMUL_HOME / --cache-dir to another disk) and run it "
                "again (MMUL_DEBUG=1 for a traceback)", int(Exit.RUN_FAILED))
    code = Exit.RUN_FAILED if error.errno in DEVICE_ERRORS else Exit.BAD_INPUT
    from sessions.paths import mmul_home

    home = mmul_home().absolute()
    filename = Path(os.fsdecode(error.filename)).absolute() if error.filename else None
    if filename is not None and (filename == home or home in filename.parents):
        from engine.spec.inputs import blocking_file

        in_the_way = blocking_file(filename) if error.errno in (errno.ENOTDIR, errno.EEXIST) else None
        if in_the_way is not None and in_the_way != home and home in in_the_way.parents:   # `engine/run` a file
            return (f"{path}{what}: {in_the_way} is a file where the workbench keeps a folder; move it aside (or set "
                    "MMUL_HOME to another directory)", int(code))
        return (f"{path}{what}: the workbench's home {home} (MMUL_HOME) cannot be made or used there; set MMUL_HOME "
                "to a directory you can write (made if missing)", int(code))
    if error.errno in (errno.EACCES, errno.EPERM):   # outside the home: a path the user gave
        return f"{path}{what}; choose a path you can write (MMUL_DEBUG=1 for a traceback)", int(code)
    return f"{path}{what} (MMUL_DEBUG=1 for a traceback)", int(code)


class Exit(IntEnum):
    OK = 0
    RUN_FAILED = 1
    BAD_INPUT = 2
    INTERRUPTED = 130


def fail(message: str, code: Exit = Exit.BAD_INPUT) -> "NoReturn":  # noqa: F821
    """One line on stderr and the exit code; the traceback only with MMUL_DEBUG=1."""
    import typer

    if os.environ.get("MMUL_DEBUG") and sys.exc_info()[0] is not None:
        import traceback

        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(int(code))


def finite(value):
    """``value`` with every NaN or infinity as None: JSON has no NaN (RFC 8259), and a strict parser (jq, JSON.parse,
    Python's with parse_constant) refused `sessions show --json` of a session holding a NaN loss."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def json_text(document) -> str:
    """A command's --json document: strict JSON (non-finite numbers as null), indented."""
    return json.dumps(finite(document), indent=2, default=str, allow_nan=False)


def print_json(document) -> None:
    sys.stdout.write(json_text(document) + "\n")
    sys.stdout.flush()


# what an evaluation's progress line shows: the task's headlines (people data: forget and retain accuracy)
PROGRESS_METRICS = ("df_dr_auc", "test.r_mean", "test.accuracy", "forget.image", "forget.text", "retain.image",
                    "retain.text")


class Progress:
    """Shows a run's events on stderr: a rich bar on a terminal, throttled plain lines otherwise."""

    PLAIN_INTERVAL = 2.0

    def __init__(self, label: str, quiet: bool = False, requests: int = 1):
        """`requests`: the run's K; with more than one, its phase and eval lines say which request they are of."""
        self.label, self.quiet, self.requests = label, quiet, requests
        self.interactive = sys.stderr.isatty() and not quiet
        self._last_plain = 0.0
        self._bar = None
        self._task = None
        self._phase = ""

    def __enter__(self):
        if self.interactive:
            from rich.console import Console
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(), console=Console(stderr=True), transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=None, status="")
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()

    def event(self, kind: str, fields: dict) -> None:
        if self.quiet:
            return
        if kind == "phase":
            which = self.of_request(fields)
            self._phase = fields.get("name", "") + (f" ({which})" if which else "")
            self._say(f"{self.label}: {self._phase}", force=True)
        elif kind == "step":
            terms = " ".join(f"{k}={v:.4g}" for k, v in fields.get("losses", {}).items())
            planned = f"/{fields['of']}" if isinstance(fields.get("of"), int) else ""
            self._say(f"{self.label}: {fields.get('phase')} step {fields.get('step')}{planned} {terms}")
        elif kind == "eval" and fields.get("split") != "history":  # a history row is drawn, not printed
            m = fields.get("metrics", {})
            summary = ", ".join(f"{k}={fmt(m[k], k)}" for k in PROGRESS_METRICS if k in m)
            which = self.of_request(fields)
            self._say(f"{self.label}: eval ({fields.get('split')}{', ' + which if which else ''}) {summary}", force=True)
        elif kind == "log" and fields.get("level") in ("warning", "error"):
            self._say(f"{self.label}: {fields.get('message')}", force=True)

    def of_request(self, fields: dict) -> str:
        number = fields.get("request")
        return f"request {number} of {self.requests}" if number is not None and self.requests > 1 else ""

    def _say(self, line: str, force: bool = False) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.label} {self._phase}", status=line[len(self.label) + 2 :][:70])
            return
        now = time.monotonic()
        if force or now - self._last_plain >= self.PLAIN_INTERVAL:
            self._last_plain = now
            print(line, file=sys.stderr, flush=True)
