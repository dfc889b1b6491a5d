"""The engine wire protocol: newline-delimited JSON over a Unix socket, and where that socket lives.

Requests (client -> engine), one JSON object per line, ``id`` is echoed in the reply::

    {"id": 1, "op": "hello", "protocol": 2, "schema": 1, "client": "mmul-workbench"}
    {"id": 2, "op": "submit", "spec": {...}, "name": "optional", "threads": "1"}
    {"id": 3, "op": "subscribe", "session": "20261125-115012-ab12", "from_seq": 0}
    {"id": 4, "op": "cancel" | "status" | "unsubscribe" | "list" | "heartbeat" | "shutdown", ...}

Replies: ``{"id": 1, "ok": true, ...}`` or ``{"id": 1, "ok": false, "error": {"code": C, "message": M}}``.
Stream messages carry no ``id`` but a ``type``::

    {"type": "events", "sub": 7, "session": S, "events": [event, ...]}   (at most EVENT_BATCH each)
    {"type": "end", "sub": 7, "session": S, "state": "finished"}      (``damaged``/``error`` + ``message``)
    {"type": "end", "sub": 7, "session": S, "state": "behind", "from_seq": N, "message": M}
                      (the client fell too far behind a live run: subscribe again from ``from_seq``)
    {"type": "heartbeat", "ts": 1764071412.5}                             (every HEARTBEAT_INTERVAL s)

``threads`` (``submit``, ``study``; optional) is the client's ``OMP_NUM_THREADS``, ``""`` when it has none: the
job's worker process runs with that setting, so that a run through the engine computes at the thread count a
headless run in the client's shell would (on the CPU a sum split over 2 threads rounds otherwise than over 1).
Left out, the job runs at the engine's own.

``hello`` must come first. A line longer than MAX_LINE, a line that is not a JSON object, an unknown
``op`` or a field of the wrong type gets an error reply and the connection stays open.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessions.paths import engine_dir, mmul_home
from sessions.schema import SCHEMA_VERSION

PROTOCOL_VERSION = 2           # 2: `threads` on submit and study
SUPPORTED_PROTOCOLS = (1, 2)   # what the engine takes: a protocol-1 client sends no threads (its jobs: the engine's)
MAX_LINE = 1 << 20            # requests longer than this get a "too_long" error reply
CLIENT_LINE_LIMIT = 64 << 20  # the client's StreamReader limit (event batches can be large)
EVENT_BATCH = 256             # events per stream message when replaying a backlog
HEARTBEAT_INTERVAL = 2.0      # the engine sends a heartbeat to every connection this often
SOCKET_PATH_MAX = 100         # bytes; sun_path holds 108 on Linux, 104 on macOS

THREADS = re.compile(r"[0-9][0-9,]{0,31}|")   # OMP_NUM_THREADS: a count, or OpenMP's list of counts per level

# op -> {field: (types, required)}
_STR = (str,)
_INT = (int,)
OPS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "hello": {"protocol": (_INT, True), "schema": (_INT, False), "client": (_STR, False)},
    "submit": {"spec": ((dict,), True), "name": ((str, type(None)), False), "threads": (_STR, False)},
    "cancel": {"session": (_STR, True)},
    "list": {"state": ((str, type(None)), False)},
    "status": {"session": ((str, type(None)), False)},
    "subscribe": {"session": (_STR, True), "from_seq": (_INT, False)},
    "unsubscribe": {"sub": (_INT, True)},
    "heartbeat": {},
    "shutdown": {},
    "study": {"study": (_STR, True), "spec": ((dict,), True), "cells": ((list,), True), "threads": (_STR, False)},
    "study_status": {"study": (_STR, True), "after": (_INT, False)},
}

# error codes
BAD_JSON = "bad_json"
TOO_LONG = "too_long"
BAD_REQUEST = "bad_request"
UNKNOWN_OP = "unknown_op"
HELLO_REQUIRED = "hello_required"
VERSION_MISMATCH = "version_mismatch"
BAD_SPEC = "bad_spec"
UNKNOWN_SESSION = "unknown_session"
NOT_CANCELLABLE = "not_cancellable"
SHUTTING_DOWN = "shutting_down"
PERMISSION_DENIED = "permission_denied"
DAMAGED = "damaged"            # the session's files cannot be read (`sessions check --repair`)
IDLE = "idle"                  # the connection sent nothing for too long and is closed
BUSY = "busy"                  # too many connections: this one is closed
LIMIT = "limit"                # a bound on one connection was reached (subscriptions per connection)
STALLED = "stalled"            # the client stopped reading what the engine sends: the connection is cut
BEHIND = "behind"              # an ``end`` state: the subscriber fell behind a live run (resubscribe)
UNKNOWN_STUDY = "unknown_study"  # the engine runs no study of that id (since it started)
INTERNAL = "internal"


class ProtocolError(ValueError):
    """A request the engine cannot accept; ``code`` is one of the error codes above."""

    def __init__(self, code: str, message: str, request_id: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def _default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def encode(message: dict) -> bytes:
    """One message as one line (compact JSON + newline)."""
    return json.dumps(message, separators=(",", ":"), default=_default).encode("utf-8") + b"\n"


def decode(line: bytes | str) -> dict:
    """Parse one line into a dict; ProtocolError(bad_json) when it is not a JSON object."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError(BAD_JSON, f"line is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(message, dict):
        raise ProtocolError(BAD_JSON, "a message must be a JSON object")
    return message


def parse_request(message: dict) -> tuple[Any, str, dict]:
    """Check a request against OPS; returns (id, op, fields) or raises ProtocolError."""
    request_id = message.get("id")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, (int, str))):
        raise ProtocolError(BAD_REQUEST, "'id' must be an integer or a string", None)
    op = message.get("op")
    if not isinstance(op, str):
        raise ProtocolError(BAD_REQUEST, "a request needs a string 'op'", request_id)
    if op not in OPS:
        raise ProtocolError(UNKNOWN_OP, f"unknown op {op!r}; expected one of {', '.join(OPS)}", request_id)
    fields: dict[str, Any] = {}
    for name, (types, required) in OPS[op].items():
        if name not in message:
            if required:
                raise ProtocolError(BAD_REQUEST, f"{op} needs field {name!r}", request_id)
            continue
        value = message[name]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ProtocolError(BAD_REQUEST, f"{op}: field {name!r} must be {want}", request_id)
        fields[name] = value
    if not THREADS.fullmatch(fields.get("threads", "")):
        raise ProtocolError(BAD_REQUEST, f"{op}: 'threads' is the client's OMP_NUM_THREADS, {fields['threads'][:40]!r} is "
                            "not a thread count (set it to a number, or unset it)", request_id)
    if op == "subscribe" and fields.get("from_seq", 0) < 0:
        raise ProtocolError(BAD_REQUEST, "subscribe: 'from_seq' must be >= 0", request_id)
    return request_id, op, fields


def ok(request_id: Any, **fields: Any) -> dict:
    return {"id": request_id, "ok": True, **fields}


def error(request_id: Any, code: str, message: str, field: str | None = None) -> dict:
    """An error reply; `field` names the spec entry a bad_spec is about (for forms), when one is."""
    body = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return {"id": request_id, "ok": False, "error": body}


def hello_request(request_id: Any = 0, client: str = "mmul-workbench") -> dict:
    return {"id": request_id, "op": "hello", "protocol": PROTOCOL_VERSION, "schema": SCHEMA_VERSION,
            "client": client}


# --------------------------------------------------------------------------------------------------
# where the engine's files live


@dataclass(frozen=True)
class EnginePaths:
    """The engine's files: ``$MMUL_HOME/engine/{engine.lock,engine.pid,engine.log}`` and the socket.

    The socket lives in ``$MMUL_HOME/engine/run/`` (mode 0700; socket 0600). A Unix socket path cannot
    exceed ~104-108 bytes, so when that path would be longer than SOCKET_PATH_MAX the socket goes to
    ``/tmp/mmul-<uid>-<12 hex of sha256(home)>/engine.sock`` instead (same modes, owner checked).
    """

    home: Path
    dir: Path
    lock: Path
    pid: Path
    log: Path
    socket_dir: Path
    socket: Path


def engine_paths(home: str | os.PathLike | None = None) -> EnginePaths:
    home_path = Path(os.path.abspath(Path(home).expanduser() if home is not None else mmul_home()))
    edir = home_path / "engine" if home is not None else Path(os.path.abspath(engine_dir()))
    socket_dir = edir / "run"
    sock = socket_dir / "engine.sock"
    if len(os.fsencode(str(sock))) > SOCKET_PATH_MAX:
        digest = hashlib.sha256(os.fsencode(str(home_path))).hexdigest()[:12]
        socket_dir = Path("/tmp") / f"mmul-{os.getuid()}-{digest}"
        sock = socket_dir / "engine.sock"
    return EnginePaths(home=home_path, dir=edir, lock=edir / "engine.lock", pid=edir / "engine.pid",
                       log=edir / "engine.log", socket_dir=socket_dir, socket=sock)


def private_dir(path: Path) -> Path:
    """Create ``path`` as a 0700 directory owned by us, or refuse one that someone else controls."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"{path} is not a directory; remove it and try again")
    if info.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {info.st_uid}, not to you; remove it or set MMUL_HOME")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path
