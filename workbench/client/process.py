"""The engine daemon as a process: start it detached (``python -m engine.daemon`` in a new session,
so a hang-up never reaches it), stop it, say whether it runs, and clean a dead one's files.

A lock file held by the running daemon is the truth about "running"; socket and pid files left by
a dead one are removed only when nobody holds the lock.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sessions import protocol as P
from sessions.files import lock_is_held
from workbench.client.errors import EngineDisconnected, EngineNotRunning, EngineOtherVersion, EngineStartError, strip
from workbench.client.sync import Home, call, ping

LOG_ROTATE_BYTES = 8 << 20
STATUS_TIMEOUT = 5.0     # seconds an engine has to answer `engine status`
SHUTDOWN_TIMEOUT = 10.0  # ... and `engine stop`, before it is taken for stuck
REPO_ROOT = str(Path(__file__).resolve().parents[2])


def lock_held(paths: P.EnginePaths) -> bool:
    """Whether an engine holds its lock: the sessions' read-only probe, so a read-only home can be asked too."""
    try:
        return lock_is_held(paths.lock)
    except FileNotFoundError:
        return False


def lock_holder(paths: P.EnginePaths) -> int | None:
    """The pid of the process that holds the engine's lock (Linux's /proc/locks, matched by the lock file's
    inode), when it is also the pid the engine wrote to its pid file; else None. An engine that stops answering
    is killed by this pid only: a pid file alone, stale or written by hand, never names what is killed."""
    try:
        inode = paths.lock.stat().st_ino
        written = int(paths.pid.read_text().split()[0])
        locks = Path("/proc/locks").read_text()
    except (OSError, ValueError, IndexError):
        return None
    for line in locks.splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode) \
                and fields[4] == str(written):
            return written
    return None


def clean_stale(paths: P.EnginePaths) -> bool:
    """Remove a dead engine's socket and pid file (only when no engine holds the lock)."""
    if lock_held(paths):
        return False
    cleaned = False
    for path in (paths.socket, paths.pid):
        try:
            path.unlink()
            cleaned = True
        except FileNotFoundError:
            pass
    return cleaned


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def engine_info(paths: P.EnginePaths, hello: dict, started: bool) -> dict:
    """What `start_engine` says of the engine that answered ``hello``."""
    return {"started": started, "pid": hello.get("pid"), "socket": str(paths.socket), "log": str(paths.log),
            "home": str(paths.home), "damaged": hello.get("damaged") or []}


def start_engine(home: Home = None, timeout: float = 30.0, command: list[str] | None = None) -> dict:
    """Start the daemon unless one is running; wait until it answers.

    Returns ``{"started": bool, "pid", "socket", "log", "home", "damaged"}`` (``damaged``: the ids of
    sessions the engine found damaged at start and skipped). Raises EngineStartError (naming
    the log file) when it does not come up within ``timeout`` seconds. ``command`` replaces
    ``[sys.executable, "-m", "engine.daemon"]`` (tests use it to inject a job module)."""
    paths = P.engine_paths(home)
    hello = ping(home)
    if hello is not None:
        return engine_info(paths, hello, started=False)
    P.private_dir(paths.dir)
    proc = None
    if not lock_held(paths):
        clean_stale(paths)
        if paths.log.exists() and paths.log.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(paths.log, paths.log.with_name("engine.log.1"))
        env = dict(os.environ)
        env["MMUL_HOME"] = str(paths.home)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        argv = command or [sys.executable, "-m", "engine.daemon"]
        with open(paths.log, "ab") as log_file:
            os.chmod(paths.log, 0o600)
            proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, stdout=log_file,
                                    stderr=log_file, cwd=str(paths.home), env=env, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hello = ping(home, timeout=1.0)
        if hello is not None:
            return engine_info(paths, hello, started=proc is not None)
        if proc is not None and proc.poll() not in (None, 0):
            raise EngineStartError(f"the engine exited with code {proc.returncode} while starting; "
                                   f"see {paths.log}: {log_tail(paths.log, 3)}", "start_failed")
        time.sleep(0.05)
    raise EngineStartError(f"the engine did not answer on {paths.socket} within {timeout:.0f} s; "
                           f"see {paths.log}", "start_failed")


def stop_engine(home: Home = None, timeout: float = 60.0) -> dict:
    """Ask the engine to stop (running jobs end their current step and are marked cancelled) and wait
    for it to exit. After ``timeout`` seconds it is killed (its sessions show ``interrupted`` on the
    next start), and so are its worker processes (a stopped or stuck one outlived it). Returns ``{"was_running",
    "pid", "cancelled", "killed"}``."""
    paths = P.engine_paths(home)
    try:
        reply = call(paths, "shutdown", timeout=SHUTDOWN_TIMEOUT)
    except EngineNotRunning:
        clean_stale(paths)
        return {"was_running": False, "pid": None, "cancelled": [], "killed": False}
    except (EngineDisconnected, EngineOtherVersion):
        # silent (it holds its lock and does not answer: stopped, stuck), or of another protocol (started before an
        # upgrade, it refuses this client's hello): SIGTERM, which it takes as a shutdown; killed after `timeout`
        pid = lock_holder(paths)
        if pid is None:
            if not lock_held(paths):   # it was on its way out, and is gone now
                clean_stale(paths)
                return {"was_running": True, "pid": None, "cancelled": [], "killed": False}
            raise
        reply = {"pid": pid}
        try:
            os.kill(pid, 15)
        except ProcessLookupError:   # it ended between the look and the signal
            pass
    pid = reply.get("pid")
    cancelled = list(reply.get("running", [])) + list(reply.get("queued", []))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not lock_held(paths):
            return {"was_running": True, "pid": pid, "cancelled": cancelled, "killed": False}
        time.sleep(0.05)
    for victim in ([pid] if pid else []) + list(reply.get("workers", [])):  # a stuck worker goes with its engine
        try:
            os.kill(victim, 9)
        except (ProcessLookupError, PermissionError):
            pass
    if pid:
        time.sleep(0.2)
    clean_stale(paths)
    return {"was_running": True, "pid": pid, "cancelled": cancelled, "killed": True}


def cancel_run(session: str, home: Home = None) -> dict:
    """Ask the engine to cancel one queued or running session: ``{"session", "state"}``, state ``cancelled`` (it
    had not started) or ``cancelling``; EngineNotRunning, or EngineError naming why it cannot be."""
    return strip(call(P.engine_paths(home), "cancel", session=session))


def engine_status(home: Home = None) -> dict:
    """``{"running": False, ...}`` or the engine's status reply with ``running: True``."""
    paths = P.engine_paths(home)
    try:
        reply = call(paths, "status", timeout=STATUS_TIMEOUT)
    except EngineNotRunning:
        return {"running": False, "home": str(paths.home), "socket": str(paths.socket), "log": str(paths.log),
                "stale": paths.pid.exists() or paths.socket.exists()}
    except (EngineDisconnected, EngineOtherVersion) as error:
        # alive (it holds the lock) but silent (stopped with SIGSTOP, or stuck), or of another version
        other = {"other_version": str(error)} if isinstance(error, EngineOtherVersion) else {}
        if not other and not lock_held(paths):   # no: it closed the connection on its way out
            return {"running": False, "home": str(paths.home), "socket": str(paths.socket), "log": str(paths.log),
                    "stale": paths.pid.exists() or paths.socket.exists()}
        return {"running": True, "answering": False, "pid": lock_holder(paths), "home": str(paths.home),
                "socket": str(paths.socket), "log": str(paths.log), **other}
    return {"running": True, "answering": True, **strip(reply)}
