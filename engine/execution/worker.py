"""A device's worker process: runs the engine's jobs (``engine.jobs.run_job``) one at a time for the
daemon (``engine.execution.job_process`` starts it and reads what it says).

Reads ``{"op": "run", ...}`` / ``{"op": "stop"}`` lines on stdin; writes one JSON line per event and a
final ``{"op": "done", "state", "summary", "message"}`` per job to the events pipe (``--events-fd``).
Stdin closing means the daemon is gone or done with this worker: the running job is stopped and the
process exits. It writes no session files itself.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import queue
import sys
import threading
import traceback
from typing import Callable

from sessions.files import jsonable
from sessions.schema import check_fields

log = logging.getLogger("mmul.engine")


class EventSender:
    """The ``writer`` a job gets away from the daemon: checks each event as the session writer will, and
    hands it to ``send`` (a pipe to the daemon, or a Ray task's stream)."""

    def __init__(self, send: Callable[[dict], None], session_id: str):
        self.send = send
        self.session_id = session_id

    def emit(self, kind: str, **fields) -> dict:
        check_fields(kind, fields)
        self.send({"op": "event", "kind": kind, "fields": fields})
        return {"kind": kind, **fields}


def write_line(stream, message: dict) -> None:
    stream.write(json.dumps(message, default=jsonable).encode() + b"\n")
    stream.flush()


def read_commands(inbox: "queue.Queue[dict | None]") -> None:
    """Stdin lines, in order: each "run" gets its own stop flag, which a later "stop" sets at once (while
    the job runs). EOF stops the running job and ends the process."""
    current = threading.Event()
    for line in sys.stdin.buffer:
        message = json.loads(line)
        if message.get("op") == "stop":
            current.set()
        else:
            current = threading.Event()
            inbox.put({**message, "stop": current})
    current.set()
    inbox.put(None)


def run_one(jobs, spec: dict, writer: EventSender, should_stop: Callable[[], bool]) -> dict:
    """Run one job; the ``done`` message saying how it ended (its state, result or one-line message)."""
    from engine.errors import Cancelled, RunFailed, SpecError
    from sessions.errors import DiskFull

    summary, text = None, None
    try:
        result = jobs.run_job(spec, writer, should_stop)
        state, summary = "finished", result if isinstance(result, dict) else None
    except Cancelled as exc:
        state, text = "cancelled", str(exc) or "cancelled"
    except (RunFailed, SpecError, DiskFull) as exc:  # DiskFull: the path and the space it needed, in one line
        state, text = "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    except BaseException as exc:  # reported as the session's failure; the daemon replaces this worker
        state = "failed"
        text = f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
        log.error("session %s failed:\n%s", writer.session_id, traceback.format_exc())
    return {"op": "done", "state": state, "summary": summary, "message": text}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.execution.worker")
    parser.add_argument("--events-fd", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    events = os.fdopen(args.events_fd, "wb")
    jobs = importlib.import_module("engine.jobs")
    inbox: queue.Queue[dict | None] = queue.Queue()
    threading.Thread(target=read_commands, args=(inbox,), daemon=True).start()
    while (message := inbox.get()) is not None:
        writer = EventSender(lambda line: write_line(events, line), message["session"])
        done = run_one(jobs, message["spec"], writer, message["stop"].is_set)
        try:
            write_line(events, done)
        except BrokenPipeError:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
