"""The job queues: one thread per device hands that device's jobs, one at a time, to the device's worker
process (``job_process.JobProcess``), which runs the job code; the thread writes the events the worker
sends to the session. Queues exist only for physical devices (cpu, cuda:N that validation found on this
machine), however many specs name devices.

Specs are checked here through ``engine.jobs`` (``validate``, ``queue_device``), imported when first
needed and looked up by name, so tests can put a fake ``engine.jobs`` into ``sys.modules`` (and into the
worker, through ``job_process.WORKER_COMMAND``). Neither imports torch: the daemon never does. A job's
events reach its hub (the daemon's event fan-out, ``engine.daemon.hub.Hub``, handed in as ``make_hub`` so
that nothing here imports the daemon) on the event loop.
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
from typing import Any, Protocol

from engine.execution.cluster import RayBridge
from engine.execution.job_process import JobProcess, Outcome
from sessions.errors import DiskFull
from sessions.resuming import drop_points_of_finished
from sessions.writer import SessionWriter

log = logging.getLogger("mmul.engine")


class EventHub(Protocol):
    """What the queues need of a session's event fan-out (``engine.daemon.hub.Hub``)."""

    def publish(self, event: dict) -> None: ...

    def close(self, state: str) -> None: ...


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
    halt: Callable[[], None] | None = None  # passes a stop on to where it runs (its worker, its Ray task)
    threads: str | None = None  # the client's OMP_NUM_THREADS ("": none), its worker's; None: the engine's

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self.stop.set()
        if self.halt is not None:
            self.halt()


class DeviceWorker(threading.Thread):
    """One thread per device; runs its queued jobs one at a time in the device's worker process."""

    def __init__(self, device: str, run: Callable[[Job, "DeviceWorker"], None]):
        super().__init__(name=f"device-{device}", daemon=True)
        self.device = device
        self.run_job = run
        self.queue: collections.deque[Job] = collections.deque()
        self.cond = threading.Condition()
        self.current: Job | None = None
        self.closing = False
        self.process: JobProcess | None = None

    def worker_process(self, threads: str | None) -> JobProcess:
        """The live worker process for a job at ``threads`` (its client's OMP_NUM_THREADS), started anew when
        there is none, the last one died, or it computes at another thread count."""
        if self.process is not None and (not self.process.alive() or self.process.threads != threads):
            self.retire_process()
        if self.process is None:
            self.process = JobProcess(self.device, threads)
        return self.process

    def retire_process(self) -> None:
        """After a job failed (its process may be in a bad state: a CUDA error poisons the context), or
        crashed: the next job starts on a fresh process."""
        process, self.process = self.process, None
        if process is not None:
            process.close(timeout=5)

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
                    break
                job = self.queue.popleft()
                self.current = job
            try:
                self.run_job(job, self)
            finally:
                with self.cond:
                    self.current = None
        if self.process is not None:
            self.process.close()


class Queues:
    """Every job this engine has accepted, the hubs of those still live, and the device workers.

    Lives on the event loop (``loop``, set by the server when it starts); ``run_job`` runs in a
    worker thread and hands everything back to the loop."""

    def __init__(self, make_hub: Callable[[SessionWriter], Any]) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.make_hub = make_hub
        self.jobs: dict[str, Job] = {}
        self.hubs: dict[str, Any] = {}  # session -> its EventHub (the daemon's Hub: ops read its next_seq)
        self.workers: dict[str, DeviceWorker] = {}
        self.cluster = RayBridge()
        self.cluster_threads: dict[str, threading.Thread] = {}
        self.endings: dict[str, list[asyncio.Future]] = {}  # session -> who awaits its end (a study)
        self._jobs_module: Any = None

    def jobs_module(self) -> Any:
        if self._jobs_module is None:
            self._jobs_module = importlib.import_module("engine.jobs")
        return self._jobs_module

    def enqueue(self, spec: dict, device: str, writer: SessionWriter, threads: str | None = None) -> tuple[Job, int]:
        """Queue a validated spec whose session ``writer`` has created; returns it and its position."""
        job = Job(session=writer.session_id, spec=spec, device=device, writer=writer, threads=threads)
        self.jobs[job.session] = job
        self.hubs[job.session] = self.make_hub(writer)
        writer.add_listener(self._listener(job.session))
        position = self._worker(device).put(job)
        log.info("session %s: queued on %s (position %d)", job.session, device, position)
        return job, position

    def enqueue_cluster(self, spec: dict, artifacts: str, writer: SessionWriter) -> Job:
        """Send a validated spec to its Ray cluster at once (Ray queues and places it)."""
        job = Job(session=writer.session_id, spec=spec, device="ray", writer=writer)
        self.jobs[job.session] = job
        self.hubs[job.session] = self.make_hub(writer)
        writer.add_listener(self._listener(job.session))
        thread = threading.Thread(target=self.run_cluster_job, args=(job, artifacts), name=f"ray-{job.session}",
                                  daemon=True)
        self.cluster_threads[job.session] = thread
        thread.start()
        log.info("session %s: sent to the Ray cluster", job.session)
        return job

    async def accept(self, store: Any, normal: dict, name: str | None,
                     threads: str | None = None) -> tuple[Job, int]:
        """Create the session of a validated spec (``store``: the daemon's SessionStore) and queue it: on its
        device's queue (with its position there), to run at ``threads`` (the client's OMP_NUM_THREADS; None:
        the engine's), or sent to its Ray cluster (position 0; its nodes have their own). Runs on the loop
        (``submit`` and a study's cells)."""
        if normal.get("cluster"):
            from sessions.paths import cache_dir

            artifacts = normal.get("artifacts") or str(cache_dir())  # a local Ray instance shares this disk
            writer = await asyncio.to_thread(store.create, normal, name, state="queued")
            return self.enqueue_cluster(normal, artifacts, writer), 0
        device = await asyncio.to_thread(self.jobs_module().queue_device, normal)
        writer = await asyncio.to_thread(store.create, normal, name, state="queued")
        return self.enqueue(normal, device, writer, threads)

    async def wait_end(self, session: str) -> str:
        """The final state of job ``session`` once it has ended (at once when it has)."""
        job = self.jobs.get(session)
        if job is None or job.state not in ("queued", "running"):
            return job.state if job is not None else "unknown"
        assert self.loop is not None
        future = self.loop.create_future()
        self.endings.setdefault(session, []).append(future)
        return await future

    def stop(self, job: Job, reason: str) -> bool:
        """Ask ``job`` to stop; True when it had not started (it is then out of its queue, and the
        caller finishes it with ``finish_unstarted``)."""
        job.request_stop(reason)
        worker = self.workers.get(job.device)
        return worker is not None and worker.remove(job)

    async def close(self) -> None:
        """Cancel every queued job, stop the running ones after their current step, join the workers."""
        for worker in list(self.workers.values()):
            for job in worker.close():
                job.stop_reason = "the engine stopped before this job started"
                await asyncio.to_thread(self.finish_unstarted, job)
            if worker.current is not None:
                worker.current.request_stop("the engine was stopped")
        for session in list(self.cluster_threads):
            self.jobs[session].request_stop("the engine was stopped")
        for thread in [*self.workers.values(), *self.cluster_threads.values()]:
            await asyncio.to_thread(thread.join)
        await asyncio.to_thread(self.cluster.close)

    def active_count(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state in ("queued", "running"))

    def devices(self) -> dict[str, dict]:
        """Per device: the session running on it and those queued behind it."""
        devices = {}
        for name, worker in self.workers.items():
            current, process = worker.current, worker.process
            devices[name] = {"running": current.session if current else None,
                             "queued": [j.session for j in list(worker.queue)],
                             "worker_pid": process.pid if process is not None and process.alive() else None}
        return devices

    def finish_unstarted(self, job: Job) -> None:
        job.writer.finish("cancelled", message=job.stop_reason)
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._close_hub, job.session, "cancelled")

    def run_job(self, job: Job, worker: DeviceWorker) -> None:
        """Runs in the device's thread: the job in the device's worker process."""
        def start() -> Outcome:
            # the CPU's jobs compute at their client's threads; a GPU's are not restarted for them (CUDA set up anew)
            process = worker.worker_process(job.threads if worker.device == "cpu" else None)
            job.halt = process.stop
            return process.run(job.session, job.spec, job.writer.emit, job.stop.is_set)

        outcome = self._execute(job, start)
        if outcome is not None and outcome.state == "failed":
            worker.retire_process()

    def run_cluster_job(self, job: Job, artifacts: str) -> None:
        """Runs in the job's own thread: the job as a task on the Ray cluster."""
        def start() -> Outcome:
            job.halt = lambda: self.cluster.stop(job.session)
            return self.cluster.run(job.session, job.spec, artifacts, job.writer.emit, job.stop.is_set)

        try:
            self._execute(job, start)
        finally:
            self.cluster_threads.pop(job.session, None)

    def _execute(self, job: Job, start: Callable[[], Outcome]) -> Outcome | None:
        """Mark ``job`` running, run it through ``start`` (which passes its events to its session), and
        finish its session with the outcome: the one place a running job's session ends."""
        if job.stop.is_set():
            self.finish_unstarted(job)
            return None
        job.state = "running"
        writer = job.writer
        try:
            writer.emit("status", state="running")
            log.info("session %s: running on %s", job.session, job.device)
            outcome = start()
        except DiskFull as exc:  # the session's own disk is full: the job stops, its worker with it
            outcome = Outcome("failed", message=str(exc))
            log.error("session %s: %s", job.session, exc)
        except Exception as exc:  # the worker could not start, or sent what the session refuses
            outcome = Outcome("failed", message=f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])
            log.error("session %s failed:\n%s", job.session, traceback.format_exc())
        if outcome.state == "cancelled" and job.stop.is_set():
            outcome.message = job.stop_reason
        unwritten = None   # why the session ended, where its own file could not take it: its followers hear it
        try:
            writer.finish(outcome.state, summary=outcome.summary, message=outcome.message)
            if outcome.state == "finished":  # its checkpoint covers its resume points once the finish is written
                drop_points_of_finished(job.spec, job.session)
        except DiskFull as exc:  # left as it is on disk; the next engine start marks it interrupted
            log.error("session %s: could not be marked %s: %s", job.session, outcome.state, exc)
            unwritten = str(exc)
        except Exception:
            log.error("session %s: could not finish:\n%s", job.session, traceback.format_exc())
        log.info("session %s: %s%s", job.session, outcome.state, f" ({outcome.message})" if outcome.message else "")
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._close_hub, job.session, outcome.state, unwritten or outcome.message)
        return outcome

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

    def _close_hub(self, session: str, state: str, message: str | None = None) -> None:
        hub = self.hubs.pop(session, None)
        if hub is not None:
            hub.close(state, message)
        job = self.jobs.get(session)
        if job is not None:
            job.state = state
        for future in self.endings.pop(session, []):
            if not future.done():
                future.set_result(state)

