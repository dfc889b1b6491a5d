"""The job queues: one worker thread per device runs that device's jobs one at a time. Workers exist
only for physical devices (cpu, cuda:N that validation found on this machine), however many specs name
devices.

Jobs run through ``engine.jobs`` (``validate``, ``queue_device``, ``run_job``), imported when first
needed and looked up by name, so the daemon never imports torch at start and tests can put a fake
``engine.jobs`` into ``sys.modules``. A job's events reach its ``Hub`` on the event loop.
"""
from __future__ import annotations

import asyncio
import collections
import importlib
import logging
import re
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.daemon.hub import Hub
from sessions.writer import SessionWriter

log = logging.getLogger("mmul.engine")


@dataclass
class Job:
    """One accepted run: its session's writer, the device it queues on, and how it is to stop."""

    session: str
    spec: dict
    device: str
    writer: SessionWriter
    stop: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"
    stop_reason: str = "cancelled by request"
    last_step: int | None = None


class DeviceWorker(threading.Thread):
    """One thread per device; runs its queued jobs one at a time."""

    def __init__(self, device: str, run: Callable[[Job], None]):
        super().__init__(name=f"device-{device}", daemon=True)
        self.device = device
        self.run_job = run
        self.queue: collections.deque[Job] = collections.deque()
        self.cond = threading.Condition()
        self.current: Job | None = None
        self.closing = False

    def put(self, job: Job) -> int:
        with self.cond:
            self.queue.append(job)
            self.cond.notify()
            return len(self.queue) + (1 if self.current else 0) - 1

    def remove(self, job: Job) -> bool:
        with self.cond:
            if job in self.queue:
                self.queue.remove(job)
                return True
            return False

    def close(self) -> list[Job]:
        with self.cond:
            self.closing = True
            dropped = list(self.queue)
            self.queue.clear()
            self.cond.notify()
            return dropped

    def run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.closing:
                    self.cond.wait()
                if not self.queue:
                    return
                job = self.queue.popleft()
                self.current = job
            try:
                self.run_job(job)
            finally:
                with self.cond:
                    self.current = None


class Queues:
    """Every job this engine has accepted, the hubs of those still live, and the device workers.

    Lives on the event loop (``loop``, set by the server when it starts); ``run_job`` runs in a
    worker thread and hands everything back to the loop."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.jobs: dict[str, Job] = {}
        self.hubs: dict[str, Hub] = {}
        self.workers: dict[str, DeviceWorker] = {}
        self._jobs_module: Any = None

    def jobs_module(self) -> Any:
        if self._jobs_module is None:
            self._jobs_module = importlib.import_module("engine.jobs")
        return self._jobs_module

    def enqueue(self, spec: dict, device: str, writer: SessionWriter) -> tuple[Job, int]:
        """Queue a validated spec whose session ``writer`` has created; returns it and its position."""
        job = Job(session=writer.session_id, spec=spec, device=device, writer=writer)
        self.jobs[job.session] = job
        self.hubs[job.session] = Hub(writer)
        writer.add_listener(self._listener(job.session))
        position = self._worker(device).put(job)
        log.info("session %s: queued on %s (position %d)", job.session, device, position)
        return job, position

    def stop(self, job: Job, reason: str) -> bool:
        """Ask ``job`` to stop; True when it had not started (it is then out of its queue, and the
        caller finishes it with ``finish_unstarted``)."""
        job.stop_reason = reason
        job.stop.set()
        worker = self.workers.get(job.device)
        return worker is not None and worker.remove(job)

    async def close(self) -> None:
        """Cancel every queued job, stop the running ones after their current step, join the workers."""
        for worker in list(self.workers.values()):
            for job in worker.close():
                job.stop_reason = "the engine stopped before this job started"
                await asyncio.to_thread(self.finish_unstarted, job)
            if worker.current is not None:
                worker.current.stop_reason = "the engine was stopped"
                worker.current.stop.set()
        for worker in list(self.workers.values()):
            await asyncio.to_thread(worker.join)

    def active_count(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state in ("queued", "running"))

    def devices(self) -> dict[str, dict]:
        """Per device: the session running on it and those queued behind it."""
        devices = {}
        for name, worker in self.workers.items():
            current = worker.current
            devices[name] = {"running": current.session if current else None,
                             "queued": [j.session for j in list(worker.queue)]}
        return devices

    def finish_unstarted(self, job: Job) -> None:
        job.writer.finish("cancelled", message=job.stop_reason)
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._close_hub, job.session, "cancelled")

    def run_job(self, job: Job) -> None:
        """Runs in the device's worker thread."""
        if job.stop.is_set():
            self.finish_unstarted(job)
            return
        from engine.errors import Cancelled, RunFailed, SpecError

        job.state = "running"
        writer = job.writer
        summary, message = None, None
        try:
            writer.emit("status", state="running")
            log.info("session %s: running on %s", job.session, job.device)
            result = self.jobs_module().run_job(job.spec, writer, job.stop.is_set)
            state, summary = "finished", result if isinstance(result, dict) else None
        except Cancelled as exc:
            state, message = "cancelled", job.stop_reason if job.stop.is_set() else (str(exc) or "cancelled")
        except (RunFailed, SpecError) as exc:
            state, message = "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        except BaseException as exc:  # a bug in a job must not take the engine down
            state = "failed"
            message = f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
            log.error("session %s failed:\n%s", job.session, traceback.format_exc())
        try:
            writer.finish(state, summary=summary, message=message)
        except Exception:
            log.error("session %s: could not finish:\n%s", job.session, traceback.format_exc())
        log.info("session %s: %s%s", job.session, state, f" ({message})" if message else "")
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._close_hub, job.session, state)

    def _worker(self, device: str) -> DeviceWorker:
        """The worker thread of a physical device (validation admits only devices the machine has)."""
        worker = self.workers.get(device)
        if worker is None:
            if not re.fullmatch(r"cpu|cuda:\d{1,4}", device):
                raise ValueError(f"no device {device!r}: jobs queue on cpu or cuda:N")
            worker = self.workers[device] = DeviceWorker(device, self.run_job)
            worker.start()
        return worker

    def _listener(self, session: str) -> Callable[[dict], None]:
        loop = self.loop
        assert loop is not None

        def listen(event: dict) -> None:
            loop.call_soon_threadsafe(self._publish, session, event)
        return listen

    def _publish(self, session: str, event: dict) -> None:
        hub = self.hubs.get(session)
        if hub is not None:
            hub.publish(event)
        job = self.jobs.get(session)
        if job is not None and event["kind"] == "step":
            job.last_step = event.get("step")

    def _close_hub(self, session: str, state: str) -> None:
        hub = self.hubs.pop(session, None)
        if hub is not None:
            hub.close(state)
        job = self.jobs.get(session)
        if job is not None:
            job.state = state

