"""``mmul-workbench engine start|stop|status|logs``: the detached engine daemon."""
from __future__ import annotations

import time
from typing import Any

import typer

from sessions.protocol import engine_paths
from sessions.numbers import format_duration
from sessions import protocol as P
from workbench.client.errors import EngineDisconnected, EngineError, EngineNotRunning
from workbench.completion import complete_session
from workbench.client.process import STATUS_TIMEOUT, engine_status, start_engine, stop_engine
from workbench.output import Exit, fail, json_text

engine_app = typer.Typer(
    name="engine",
    help="The engine daemon that runs jobs and writes sessions (it outlives the terminal).",
    no_args_is_help=True,
    add_completion=False,
)


def _json_out(obj: Any) -> None:
    typer.echo(json_text(obj))


def seconds(value: float, least: float, most: float = 3600.0) -> float:
    """--timeout as a number of seconds in range: click's own range check read `nan` as "Input should be less
    than or equal to 3600"."""
    if not least <= value <= most:   # NaN fails it too
        raise typer.BadParameter(f"give a number of seconds from {least:g} to {most:g}, got {value}")
    return value


@engine_app.command("start")
def start_cmd(
    timeout: float = typer.Option(30.0, "--timeout", callback=lambda value: seconds(value, 0.1),
                                  help="seconds to wait for the engine to answer (0.1 to 3600)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Start the engine in the background (says so and exits 0 if it already runs)."""
    try:
        info = start_engine(timeout=timeout)
    except (EngineError, PermissionError) as exc:
        fail(str(exc), Exit.RUN_FAILED)
    if as_json:
        _json_out({"running": True, **info})
    elif info["started"]:
        typer.echo(f"engine started (pid {info['pid']}); socket {info['socket']}; log {info['log']}")
    else:
        typer.echo(f"engine already running (pid {info['pid']}); socket {info['socket']}")
    if info.get("damaged") and not as_json:
        typer.echo(f"warning: skipped {len(info['damaged'])} damaged session(s) ({', '.join(info['damaged'][:4])}"
                   f"{', ...' if len(info['damaged']) > 4 else ''}); `mmul-workbench sessions check` says more",
                   err=True)


@engine_app.command("stop")
def stop_cmd(
    timeout: float = typer.Option(60.0, "--timeout", callback=lambda value: seconds(value, 0.0),
                                  help="seconds to let running jobs end their current step before killing (0 to 3600)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Stop the engine: queued jobs and the running job (after its current step) become cancelled."""
    try:
        info = stop_engine(timeout=timeout)
    except EngineError as exc:
        fail(str(exc), Exit.RUN_FAILED)
    if as_json:
        _json_out(info)
    elif not info["was_running"]:
        typer.echo("engine not running")
    else:
        cancelled = f"; cancelled {', '.join(info['cancelled'])}" if info["cancelled"] else ""
        killed = " (killed after the timeout: its sessions show interrupted)" if info["killed"] else ""
        typer.echo(f"engine stopped (pid {info['pid']}){killed}{cancelled}")


@engine_app.command("cancel")
def cancel_cmd(
    session: str = typer.Argument(..., help="session id, name, or a unique prefix of either",
                                  autocompletion=complete_session),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Cancel one queued or running engine run (the monitor's ctrl+k): a queued run never starts, a running one
    ends after its current step, marked cancelled; the engine's other runs go on."""
    from workbench.client.process import cancel_run

    try:
        reply = cancel_run(session)
    except EngineNotRunning:
        fail("the engine is not running, so it runs nothing to cancel (a headless run stops with Ctrl-C in its "
             "terminal)")
    except EngineDisconnected:  # stopped (SIGSTOP) or stuck: the engine's state, not the input (it exited 2)
        fail("the engine did not answer (stopped with SIGSTOP, or stuck); `mmul-workbench engine status` says more, "
             "`mmul-workbench engine stop` kills it after --timeout", Exit.RUN_FAILED)
    except EngineError as exc:
        fail(str(exc), Exit.RUN_FAILED if exc.code == P.INTERNAL else Exit.BAD_INPUT)
    if as_json:
        _json_out(reply)
    else:
        typer.echo(f"session {reply['session']}: {reply['state']}"
                   + (" (it ends after its current step)" if reply["state"] == "cancelling" else ""))


@engine_app.command("status")
def status_cmd(as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout")) -> None:
    """Is the engine running; what does each device run and hold queued."""
    info = engine_status()
    if as_json:
        _json_out(info)
        raise typer.Exit(Exit.RUN_FAILED if info["running"] and not info["answering"] else Exit.OK)
    if not info["running"]:
        stale = " (stale files of a dead engine are left; `engine start` cleans them)" if info.get("stale") else ""
        typer.echo(f"engine not running{stale}; log {info['log']}")
        return
    if not info["answering"]:
        pid = f"pid {info['pid']}" if info.get("pid") else "its pid unknown"
        if info.get("other_version"):   # started before an upgrade
            fail(f"the engine ({pid}) is of another mmul-workbench version and refuses this one ({info['other_version']}"
                 f"); `mmul-workbench engine stop` stops it, and the next run starts this version's", Exit.RUN_FAILED)
        fail(f"the engine ({pid}) runs but did not answer on {info['socket']} within {STATUS_TIMEOUT:g} s (stopped "
             f"with SIGSTOP, or stuck; see {info['log']}); `mmul-workbench engine stop` kills it after --timeout",
             Exit.RUN_FAILED)
    typer.echo(f"engine running (pid {info['pid']}, up {format_duration(info.get('uptime', 0))}); "
               f"socket {info['socket']}; log {info['log']}")
    if info.get("damaged"):
        typer.echo(f"damaged sessions skipped at start: {', '.join(info['damaged'])} (`mmul-workbench sessions check`)")
    devices = info.get("devices") or {}
    if not devices and not info.get("cluster") and not info.get("studies"):
        typer.echo("no jobs yet")
    cluster = info.get("cluster")
    if cluster:
        alive = [node for node in cluster["nodes"] if node["alive"]]
        runs = cluster.get("runs") or []
        typer.echo(f"  Ray cluster {cluster['address']}: {len(alive)} node(s) alive; free {cluster['free']['cpus']:g} "
                   f"CPU, {cluster['free']['gpus']:g} GPU; running {', '.join(runs) if runs else '-'}")
        for node in cluster["nodes"]:
            typer.echo(f"    {node['address']}: {'alive' if node['alive'] else 'lost'}; "
                       f"{node['cpus']:g} CPU, {node['gpus']:g} GPU")
    for name, dev in devices.items():
        queued = dev.get("queued") or []
        worker = f"worker pid {dev['worker_pid']}" if dev.get("worker_pid") else "no worker process"
        typer.echo(f"  {name}: running {dev.get('running') or '-'}; queued {len(queued)}"
                   + (f" ({', '.join(queued)})" if queued else "") + f"; {worker}")
    for sid, study in (info.get("studies") or {}).items():  # studies are engine jobs too (engine/daemon/studies.py)
        typer.echo(f"  study {sid}: {study['state']}; {study['to_go']} of {study['cells']} runs to go"
                   + (f", {study['failed']} failed" if study.get("failed") else "")
                   + (f"; now {study['current']}" if study.get("current") and study["state"] == "running" else ""))


@engine_app.command("logs")
def logs_cmd(
    lines: int = typer.Option(50, "--lines", "-n", min=1, help="how many of the last lines"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines (Ctrl-C stops)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Print the end of the engine's log file."""
    path = engine_paths().log
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        text = []
    tail = text[-lines:] if lines > 0 else []
    if as_json:
        _json_out({"log": str(path), "lines": tail})
        return
    if not text and not follow:
        typer.echo(f"no engine log yet at {path}", err=True)
        return
    for line in tail:
        typer.echo(line)
    if follow:
        try:
            with open(path, errors="replace") as handle:
                handle.seek(0, 2)
                while True:
                    line = handle.readline()
                    if line:
                        typer.echo(line.rstrip("\n"))
                    else:
                        time.sleep(0.25)
        except (KeyboardInterrupt, FileNotFoundError):
            return
