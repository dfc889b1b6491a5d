"""The daemon's side of a Ray cluster: the Ray driver runs in a child process (``engine.execution.cluster_bridge``),
started with the first cluster run and kept while the engine runs. Each run's messages come back tagged
with its session and go to that run's thread; if the driver process dies, every run it carried fails
with the cause, and the next cluster run starts a new one."""
from __future__ import annotations

import itertools
import queue
import sys
import threading
from typing import Callable

from engine.execution.job_process import Child, Outcome
from engine.spec.placement import already_on, resolve_address

BRIDGE_COMMAND: list[str] = [sys.executable, "-m", "engine.execution.cluster_bridge"]
STATUS_TIMEOUT = 10.0


class RayBridge:
    def __init__(self) -> None:
        self._child: Child | None = None
        self._lock = threading.Lock()
        self._inboxes: dict[str, queue.Queue] = {}
        self._statuses: queue.Queue = queue.Queue()
        self._ids = itertools.count()

    def run(self, session: str, spec: dict, artifacts: str, emit: Callable[..., object],
            stopped: Callable[[], bool]) -> Outcome:
        """Send the run to the cluster through the driver process; each event to ``emit``; how it ended."""
        inbox: queue.Queue = queue.Queue()
        with self._lock:
            child = self._live_child()
            self._inboxes[session] = inbox
        try:
            child.send({"op": "run", "session": session, "spec": spec, "artifacts": artifacts})
            if stopped():
                self.stop(session)
            while (message := inbox.get()) is not None:
                if message["op"] == "event":
                    emit(message["kind"], **message["fields"])
                else:
                    return Outcome(message["state"], message.get("summary"), message.get("message"))
            return Outcome("failed", message=f"the engine's Ray driver process {child.death()}", crashed=True)
        finally:
            with self._lock:
                self._inboxes.pop(session, None)

    def stop(self, session: str) -> None:
        child = self._child
        if child is not None:
            child.send({"op": "stop", "session": session})

    def status(self) -> dict | None:
        """The cluster's nodes and free devices, and ``runs``: the sessions it carries now; None when no cluster
        run has started the driver."""
        child = self._child
        if child is None or not child.alive():
            return None
        while not self._statuses.empty():  # a reply that came after an earlier call gave up is stale
            self._statuses.get_nowait()
        child.send({"op": "status"})
        try:
            status = self._statuses.get(timeout=STATUS_TIMEOUT)
        except queue.Empty:
            return None
        with self._lock:
            return {**status, "runs": sorted(self._inboxes)}

    def conflict(self, cluster: str) -> str | None:
        """Why a run for `cluster` cannot go to this engine's driver (it is on another cluster: one line), or
        None; asked before the run's session exists, so the refusal leaves no failed session behind."""
        status, wanted = self.status(), resolve_address(cluster)
        if status is None or status["address"] == wanted:
            return None
        return already_on(status["address"], wanted)

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.close(timeout=30)

    def _live_child(self) -> Child:
        if self._child is None or not self._child.alive():
            self._child = Child(BRIDGE_COMMAND, "ray driver")
            threading.Thread(target=self._dispatch, args=(self._child,), name="ray-dispatch", daemon=True).start()
        return self._child

    def _dispatch(self, child: Child) -> None:
        """Each message to its run's thread; when the driver's pipe ends, every run it carried hears so."""
        while (message := child.read()) is not None:
            if message["op"] == "status":
                self._statuses.put(message["status"])
                continue
            with self._lock:
                inbox = self._inboxes.get(message["session"])
            if inbox is not None:
                inbox.put(message)
        with self._lock:
            for inbox in self._inboxes.values():
                inbox.put(None)
