"""The daemon's child processes (``Child``), and among them a device's worker process (``JobProcess``):
the child that runs the engine's job code (``python -m engine.execution.worker``) so that a segfault, an ``os._exit``, an OOM kill or a CUDA error in a job
ends that job's session as ``failed`` with the cause, and never the daemon.

One child serves one device's queue and is kept between jobs (torch and the model code are imported
once); after a job that failed or crashed, or before one whose client computes at another thread count (its
``OMP_NUM_THREADS``, which the child is started with), the next job gets a fresh child. The daemon stays the only
writer of session files: the child sends each event as one JSON line on its own pipe, and the daemon's
thread for that device hands it to the session's writer. Lines the other way (the child's stdin):
``{"op": "run", "session", "spec"}`` and ``{"op": "stop"}``; closing stdin ends the child.

Pure stdlib: the daemon never imports torch.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("mmul.engine")

# What starts a worker; tests that run the daemon on a fake ``engine.jobs`` point it at a launcher that
# installs the fake into the child first.
WORKER_COMMAND: list[str] = [sys.executable, "-m", "engine.execution.worker"]
STDERR_TAIL = 20


@dataclass
class Outcome:
    state: str                  # finished | failed | cancelled
    summary: dict | None = None
    message: str | None = None
    crashed: bool = False       # the child died without saying how the job ended


class Child:
    """A child process of the daemon that reads JSON lines on its stdin and writes JSON lines on its own
    events pipe (``--events-fd``); its stdout and stderr go to the engine log, the last lines kept to
    say why it died."""

    def __init__(self, command: list[str], label: str, settings: dict[str, str | None] | None = None):
        """``settings``: environment variables that differ from the daemon's (None: unset)."""
        self.label = label
        read_fd, write_fd = os.pipe()
        env = {**os.environ, "PYTHONFAULTHANDLER": "1", "PYTHONUNBUFFERED": "1"}
        for key, value in (settings or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        try:
            self.process = subprocess.Popen(
                [*command, "--events-fd", str(write_fd)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(write_fd,), env=env, start_new_session=True)
        finally:
            os.close(write_fd)
        self.events = os.fdopen(read_fd, "rb")
        self._write_lock = threading.Lock()
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._relay = threading.Thread(target=self._relay_output, name=f"log-{label}", daemon=True)
        self._relay.start()
        log.info("%s started (pid %d)", label, self.process.pid)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def read(self) -> dict | None:
        """The child's next message; None once its pipe has ended (it exited or died)."""
        try:
            return json.loads(self.events.readline())
        except ValueError:  # end of the pipe, or a line cut short by the child's death
            return None

    def close(self, timeout: float = 10.0) -> None:
        """End the child: stdin closed (it exits when idle, or stops what it runs and exits), then killed
        if it has not gone within ``timeout``."""
        with self._write_lock:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.events.close()

    def kill(self) -> None:
        try:
            self.process.kill()
        except ProcessLookupError:
            pass
        self.process.wait()

    def send(self, message: dict) -> bool:
        with self._write_lock:
            try:
                self.process.stdin.write((json.dumps(message) + "\n").encode())
                self.process.stdin.flush()
                return True
            except (OSError, ValueError):  # the child is gone (or its stdin was closed by close())
                return False

    def death(self) -> str:
        """Why the child ended, in words, with its last line of output."""
        code = self.process.wait()
        self._relay.join(timeout=5)
        return f"{crash_cause(code)}{self._last_words()}"

    def _last_words(self) -> str:
        lines = [line for line in self.tail if line.strip()]
        fatal = next((line for line in lines if line.startswith("Fatal Python error")), None)
        last = fatal or (lines[-1] if lines else None)
        return f"; its last output: {last.strip()[:200]}" if last else ""

    def _relay_output(self) -> None:
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.tail.append(line)
            print(f"[{self.label}] {line}", file=sys.stderr, flush=True)


class JobProcess(Child):
    """One live worker child for a device. ``run`` is called from the device's thread; ``stop`` from any."""

    def __init__(self, device: str, threads: str | None = None):
        """``threads``: the OMP_NUM_THREADS its jobs compute at ("": none, torch's default; None: the daemon's)."""
        settings = {} if threads is None else {"OMP_NUM_THREADS": threads or None}
        super().__init__([*WORKER_COMMAND, "--device", device], f"worker {device}", settings)
        self.device, self.threads = device, threads

    def run(self, session: str, spec: dict, emit: Callable[..., object], stopped: Callable[[], bool]) -> Outcome:
        """Run one job in the child, passing each event to ``emit(kind, **fields)``; returns how it ended.
        A child that dies mid-job gives a ``failed`` outcome naming the cause. ``stopped`` is read once the
        job is sent, so a stop asked while it was being handed over still reaches it."""
        if not self.send({"op": "run", "session": session, "spec": spec}):
            return self._crashed()
        if stopped():
            self.stop()
        while (message := self.read()) is not None:
            if message["op"] == "event":
                emit(message["kind"], **message["fields"])
            elif message["op"] == "done":
                return Outcome(message["state"], message.get("summary"), message.get("message"))
        return self._crashed()

    def stop(self) -> None:
        """Ask the running job to stop after its current step."""
        self.send({"op": "stop"})

    def _crashed(self) -> Outcome:
        return Outcome("failed", message=f"the job's worker process {self.death()}", crashed=True)


def crash_cause(returncode: int) -> str:
    """What the child's exit status says, in words (a negative code is the signal that ended it)."""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        why = {"SIGKILL": " (the kernel's out-of-memory killer sends this; so does kill -9)",
               "SIGSEGV": " (a segmentation fault)", "SIGABRT": " (an abort, e.g. a failed CUDA assertion)"}
        return f"was killed by {name}{why.get(name, '')}"
    return f"exited with status {returncode} before the job ended"
