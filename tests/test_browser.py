"""In headless Chromium: `sessions report`'s HTML draws its SVG plots, and `serve` shows the sessions home.

Chromium is driven over the DevTools protocol (`--remote-debugging-port`, a websocket through aiohttp, which
textual-serve brings): the report's plots are screenshotted one by one and must hold drawn, coloured curves;
`serve`'s page renders the TUI with xterm.js on a canvas, so the test reads the terminal's text from xterm's
buffer (a hook in the page keeps the `terminal` textual-serve creates). Skipped, with the reason, only where
Chromium is absent (`.ci/run` installs Debian's `chromium`). Every wait is on a condition, bounded.
"""
from __future__ import annotations

import base64
import io
import json
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from conftest import ROOT, cli, cli_env, until_value
from sessions_fixtures import wait_for

CHROMIUM = next((path for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                 if (path := shutil.which(name))), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (`apt-get install chromium`; "
                                "`.ci/run` does): the headless-browser tests need it")

# textual.js keeps xterm's Terminal in `this.terminal` of an object the page never exposes: a setter on
# Object.prototype, installed before the page's scripts run, catches that assignment and keeps the terminal
KEEP_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  get() { return undefined; },
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
    if (value && value.buffer && value.buffer.active) window.__mmulTerminal = value;
  },
});
"""
SCREEN_TEXT = """(() => {
  const t = window.__mmulTerminal;
  if (!t) return null;
  const buffer = t.buffer.active, rows = [];
  for (let i = 0; i < t.rows; i++) {
    const line = buffer.getLine(buffer.viewportY + i);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows.join("\\n");
})()"""


class Lines:
    """A process's stderr read by a thread (so the pipe never fills), lines handed over through a queue."""

    def __init__(self, stream):
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.queue.put(line)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.queue.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r} in {timeout} s; got:\n{''.join(self.seen)[-3000:]}")


class Page:
    """One Chromium tab over the DevTools protocol: commands by id, events skipped."""

    def __init__(self, ws):
        self.ws, self.last_id = ws, 0

    async def call(self, method: str, **params) -> dict:
        self.last_id += 1
        await self.ws.send_json({"id": self.last_id, "method": method, "params": params})
        while True:
            reply = json.loads((await self.ws.receive(timeout=30)).data)
            if reply.get("id") == self.last_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, done, timeout: float = 20.0):
        """Evaluate until ``done(value)``; the last value in the failure."""
        return await until_value(lambda: self.evaluate(expression), done, timeout, interval=0.1)


def page_when_up(url: str, timeout: float) -> str:
    """The page at ``url`` once its server answers (refused connections retried until ``timeout``)."""
    def page() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read().decode()
        except urllib.error.URLError:
            return None
    return wait_for(page, timeout, interval=0.1, what=f"{url} to answer")


@asynccontextmanager
async def chromium_page(tmp_path: Path, width: int = 1280, height: int = 900):
    import aiohttp

    browser = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking", f"--window-size={width},{height}",
         "--remote-debugging-port=0", f"--user-data-dir={tmp_path / 'chromium-profile'}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = Lines(browser.stderr).wait_for(r"DevTools listening on ws://[^:]+:(\d+)/", timeout=30).group(1)
        target = next(t for t in json.loads(page_when_up(f"http://127.0.0.1:{port}/json/list", timeout=30))
                      if t["type"] == "page")
        async with aiohttp.ClientSession() as client:
            async with client.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield Page(ws)
    finally:
        browser.terminate()
        browser.wait(timeout=20)


def non_blank(png: bytes) -> tuple[float, int]:
    """(share of pixels unlike the background, how many pixels are strongly coloured, i.e. not grey)."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int32).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    drawn = float((np.abs(pixels - background).max(axis=1) > 40).mean())
    coloured = int((pixels.max(axis=1) - pixels.min(axis=1) > 80).sum())
    return drawn, coloured


@needs_chromium
async def test_report_plots_render_in_chromium(tmp_path, monkeypatch):
    from test_report import invoke, make

    monkeypatch.setenv("MMUL_HOME", str(tmp_path / "home"))
    out = tmp_path / "report.html"
    assert invoke(make(tmp_path / "home", "multidelete", 0.7032, 50.23), "--out", str(out)).exit_code == 0
    async with chromium_page(tmp_path) as page:
        await page.call("Page.enable")
        await page.call("Page.navigate", url=out.as_uri())
        await page.wait_for("document.readyState", lambda state: state == "complete")
        boxes = await page.evaluate("""[...document.querySelectorAll("svg")].map(svg => {
            const r = svg.getBoundingClientRect();
            return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height,
                    marks: svg.querySelectorAll("path, polyline, line, use").length,
                    legend: svg.querySelector('[id^="legend"]') !== null};
        })""")
        assert len(boxes) == 4, boxes  # the panels: forget, keep, privacy, loss terms
        assert all(box["legend"] for box in boxes), boxes  # every SVG has its legend
        verdict_y = await page.evaluate('document.querySelector(".verdict").getBoundingClientRect().y + scrollY')
        assert verdict_y < min(box["y"] for box in boxes)  # the verdict is read before the first plot
        for box in boxes:
            assert box["width"] > 200 and box["height"] > 100 and box["marks"] > 10, box  # laid out, with marks
            shot = await page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                   clip={"x": box["x"], "y": box["y"], "width": box["width"],
                                         "height": box["height"], "scale": 1})
            drawn, coloured = non_blank(base64.b64decode(shot["data"]))
            # axes, ticks and labels cover a few percent of a plot; the curves are the coloured pixels
            assert drawn > 0.02 and coloured > 40, (box, drawn, coloured)  # a one-point panel: about 60


@needs_chromium
async def test_several_sessions_and_study_reports_have_legends_and_verdicts_first(tmp_path, monkeypatch):
    """Issue 25: the report's study plots had no legend; a several-session report opens with each session's
    verdict before the first plot, and every SVG of it (folded sections' too) and of a study report has a legend."""
    from test_report import STUDY, invoke, make, write_study

    home = tmp_path / "home"
    monkeypatch.setenv("MMUL_HOME", str(home))
    runs = [make(home, method, auc, 50.0) for method, auc in (("multidelete", 0.70), ("ft", 0.85), ("retrain", 0.65))]
    cells = []
    for seed in (42, 7):
        for method in ("retrain", "ft", "multidelete"):
            cells.append({"method": method, "seed": seed, "state": "finished",
                          "session": make(home, method, 0.6, 50.0, seed=seed, steps=40 if method == "ft" else 80)})
    write_study(home, cells)
    several, study = tmp_path / "several.html", tmp_path / "study.html"
    assert invoke(*runs, "--out", str(several)).exit_code == 0
    assert invoke("--study", STUDY, "--out", str(study)).exit_code == 0
    async with chromium_page(tmp_path) as page:
        await page.call("Page.enable")
        for out, verdicts in ((several, 3), (study, 0)):
            await page.call("Page.navigate", url=out.as_uri())
            await page.wait_for("document.readyState", lambda state: state == "complete")
            found = await page.evaluate("""(() => {
                const svgs = [...document.querySelectorAll("svg")];
                const top = el => el.getBoundingClientRect().y + scrollY;
                const shown = svgs.filter(svg => svg.getBoundingClientRect().height > 0);
                return {svgs: svgs.length, legends: svgs.filter(s => s.querySelector('[id^="legend"]')).length,
                        verdicts: [...document.querySelectorAll(".verdict")].map(top),
                        first_plot: Math.min(...shown.map(top))};
            })()""")
            assert found["svgs"] >= 3 and found["legends"] == found["svgs"], (out.name, found)
            # each session's verdict before the first plot (its folded section repeats it further down)
            assert sum(y < found["first_plot"] for y in found["verdicts"]) == verdicts, (out.name, found)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@needs_chromium
async def test_serve_shows_the_sessions_home_in_chromium(tmp_path):
    from sessions.store import SessionStore
    from sessions_fixtures import kill_daemon, start_daemon

    home = tmp_path / "home"
    writer = SessionStore(home).create({"method": "ft", "model": "blip-tiny", "data": "shapes-tiny"})
    writer.finish("finished", summary={"metrics": {"df_dr_auc": 0.61}})
    start_daemon(home)  # a light engine, so the TUI in the page does not start (and load torch for) a real one
    port = free_port()
    server = subprocess.Popen(cli("serve", "--port", str(port)), env=cli_env(home), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url, token = Lines(server.stderr).wait_for(
            rf"serving the workbench on (http://127\.0\.0\.1:{port}/\?token=(\S+)) ", timeout=30).groups()
        # aiohttp announces start-up a moment before its socket listens: poll until the page answers
        assert f"ws://127.0.0.1:{port}/ws/{token}" in page_when_up(url, timeout=30)  # the page's terminal websocket
        async with chromium_page(tmp_path) as page:
            await page.call("Page.enable")
            await page.call("Page.addScriptToEvaluateOnNewDocument", source=KEEP_TERMINAL)
            await page.call("Page.navigate", url=url)
            # the sessions home: its table with the stored session, its AUC in percent
            screen = await page.wait_for(SCREEN_TEXT, lambda text: bool(text) and writer.session_id in text
                                         and "61.0" in text, timeout=30)
            row = next(line for line in screen.splitlines() if writer.session_id in line)
            assert "finished" in row and "shapes-tiny" in row and "blip-tiny" in row, screen
    finally:
        server.send_signal(signal.SIGTERM)  # textual-serve shuts down gracefully and stops the TUI it ran
        server.wait(timeout=20)
        kill_daemon(home)


def test_serve_refuses_a_port_in_use_or_an_address_not_here(tmp_path):
    from workbench.cli_serve import bind_problem

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(cli("serve", "--port", str(port)), env=cli_env(tmp_path), cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 2 and out.stdout == "", out.stderr
        assert out.stderr == f"error: port {port} on 127.0.0.1 is in use (another server?); pick a free one, e.g. " \
                             f"--port {port + 1}\n"
    assert bind_problem("192.0.2.1", 8000) == "--host 192.0.2.1 is not an address of this machine; use 127.0.0.1 " \
                                              "(the default)"
    assert bind_problem("127.0.0.1", 70000) == "--port 70000 is not a TCP port; use one in 1-65535, e.g. 8000"
    # an empty host listened on every interface while announcing localhost (a review)
    assert bind_problem("", 8000) == "--host is empty; give 127.0.0.1 (the default) or, to listen on every interface, " \
        "0.0.0.0"
    assert bind_problem("127.0.0.1", free_port()) is None


def test_serve_does_not_load_torch():
    probe = ("import sys; from workbench.cli import app; from workbench import cli_serve; "
             "import textual_serve.server; cli_serve.bind_problem('127.0.0.1', 8000); "
             "print(sorted(m for m in ('torch', 'transformers', 'torch_geometric', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
