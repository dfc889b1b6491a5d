"""`mmul-workbench serve`: the same TUI in a browser, through textual-serve.

Each browser tab that opens the page gets its own `mmul-workbench` TUI process (textual-serve runs the
command with Textual's web driver and streams the terminal to xterm.js in the page). It binds to
127.0.0.1 by default: from another machine, forward the port over SSH (`ssh -L 8000:localhost:8000 HOST`)
rather than exposing a workbench that has no password. The page needs a random per-start token, printed
once (as Jupyter does); Host and Origin are checked on every request (``workbench.serve_server``).
``--no-token`` drops the token on a loopback bind only. A host or port it cannot listen on, or a
non-loopback bind without a token, is one line and exit 2, checked before the server starts. Nothing
here imports torch; textual-serve loads inside the command.
"""
from __future__ import annotations

import errno
import ipaddress
import re
import secrets
import shlex
import socket
import sys
from typing import List, Optional

import typer

from workbench.output import fail

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::")


def bind_problem(host: str, port: int) -> Optional[str]:
    """Why the server could not listen on ``host:port`` (one line, with what would work), or None."""
    if not host.strip():  # it listened on every interface while announcing localhost
        return "--host is empty; give 127.0.0.1 (the default) or, to listen on every interface, 0.0.0.0"
    if not 1 <= port <= 65535:
        return f"--port {port} is not a TCP port; use one in 1-65535, e.g. 8000"
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        return f"--host {host!r} is not an address of this machine ({error.strerror}); use 127.0.0.1 (the default)"
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will bind
            try:
                probe.bind(address)
            except OSError as error:
                return describe_bind_error(host, port, error)
    return None


HOST_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)", re.IGNORECASE)  # _: container and compose service names


def allow_host_problem(name: str) -> Optional[str]:
    """Why ``name`` cannot be a Host the browser sends (one line, with what would be right), or None: a DNS
    name or an IP address, alone (the port is not compared, so one is refused rather than ignored)."""
    example = "e.g. --allow-host box.example or --allow-host 10.0.0.5"
    if "://" in name or "/" in name:
        return f"--allow-host {name!r}: give the name alone, without a scheme or a path ({example})"
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ipaddress.ip_address(bare)
        return None
    except ValueError:
        pass
    if ":" in name:
        return f"--allow-host {name!r}: give the name without a port; every port of the name is allowed ({example})"
    labels = name.rstrip(".").split(".")
    if all(label.isdigit() for label in labels):  # 999.1.1.1 reads as an address, and is none
        return f"--allow-host {name!r} is not an IP address ({example})"
    if len(name) > 253 or not all(HOST_LABEL.fullmatch(label) for label in labels):
        return (f"--allow-host {name!r} is not a host name (letters, digits and hyphens, in dot-separated parts) or "
                f"an IP address ({example})")
    return None


def describe_bind_error(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use (another server?); pick a free one, e.g. --port {port + 1}"
    if error.errno == errno.EACCES:
        return f"not allowed to listen on port {port} (ports below 1024 need root); use e.g. --port 8000"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"--host {host} is not an address of this machine; use 127.0.0.1 (the default)"
    return f"cannot listen on {host}:{port} ({error.strerror or error}); use --host 127.0.0.1 and a free --port"


def public_url(host: str, port: int) -> str:
    """The address the page's links and websocket use: a wildcard host is reached by this machine's name."""
    name = socket.getfqdn() if host in WILDCARD else host
    return f"http://{f'[{name}]' if ':' in name else name}:{port}"


def machine_names() -> tuple[str, ...]:
    """What a browser may call this machine by when serve listens on every address: its names and addresses."""
    names = {socket.getfqdn(), socket.gethostname()}
    try:
        names.update(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        pass
    return tuple(names)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="the address to listen on; keep the default and "
                             "forward the port over SSH (ssh -L 8000:localhost:8000 HOST)"),
    port: int = typer.Option(8000, "--port", help="the TCP port to listen on"),
    allow_host: List[str] = typer.Option([], "--allow-host", help="another name the browser may reach this "
                                         "server by (its Host header); repeatable. The bound host and the "
                                         "loopback names are always allowed"),
    no_token: bool = typer.Option(False, "--no-token", help="serve the page without the per-start token "
                                  "(only on a loopback --host)"),
) -> None:
    """Serve the workbench TUI to a browser (textual-serve), for use over an SSH port-forward."""
    if no_token and host not in LOOPBACK:
        fail(f"--no-token with --host {host} would let every machine that reaches it use this workbench; "
             "keep the token, or bind 127.0.0.1 and forward the port over SSH")
    problem = next(filter(None, map(allow_host_problem, allow_host)), None) or bind_problem(host, port)
    if problem is not None:
        fail(problem)
    from workbench.serve_server import WorkbenchServer, allowed_hosts

    token = None if no_token else secrets.token_urlsafe(24)
    url = public_url(host, port)
    query = f"/?token={token}" if token else "/"
    machine = machine_names() if host in WILDCARD else ()
    banner = [f"serving the workbench on {url}{query} (ctrl+c stops); from another machine: "
              f"ssh -L {port}:localhost:{port} {socket.gethostname()}, then open http://localhost:{port}{query}"]
    if host not in LOOPBACK:
        banner.append(f"warning: --host {host} lets every machine that reaches it and holds the token use this "
                      "workbench; prefer the default 127.0.0.1 and an SSH port-forward")
    command = f"{shlex.quote(sys.executable)} -m workbench.cli"  # the TUI, one process per browser tab
    server = WorkbenchServer(command, host=host, port=port, public_url=url,
                             hosts=allowed_hosts(host, allow_host, machine), token=token, banner=banner)
    try:
        server.serve()
    except OSError as error:  # taken between the check and the server's own bind
        fail(describe_bind_error(host, port, error))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
