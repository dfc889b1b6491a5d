"""`serve` answers only its own page: a foreign Origin or Host, or a missing token, is refused (issue 22).

The server runs as the CLI runs it (a subprocess); a real websocket client (aiohttp's) makes the
handshakes a hostile page or a DNS-rebound name would make. The one accepted handshake starts the TUI
against a light engine (sessions_fixtures), as tests/test_browser.py does.
"""
from __future__ import annotations

import re
import signal
import subprocess

import aiohttp
import pytest

from conftest import ROOT, cli, cli_env
from test_browser import Lines, free_port, page_when_up
from workbench.serve_server import allowed_hosts, host_name, refusal


def test_refusal_names_why():
    hosts = allowed_hosts("127.0.0.1", ["box.example"])
    ok = {"Host": "localhost:9000", "Origin": "http://localhost:9000"}
    assert refusal("ws", ok, hosts, "t0k", None, "t0k", websocket=True) is None
    assert refusal("ws", {"Host": "box.example:8000"}, hosts, "t0k", None, "t0k", websocket=True) is None
    assert "Host 'evil.example:8000'" in refusal("index", {"Host": "evil.example:8000"}, hosts, None, None, None,
                                                 websocket=False)
    assert "websocket from the page of 'http://evil.example'" in refusal(
        "ws", {**ok, "Origin": "http://evil.example"}, hosts, None, None, None, websocket=True)
    assert refusal("ws", {**ok, "Origin": "http://localhost:8000"}, hosts, None, None, None, websocket=True)
    assert "token" in refusal("ws", ok, hosts, "t0k", None, "t0l", websocket=True)
    assert "token" in refusal("index", ok, hosts, "t0k", None, None, websocket=False)
    assert refusal("index", ok, hosts, None, None, None, websocket=False) is None     # --no-token
    assert host_name("[::1]:8000") == "::1" and host_name("Example.ORG:80") == "example.org"


def test_no_token_is_refused_off_the_loopback(tmp_path):
    out = subprocess.run(cli("serve", "--host", "0.0.0.0", "--no-token", "--port", str(free_port())),
                         env=cli_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == "" and len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith("error: --no-token with --host 0.0.0.0 ")


@pytest.mark.parametrize("name, said", [
    ("http://box.example", "without a scheme or a path"),
    ("box.example:8000", "without a port"),
    ("box example", "is not a host name"),
    ("-box.example", "is not a host name"),
    ("999.1.1.1", "is not an IP address"),
])
def test_a_malformed_allow_host_is_refused_in_one_line(tmp_path, name, said):
    """Such a name never matches a browser's Host, so it was accepted and did nothing."""
    out = subprocess.run(cli("serve", "--allow-host", name, "--port", str(free_port())),
                         env=cli_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == "" and len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith(f"error: --allow-host {name!r}") and said in out.stderr


def test_well_formed_allow_hosts_pass():
    from workbench.cli_serve import allow_host_problem

    from workbench.serve_server import allowed_hosts, host_name

    good = ("box.example", "box", "10.0.0.5", "fe80::1", "[fe80::1]", "a-b.c.", "web_app")
    assert [allow_host_problem(n) for n in good] == [None] * len(good)
    # a final dot names the same host, given or sent
    assert host_name("box.example.:8000") in allowed_hosts("127.0.0.1", ["box.example."])
    assert host_name("box.example:8000") in allowed_hosts("127.0.0.1", ["box.example."])


async def _handshake(url: str, **headers) -> int | str:
    """The HTTP status a websocket handshake got (101: accepted, and the first frame arrived)."""
    async with aiohttp.ClientSession() as client:
        try:
            async with client.ws_connect(url, headers=headers, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
                message = await ws.receive(timeout=60)
                assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), message
                return 101
        except aiohttp.WSServerHandshakeError as error:
            return error.status


async def _get(url: str, **headers) -> tuple[int, str]:
    async with aiohttp.ClientSession() as client:
        async with client.get(url, headers=headers) as response:
            return response.status, await response.text()


async def test_serve_refuses_foreign_origins_hosts_and_missing_tokens(tmp_path):
    from sessions_fixtures import kill_daemon, start_daemon

    home = tmp_path / "home"
    start_daemon(home)  # the TUI the accepted handshake starts finds this light engine
    port = free_port()
    server = subprocess.Popen(cli("serve", "--port", str(port), "--allow-host", "box.example"), env=cli_env(home),
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = Lines(server.stderr).wait_for(rf"serving the workbench on (http://127\.0\.0\.1:{port}/\?token=(\S+)) ",
                                             timeout=30)
        page, token = line.group(1), line.group(2)
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)
        html = page_when_up(page, timeout=30)
        assert f'"ws://127.0.0.1:{port}/ws/{token}"' in html         # the page's websocket carries the token
        base, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        own = {"Origin": base}

        assert (await _get(f"{base}/"))[0] == 403                               # no token
        assert (await _get(f"{base}/?token=wrong"))[0] == 403
        status, text = await _get(page, Host=f"evil.example:{port}")             # DNS rebinding
        assert status == 403 and "is not this server's name" in text
        assert (await _get(page, Host=f"box.example:{port}"))[0] == 200          # --allow-host
        assert f"ws://localhost:{port}/ws/{token}" in (await _get(page, Host=f"localhost:{port}"))[1]

        assert await _handshake(f"{ws}/ws/{token}", Origin="http://evil.example") == 403
        assert await _handshake(f"{ws}/ws/{token}", Origin=f"http://evil.example:{port}",
                                Host=f"evil.example:{port}") == 403
        assert await _handshake(f"{ws}/ws/{token}", Origin=base, Host=f"evil.example:{port}") == 403
        assert await _handshake(f"{ws}/ws", **own) == 403                       # textual-serve's bare /ws
        assert await _handshake(f"{ws}/ws/wrong", **own) == 403
        assert await _handshake(f"{ws}/ws/{token}", **own) == 101               # its own page, with the token
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        kill_daemon(home)
