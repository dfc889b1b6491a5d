"""A run on a Ray cluster node: the task body that ``engine.execution.cluster`` sends to Ray, a streaming
generator that yields the job's events as they happen and then the ``done`` message (the same messages
a local worker process writes on its pipe), so the daemon writes the session as for a local run.

The job runs in a thread of the Ray worker; the generator hands its events on. A cancel from the daemon
(``ray.cancel``) arrives here as KeyboardInterrupt: the job is asked to stop after its current step and
the generator goes on until it has.
"""
from __future__ import annotations

import importlib
import os
import queue
import threading
from collections.abc import Iterator

from engine.execution.worker import EventSender, run_one
from sessions.files import plain

ARTIFACTS_ENV = "MMUL_ARTIFACTS"


def run_streaming(spec: dict, session: str, artifacts: str) -> Iterator[dict]:
    os.environ[ARTIFACTS_ENV] = artifacts  # the original-model cache and checkpoints: a path all nodes share
    jobs = importlib.import_module("engine.jobs")
    outbox: queue.Queue[dict] = queue.Queue()
    stop = threading.Event()
    writer = EventSender(lambda message: outbox.put(plain(message)), session)  # plain values: Ray pickles them
    worker = threading.Thread(target=lambda: outbox.put(plain(run_one(jobs, spec, writer, stop.is_set))),
                              name=f"job-{session}", daemon=True)
    worker.start()
    while True:
        try:
            message = outbox.get()
        except KeyboardInterrupt:  # ray.cancel: stop after the current step, then report how it ended
            stop.set()
            continue
        yield message
        if message["op"] == "done":
            return
