"""The handlers of the protocol's ops (``sessions.protocol.OPS``), one small function each.

A handler gets the daemon, the client connection, the request id and the request's checked fields,
and returns the reply. ``Daemon`` and ``Client`` say what a handler may use of the server and of
the connection.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Protocol

from engine.daemon.hub import Subscription
from engine.daemon.studies import WAIT_SECONDS, Studies, StudyError
from engine.execution.queue import Queues
from sessions import protocol as P
from sessions.schema import SCHEMA_VERSION, TERMINAL_STATES
from sessions.store import SessionDamaged, SessionStore, UnknownSession

log = logging.getLogger("mmul.engine")


class Daemon(Protocol):
    """What a handler may use of the server (``server.Engine``)."""

    paths: P.EnginePaths
    store: SessionStore
    queues: Queues
    studies: Studies
    started: float
    stopping: bool
    sub_ids: Iterator[int]
    damaged: list[str]
    connections: set
    limits: Any           # connection.Limits: the bounds on clients, and the bytes buffered now

    def request_stop(self) -> None: ...


class Client(Protocol):
    """What a handler may use of the client's connection (``connection.Connection``)."""

    greeted: bool

    async def send(self, message: dict) -> None: ...

    def can_subscribe(self) -> bool: ...

    def add_subscription(self, sub: int, stream: Coroutine[Any, Any, None]) -> None: ...

    def cancel_subscription(self, sub: int) -> bool: ...


async def hello(daemon: Daemon, conn: Client, rid: Any, protocol: int, schema: int | None = None,
                client: str | None = None) -> dict:
    if protocol not in P.SUPPORTED_PROTOCOLS or (schema is not None and schema != SCHEMA_VERSION):
        # a newer client meets an engine started before an upgrade; an older one (a script) is the one to change
        remedy = ("restart the engine with this mmul-workbench (`mmul-workbench engine stop && mmul-workbench "
                  "engine start`)" if protocol > P.PROTOCOL_VERSION or schema not in (None, SCHEMA_VERSION) else
                  f"send protocol {' or '.join(map(str, P.SUPPORTED_PROTOCOLS))}")
        return P.error(rid, P.VERSION_MISMATCH, f"engine speaks protocol {P.PROTOCOL_VERSION} / schema "
                       f"{SCHEMA_VERSION}, client sent {protocol} / {schema}; {remedy}")
    conn.greeted = True
    return P.ok(rid, protocol=P.PROTOCOL_VERSION, schema=SCHEMA_VERSION, pid=os.getpid(),
                started=daemon.started, home=str(daemon.paths.home), damaged=daemon.damaged)


async def submit(daemon: Daemon, conn: Client, rid: Any, spec: dict, name: str | None = None,
                 threads: str | None = None) -> dict:
    if daemon.stopping:
        return P.error(rid, P.SHUTTING_DOWN, "the engine is stopping; start it again and resubmit")
    from engine.errors import SpecError

    if name is not None and (len(name) > 200 or "\n" in name):
        return P.error(rid, P.BAD_SPEC, "name must be one line of at most 200 characters", "name")
    try:
        jobs = await asyncio.to_thread(daemon.queues.jobs_module)
        normal = await asyncio.to_thread(jobs.validate, spec)
    except SpecError as exc:
        return P.error(rid, P.BAD_SPEC, str(exc).splitlines()[0] if str(exc) else "bad run spec",
                       exc.field)
    except Exception as exc:
        log.error("validate failed:\n%s", traceback.format_exc())
        return P.error(rid, P.INTERNAL, f"could not validate the spec: {type(exc).__name__}: {exc}"
                       .splitlines()[0])
    if not isinstance(normal, dict):
        return P.error(rid, P.INTERNAL, "validate() did not return a spec")
    if conflict := await cluster_conflict(daemon, normal):
        return P.error(rid, P.BAD_SPEC, conflict, "cluster")
    name = name if name is not None else normal.get("name")  # `run --name`, a study's cell: named in the spec
    resumed = (normal.get("resumes") or {}).get("session")
    if resumed is not None:
        if resumed in daemon.resuming:
            return P.error(rid, P.BAD_SPEC, f"session {resumed} is being resumed by another run submitted a moment "
                           "ago; follow that one", "resumes")
        daemon.resuming.add(resumed)
    try:
        if resumed is not None:  # asked again now: a resume accepted since this one's check is live by now
            from sessions.resuming import resume_conflict

            if (conflict := await asyncio.to_thread(resume_conflict, daemon.store, resumed)) is not None:
                return P.error(rid, P.BAD_SPEC, conflict, "resumes")
        job, position = await daemon.queues.accept(daemon.store, normal, name, threads)
    finally:  # from here on its session is live, and the check finds it
        daemon.resuming.discard(resumed)
    return P.ok(rid, session=job.session, device=job.device, position=position, state="queued")


async def cluster_conflict(daemon: Daemon, normal: dict) -> str | None:
    """Why the run's cluster is not this engine's (one line), asked before a session exists; else None."""
    if not normal.get("cluster"):
        return None
    return await asyncio.to_thread(daemon.queues.cluster.conflict, normal["cluster"])


async def cancel(daemon: Daemon, conn: Client, rid: Any, session: str) -> dict:
    try:
        session = daemon.store.resolve(session)
    except UnknownSession as exc:
        return P.error(rid, P.UNKNOWN_SESSION, str(exc))
    job = daemon.queues.jobs.get(session)
    if job is None or job.state in TERMINAL_STATES or job.writer.closed:
        state = (job.state if job else None) or _stored_state(daemon.store, session)
        return P.error(rid, P.NOT_CANCELLABLE, f"session {session} is {state}, not queued or running")
    if daemon.queues.stop(job, "cancelled by request"):
        await asyncio.to_thread(daemon.queues.finish_unstarted, job)
        return P.ok(rid, session=session, state="cancelled")
    return P.ok(rid, session=session, state="cancelling")


def _stored_state(store: SessionStore, session: str) -> str:
    try:
        return store.get(session)["state"]
    except SessionDamaged:
        return "damaged"
    except (UnknownSession, ValueError):
        return "unknown"


async def list_sessions(daemon: Daemon, conn: Client, rid: Any, state: str | None = None) -> dict:
    rows = await asyncio.to_thread(daemon.store.list, state)
    for row in rows:
        job = daemon.queues.jobs.get(row["id"])
        if job is not None and job.state == "running":
            row["step"] = job.last_step
    return P.ok(rid, sessions=rows)


async def status(daemon: Daemon, conn: Client, rid: Any, session: str | None = None) -> dict:
    if session is None:
        paths = daemon.paths
        return P.ok(rid, pid=os.getpid(), started=daemon.started, uptime=time.time() - daemon.started,
                    home=str(paths.home), socket=str(paths.socket), log=str(paths.log),
                    protocol=P.PROTOCOL_VERSION, schema=SCHEMA_VERSION, devices=daemon.queues.devices(),
                    cluster=await asyncio.to_thread(daemon.queues.cluster.status),
                    studies=daemon.studies.listing(),
                    stopping=daemon.stopping, damaged=daemon.damaged, connections=len(daemon.connections),
                    buffered=daemon.limits.used,
                    subscriptions=sum(len(c.subscriptions) for c in daemon.connections),
                    waiting_sends=sum(c.waiting for c in daemon.connections))
    try:
        session = daemon.store.resolve(session)
        meta = await asyncio.to_thread(daemon.store.get, session)
    except UnknownSession as exc:
        return P.error(rid, P.UNKNOWN_SESSION, str(exc))
    except SessionDamaged as exc:
        return P.error(rid, P.DAMAGED, str(exc))
    job = daemon.queues.jobs.get(session)
    info = {k: meta.get(k) for k in ("id", "name", "state", "spec", "created", "updated", "summary",
                                     "message", "last_seq")}
    if job is not None:
        info["state"] = job.state
        info["step"] = job.last_step
        info["device"] = job.device
        hub = daemon.queues.hubs.get(session)
        if hub is not None:
            info["last_seq"] = hub.next_seq - 1
    return P.ok(rid, session=info)


async def heartbeat(daemon: Daemon, conn: Client, rid: Any) -> dict:
    return P.ok(rid, ts=time.time(), jobs=daemon.queues.active_count() + daemon.studies.active_count(),
                stopping=daemon.stopping)


async def shutdown(daemon: Daemon, conn: Client, rid: Any) -> dict:
    devices = daemon.queues.devices().values()
    running = [d["running"] for d in devices if d["running"] is not None]
    queued = [session for d in devices for session in d["queued"]]
    # the worker processes, which `engine stop` kills with the engine after its timeout: a stopped or stuck worker
    # (its own session, out of the engine's process group) outlived a killed engine, holding its device's memory
    workers = [d["worker_pid"] for d in devices if d.get("worker_pid")]
    daemon.request_stop()
    return P.ok(rid, pid=os.getpid(), stopping=True, running=running, queued=queued, workers=workers)


async def subscribe(daemon: Daemon, conn: Client, rid: Any, session: str, from_seq: int = 0) -> dict:
    try:
        session = daemon.store.resolve(session)
    except UnknownSession as exc:
        return P.error(rid, P.UNKNOWN_SESSION, str(exc))
    if not conn.can_subscribe():
        return P.error(rid, P.LIMIT, f"this connection follows {daemon.limits.subscriptions} sessions already "
                                     "(the most one connection may); unsubscribe one or open another connection")
    sub = next(daemon.sub_ids)
    subscription = Subscription(sub, session, from_seq, daemon.queues.hubs.get(session), daemon.store,
                                conn.send, lag=daemon.limits.lag)
    conn.add_subscription(sub, subscription.run())
    return P.ok(rid, sub=sub, session=session)


async def unsubscribe(daemon: Daemon, conn: Client, rid: Any, sub: int) -> dict:
    if not conn.cancel_subscription(sub):
        return P.error(rid, P.BAD_REQUEST, f"no subscription {sub} on this connection")
    return P.ok(rid, sub=sub)


async def study(daemon: Daemon, conn: Client, rid: Any, study: str, spec: dict, cells: list,
                threads: str | None = None) -> dict:
    """Run a study (its cells checked as ``submit`` checks a run), or attach to it when it runs already."""
    from sessions.study import STUDY_ID

    if daemon.stopping:
        return P.error(rid, P.SHUTTING_DOWN, "the engine is stopping; start it again and resubmit")
    if not STUDY_ID.fullmatch(study):
        return P.error(rid, P.BAD_REQUEST, f"{study!r} is not a study id (study-<12 hex digits>)", "study")
    running = daemon.studies.active(study)
    if running is not None:
        return P.ok(rid, attached=True, **running.info())
    from engine.errors import SpecError

    checked: list[tuple[str, int, dict]] = []
    try:
        jobs = await asyncio.to_thread(daemon.queues.jobs_module)
        for cell in cells:
            if not isinstance(cell, dict) or not isinstance(cell.get("spec"), dict) or \
                    not isinstance(cell.get("method"), str) or not isinstance(cell.get("seed"), int):
                return P.error(rid, P.BAD_REQUEST, "each cell is {method, seed, spec}", "cells")
            normal = await asyncio.to_thread(jobs.validate, cell["spec"], False)
            checked.append((cell["method"], cell["seed"], normal))
    except SpecError as exc:
        message = str(exc).splitlines()[0] if str(exc) else "bad run spec"
        return P.error(rid, P.BAD_SPEC, f"{cell['method']} seed {cell['seed']}: {message}", exc.field)
    if not checked:
        return P.error(rid, P.BAD_REQUEST, "a study has at least one cell", "cells")
    if conflict := await cluster_conflict(daemon, checked[0][2]):  # a study's cells share their placement
        return P.error(rid, P.BAD_SPEC, conflict, "cluster")
    try:
        job = await daemon.studies.start(study, spec, checked, threads)
    except StudyError as exc:
        return P.error(rid, P.BUSY, str(exc))
    return P.ok(rid, attached=False, **job.info())


async def study_status(daemon: Daemon, conn: Client, rid: Any, study: str, after: int = -1) -> dict:
    """A study's state and cells once it has changed since version ``after`` (or after WAIT_SECONDS)."""
    job = daemon.studies.jobs.get(study)
    if job is None:
        return P.error(rid, P.UNKNOWN_STUDY, f"this engine runs no study {study} (since it started); "
                                             "run the study's command again to resume it")
    await job.wait_change(after, WAIT_SECONDS)
    return P.ok(rid, **job.info())


Handler = Callable[..., Awaitable[dict]]

HANDLERS: dict[str, Handler] = {
    "hello": hello, "submit": submit, "cancel": cancel, "list": list_sessions, "status": status,
    "heartbeat": heartbeat, "shutdown": shutdown, "subscribe": subscribe, "unsubscribe": unsubscribe,
    "study": study, "study_status": study_status,
}
