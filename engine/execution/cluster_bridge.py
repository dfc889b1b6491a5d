"""The engine's Ray driver, a child process of the daemon (``python -m engine.execution.cluster_bridge``): runs sent
to a cluster (``--cluster ray``) execute as Ray tasks on its nodes (``engine.execution.cluster_task.run_streaming``,
a streaming generator), and their events come back through here to the daemon, which writes the
sessions as for local runs, so the monitor, replay and compare work unchanged.

Ray's driver lives here, not in the daemon, because Ray ends its driver's process when it loses the
cluster's control store: that takes this process down, and the daemon fails the runs it carried.

The address: ``ray://HOST:PORT`` given with the run, else ``$RAY_ADDRESS`` of the engine, else a local
Ray instance started here (and stopped with the engine). One engine talks to one cluster.

Lines on stdin: ``{"op": "run", "session", "spec", "artifacts"}``, ``{"op": "stop", "session"}``,
``{"op": "status"}``; on the events pipe, each tagged with its session: ``event`` and ``done`` messages
as a local worker's, and ``{"op": "status", "status"}``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from typing import Callable

from engine.spec.placement import LOCAL, already_on, resolve_address

log = logging.getLogger("mmul.engine")


class ClusterUnavailable(RuntimeError):
    pass


class RayCluster:
    def __init__(self) -> None:
        self.address: str | None = None
        self._lock = threading.Lock()
        self._task = None

    def connect(self, cluster: str) -> None:
        """Connect once (a local instance takes tens of seconds to start); ClusterUnavailable with one
        line when the cluster cannot be reached or the engine is already on another one."""
        address = resolve_address(cluster)
        with self._lock:
            if self.address is not None:
                if address != self.address:
                    raise ClusterUnavailable(already_on(self.address, address))
                return
            try:
                import ray

                from engine.execution.cluster_task import run_streaming

                if address == LOCAL:
                    ray.init(include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=address, log_to_driver=False)
            except Exception as exc:
                raise ClusterUnavailable(f"could not reach the Ray cluster at {address}: "
                                         f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
            # no retries: a lost worker fails the run; re-running the study retries unfinished cells
            self._task = ray.remote(num_returns="streaming", max_retries=0)(run_streaming)
            self.address = address
            log.info("connected to %s", address)

    def run(self, session: str, spec: dict, artifacts: str, send: Callable[[dict], None],
            on_start: Callable[[Callable[[], None]], None]) -> dict:
        """Run ``spec`` as a Ray task asking for the devices it needs; each event goes to ``send``; returns
        the ``done`` message. ``on_start`` receives the function that cancels the task (the run stops after
        its current step)."""
        import ray

        ranks = spec.get("devices", 1)
        gpus = self.gpus_for(spec["device"]) * ranks
        placed = {**spec, "device": "cuda" if gpus else "cpu"}  # Ray's CUDA_VISIBLE_DEVICES: the task's GPUs are cuda:0..
        stream = self._task.options(num_cpus=1 if gpus else ranks, num_gpus=gpus, name=f"mmul {session}").remote(
            placed, session, artifacts)
        on_start(lambda: ray.cancel(stream))
        try:
            for ref in stream:
                message = ray.get(ref)
                if message["op"] == "done":
                    return message
                send(message)
        except ray.exceptions.TaskCancelledError:
            return done("cancelled", "cancelled")
        except ray.exceptions.RayError as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            return done("failed", f"the run's Ray worker was lost ({type(exc).__name__}: {first}); re-run the "
                        "study to retry its unfinished cells")
        return done("failed", "the Ray task ended without saying how the run ended")

    def gpus_for(self, device: str) -> int:
        import ray

        if device == "cpu":
            return 0
        if device == "auto":
            return 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        return 1

    def status(self) -> dict | None:
        """The cluster's nodes and free devices, or None before the first cluster run."""
        if self.address is None:
            return None
        import ray

        nodes = [{"address": node.get("NodeManagerAddress"), "alive": bool(node.get("Alive")),
                  "cpus": node.get("Resources", {}).get("CPU", 0), "gpus": node.get("Resources", {}).get("GPU", 0)}
                 for node in ray.nodes()]
        free = ray.available_resources()
        return {"address": self.address, "nodes": nodes,
                "free": {"cpus": free.get("CPU", 0), "gpus": free.get("GPU", 0)}}

    def close(self) -> None:
        if self.address is None:
            return
        import ray

        ray.shutdown()
        self.address = None


def done(state: str, message: str) -> dict:
    return {"op": "done", "state": state, "summary": None, "message": message}


class Bridge:
    """Runs each ``run`` line in its own thread; writes every message to the daemon, tagged by session."""

    def __init__(self, events) -> None:
        self.events = events
        self.cluster = RayCluster()
        self.write_lock = threading.Lock()
        self.cancels: dict[str, Callable[[], None]] = {}
        self.stopped: set[str] = set()

    def write(self, message: dict) -> None:
        from sessions.files import jsonable

        with self.write_lock:
            self.events.write(json.dumps(message, default=jsonable).encode() + b"\n")
            self.events.flush()

    def run(self, session: str, spec: dict, artifacts: str) -> None:
        def on_start(cancel: Callable[[], None]) -> None:
            self.cancels[session] = cancel
            if session in self.stopped:
                cancel()

        try:
            message = self.cluster.run(session, spec, artifacts, lambda m: self.write({**m, "session": session}),
                                       on_start)
        except Exception as exc:  # reported as the run's failure; the bridge serves on
            log.exception("session %s", session)
            message = done("failed", f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])
        self.cancels.pop(session, None)
        self.write({**message, "session": session})

    def start(self, session: str, spec: dict, artifacts: str) -> None:
        """Connect (in this, the main thread: Ray's local instance dies with the thread that started it), then
        run in a thread of the run's own."""
        try:
            self.cluster.connect(spec["cluster"])
        except ClusterUnavailable as exc:
            self.write({**done("failed", str(exc)), "session": session})
            return
        if session in self.stopped:
            self.write({**done("cancelled", "cancelled"), "session": session})
            return
        threading.Thread(target=self.run, args=(session, spec, artifacts), name=f"ray-{session}", daemon=True).start()

    def stop(self, session: str) -> None:
        self.stopped.add(session)
        cancel = self.cancels.get(session)
        if cancel is not None:
            cancel()

    def serve(self, lines) -> None:
        for line in lines:
            message = json.loads(line)
            if message["op"] == "run":
                self.start(message["session"], message["spec"], message["artifacts"])
            elif message["op"] == "stop":
                self.stop(message["session"])
            elif message["op"] == "status":
                self.write({"op": "status", "status": self.cluster.status()})
        for cancel in list(self.cancels.values()):
            cancel()
        self.cluster.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.execution.cluster_bridge")
    parser.add_argument("--events-fd", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    Bridge(os.fdopen(args.events_fd, "wb")).serve(sys.stdin.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
