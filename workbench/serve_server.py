"""The textual-serve server `serve` runs, with the checks textual-serve lacks: whose page it is.

textual-serve's ``/ws`` starts a TUI for any websocket handshake. A browser lets any web page open a
websocket to 127.0.0.1 (only the ``Origin`` header says whose page asks), and a DNS-rebound name reaches
the loopback with a foreign ``Host``. So every request here passes ``refusal`` first:

- its ``Host`` must name this server: the bound host, a loopback name (an ``ssh -L`` forward's end), this
  machine's name on a wildcard bind, or a name given with ``--allow-host`` (the port is not compared: a
  forward may change it);
- a websocket handshake's ``Origin``, when the browser sends one (browsers always do), must be the page's
  own origin, ``http://`` + its ``Host``;
- with a token (the default), the page is ``/?token=T`` and its websocket ``/ws/T``: ``T`` is a random
  per-start secret printed once, as Jupyter does; textual-serve's bare ``/ws`` is refused.

A refused request gets 403 and one line saying why; the page's websocket URL is built from the request's
own ``Host``, so the handshake's Origin and Host agree behind a forward that changes the port.
"""
from __future__ import annotations

import secrets
import sys
from typing import Any, Iterable, Optional
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def host_name(host_header: str) -> str:
    """The name part of a Host header (``[::1]:8000`` -> ``::1``, ``Example:80`` -> ``example``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.rstrip(".")  # a fully qualified name's final dot names the same host


def allowed_hosts(bound: str, extra: Iterable[str], machine_names: Iterable[str] = ()) -> frozenset[str]:
    """The Host names this server answers: the bound host, the loopback names, ``extra`` (--allow-host)
    and, on a wildcard bind, ``machine_names`` (this machine's names)."""
    names = {bound, *LOOPBACK_NAMES, *extra, *machine_names}
    return frozenset(host_name(n) for n in names if n)   # none carries a port (allow_host_problem refuses one)


def refusal(method_path: str, headers: Any, hosts: frozenset[str], token: Optional[str],
            query_token: Optional[str], path_token: Optional[str], websocket: bool) -> Optional[str]:
    """Why this request is refused (one line), or None. ``path_token``: the token in ``/ws/{token}``."""
    host = headers.get("Host")
    if not host or host_name(host) not in hosts:
        return (f"Host {host!r} is not this server's name; open it by its address, or start serve with "
                f"--allow-host NAME")
    if websocket:
        origin = headers.get("Origin")
        if origin is not None and _origin(origin) != f"http://{host.strip().lower()}":
            return f"a websocket from the page of {origin!r}, not this server's page (http://{host}), is refused"
    if token is None:
        return None
    if method_path == "index" and not _same(query_token, token):
        return "this page needs the token serve printed when it started: open the URL it printed (…/?token=…)"
    if method_path == "ws" and not _same(path_token, token):
        return "this websocket needs the token serve printed when it started"
    return None


def _origin(value: str) -> str:
    parts = urlsplit(value.strip().lower())
    return f"{parts.scheme}://{parts.netloc}"


def _same(given: Optional[str], token: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


class WorkbenchServer(Server):
    """textual-serve's Server with the Host / Origin / token checks, and our start-up lines on stderr."""

    def __init__(self, command: str, *, host: str, port: int, public_url: str, hosts: frozenset[str],
                 token: Optional[str], banner: list[str]):
        super().__init__(command, host=host, port=port, title="mmul-workbench", public_url=public_url)
        self.hosts = hosts
        self.token = token
        self.banner = banner

    def initialize_logging(self) -> None:  # its request log is for people: stderr, as all our diagnostics
        from rich.console import Console

        self.console = Console(stderr=True)
        super().initialize_logging()

    async def on_startup(self, app) -> None:  # our lines on stderr instead of textual-serve's banner
        for line in self.banner:
            print(line, file=sys.stderr, flush=True)

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.router.add_get("/ws/{token}", self.handle_websocket, name="websocket_token")
        app.middlewares.append(self._guard)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        route = request.match_info.route.name
        kind = "index" if route == "index" else "ws" if route in ("websocket", "websocket_token") else "other"
        why = refusal(kind, request.headers, self.hosts, self.token, request.query.get("token"),
                      request.match_info.get("token"), websocket=kind == "ws")
        if why is not None:
            return web.Response(status=403, text=why + "\n")
        return await handler(request)

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        context = await Server.handle_index.__wrapped__(self, request)   # type: ignore[attr-defined]
        here = request.headers["Host"]   # checked by the guard: the page's own address
        context["app_websocket_url"] = f"ws://{here}/ws" + (f"/{self.token}" if self.token else "")
        context["config"]["static"]["url"] = f"http://{here}/static/"
        return context
