"""Studies as engine jobs: a grid of runs (methods x seeds, one protocol) that the daemon queues, runs
and records, so that a study outlives the client that asked for it.

A client (``mmul-workbench study ... --engine``, the TUI's New-study form) sends the study's id, its spec
and its cells, each a run spec the client built and checked (``workbench.cli_study``); the daemon checks
each cell as it checks a ``submit`` and starts a ``StudyJob``: an asyncio task on the daemon's loop that
queues its cells one at a time (Retrain first for each seed, as given), as ordinary runs on their device's
queue and worker process, or all at once on a Ray cluster where the cells name one, and records each
cell's session and state in the study record (``sessions.study.StudyRecord``, ``$MMUL_HOME/studies``).
The record is keyed by the study's id (a digest of its arguments), so the same study sent again, after
``engine stop`` or from the headless path, runs only the cells whose session has not finished. While the
daemon runs a study it holds the record's lock: the headless path cannot run the same study at once.

Clients follow a study with ``study_status``: a long poll that answers when the study has changed (a
cell queued or ended) or after ``WAIT_SECONDS``, and the cells' sessions through ``subscribe``. Pure
stdlib and ``sessions``: the daemon never imports torch.
"""
from __future__ import annotations

import asyncio
import logging
import traceback
from contextlib import ExitStack
from typing import Any

from sessions.schema import ACTIVE_STATES
from sessions.study import StudyError, StudyRecord

log = logging.getLogger("mmul.engine")

WAIT_SECONDS = 10.0    # the longest a ``study_status`` long poll waits for a change
STUDY_ENDED = ("finished", "failed", "cancelled")


class StudyJob:
    """One study the daemon runs: its cells (``(method, seed, spec)``, specs validated), its record, and a
    version that moves on every change (what a long poll waits on)."""

    def __init__(self, study_id: str, spec: dict, cells: list[tuple[str, int, dict]], record: StudyRecord,
                 threads: str | None = None):
        self.id, self.spec, self.cells, self.record = study_id, spec, cells, record
        self.threads = threads               # the asking client's OMP_NUM_THREADS, for every cell (sessions.protocol)
        self.state = "running"
        self.message: str | None = None
        self.current: str | None = None      # the session of the cell running now
        self.failed = 0
        self.to_go = len(cells)
        self.version = 0
        self.changed = asyncio.Event()
        self.task: asyncio.Task | None = None

    def bump(self) -> None:
        self.version += 1
        self.changed.set()
        self.changed = asyncio.Event()

    async def wait_change(self, after: int, timeout: float) -> None:
        if self.version > after or self.state in STUDY_ENDED:
            return
        try:
            await asyncio.wait_for(self.changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def info(self) -> dict:
        """What ``status`` and ``study_status`` say of it."""
        cells = []
        for method, seed, _ in self.cells:
            cell = self.record.cell(method, seed) or {}
            cells.append({"method": method, "seed": seed, "session": cell.get("session"),
                          "state": cell.get("state") or "pending"})
        return {"study": self.id, "state": self.state, "message": self.message, "version": self.version,
                "current": self.current, "to_go": self.to_go, "failed": self.failed, "cells": cells}


class Studies:
    """Every study this engine has run, by id; the live ones run as tasks on the loop."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon          # ops.Daemon: its store, queues and stopping flag
        self.jobs: dict[str, StudyJob] = {}

    def active(self, study_id: str) -> StudyJob | None:
        job = self.jobs.get(study_id)
        return job if job is not None and job.state not in STUDY_ENDED else None

    async def start(self, study_id: str, spec: dict, cells: list[tuple[str, int, dict]],
                    threads: str | None = None) -> StudyJob:
        """Begin running a study: its record read, its lock taken, the cells still to run found (StudyError,
        one line, when its record cannot be used or another process runs it)."""
        record = StudyRecord(study_id, spec, self.daemon.paths.home)
        await asyncio.to_thread(record.load)
        hold = ExitStack()
        hold.enter_context(record.running())
        job = StudyJob(study_id, spec, cells, record, threads)
        try:
            pending = await self._pending(job)
        except BaseException:
            hold.close()
            raise
        self.jobs[study_id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job, pending, hold))
        log.info("study %s: %d of %d runs to go", study_id, len(pending), len(cells))
        return job

    def listing(self) -> dict[str, dict]:
        """Per study this engine knows: its state and how far it is (``status``)."""
        return {sid: {k: v for k, v in job.info().items() if k != "cells"} | {"cells": len(job.cells)}
                for sid, job in self.jobs.items()}

    def active_count(self) -> int:
        return sum(1 for job in self.jobs.values() if job.state not in STUDY_ENDED)

    async def close(self) -> None:
        """Wait for the running studies to record how their cells ended (the queues stop the cells)."""
        tasks = [job.task for job in self.jobs.values() if job.task is not None and not job.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=30.0)

    async def _run(self, job: StudyJob, pending: list, hold: ExitStack) -> None:
        try:
            with hold:
                await self._run_cells(job, pending)
        except Exception as exc:  # recorded as the study's failure; the daemon goes on
            job.state, job.message = "failed", f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
            log.error("study %s failed:\n%s", job.id, traceback.format_exc())
        job.bump()
        log.info("study %s: %s%s", job.id, job.state, f" ({job.message})" if job.message else "")

    async def _pending(self, job: StudyJob) -> list[tuple[str, int, dict, str | None]]:
        """The cells whose session has not finished, each with its session when it is queued or running here
        now (it is followed, not queued again); finished cells are recorded as such."""
        queues, record = self.daemon.queues, job.record
        pending: list[tuple[str, int, dict, str | None]] = []
        for method, seed, spec in job.cells:
            cell = record.cell(method, seed) or {}
            state = await asyncio.to_thread(self._stored_state, cell.get("session"))
            if state == "finished":
                if cell.get("state") != "finished":
                    await asyncio.to_thread(record.set_cell, method, seed, cell["session"], "finished")
                continue
            running = queues.jobs.get(cell.get("session") or "")
            live = running is not None and running.state in ACTIVE_STATES
            pending.append((method, seed, spec, cell["session"] if live else None))
        job.to_go = len(pending)
        return pending

    async def _run_cells(self, job: StudyJob, pending: list[tuple[str, int, dict, str | None]]) -> None:
        queues, record = self.daemon.queues, job.record
        if pending and pending[0][2].get("cluster"):  # a cluster runs the cells side by side: send all, then wait
            pending = [(m, s, spec, running or await self._queue_cell(job, m, s, spec))
                       for m, s, spec, running in pending if not self.daemon.stopping]
        for method, seed, spec, running in pending:
            if self.daemon.stopping:
                job.state, job.message = "cancelled", "the engine was stopped"
                return
            session = running or await self._queue_cell(job, method, seed, spec)
            job.current = session
            job.bump()
            final = await queues.wait_end(session)
            final = final if final in STUDY_ENDED else "failed"
            await asyncio.to_thread(record.set_cell, method, seed, session, final)
            job.to_go -= 1
            job.failed += final == "failed"
            job.bump()  # ``current`` stays on the cell that ended, so a follower that polls late still reads it
            if final == "cancelled":  # `engine stop` or `cancel`: the study stops here; the same study resumes it
                job.state, job.message = "cancelled", f"{method} s{seed} was cancelled (session {session})"
                return
        if job.to_go:  # the engine stopped while a cluster's cells were being sent
            job.state, job.message = "cancelled", "the engine was stopped"
            return
        job.state = "failed" if job.failed else "finished"
        if job.failed:
            job.message = f"{job.failed} of {len(job.cells)} runs failed (their sessions are kept)"

    async def _queue_cell(self, job: StudyJob, method: str, seed: int, spec: dict) -> str:
        queued, _ = await self.daemon.queues.accept(self.daemon.store, spec, spec.get("name"), job.threads)
        await asyncio.to_thread(job.record.set_cell, method, seed, queued.session, "queued")
        return queued.session

    def _stored_state(self, session: str | None) -> str | None:
        if not session:
            return None
        try:
            return self.daemon.store.get(session).get("state")
        except Exception:  # deleted, damaged: the cell runs again
            return None


__all__ = ["STUDY_ENDED", "Studies", "StudyError", "StudyJob", "WAIT_SECONDS"]
