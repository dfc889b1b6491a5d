"""End to end in a real terminal: `mmul-workbench` in tmux shows the sessions home, starts the
engine, launches a run on the built-in world from the New-run form, shows its loss curve live, and
quits on ctrl+q without stopping the run. Skipped only where tmux is absent; stops the engine it started."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _capture(name: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout


def _wait(name: str, predicate, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = _capture(name)
        if predicate(text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"screen never matched; last screen:\n{text}")


BRAILLE_OR_BLOCKS = re.compile(r"[\u2580-\u259f\u2800-\u28ff]")


def _curve_drawn(text: str) -> bool:
    """The monitor is up, the loss plot has a drawn line, and at least 3 steps have arrived."""
    steps = re.search(r"step (\d+)", text)
    plot = "\n".join(line for line in text.splitlines() if "┤" in line or "│" in line)
    return ("loss terms" in text and steps is not None and int(steps.group(1)) >= 3
            and len(BRAILLE_OR_BLOCKS.findall(plot)) >= 5)


def test_tui_in_tmux_launches_a_run_shows_its_curve_and_quits(tmp_path):
    from sessions.store import SessionStore
    from workbench.client.process import stop_engine

    home = tmp_path / "home"
    store = SessionStore(home)
    writer = store.create({"method": "ft", "model": "blip-tiny", "data": "shapes-tiny"})
    writer.finish("finished", summary={"metrics": {"df_dr_auc": 0.61}})
    name = f"mmul-{uuid.uuid4().hex[:8]}"
    command = f"cd {ROOT} && MMUL_HOME={home} {sys.executable} -m workbench.cli"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "100", "-y", "30", command], check=True)
    try:
        _wait(name, lambda t: writer.session_id in t and "61.0" in t)  # the AUC in percent
        _wait(name, lambda t: "engine ready" in t, timeout=60)
        subprocess.run(["tmux", "send-keys", "-t", name, "C-n"], check=True)
        _wait(name, lambda t: "New run" in t and "shapes-tiny" in t)
        subprocess.run(["tmux", "send-keys", "-t", name, "C-s"], check=True)
        _wait(name, _curve_drawn, timeout=120)
        session = next(s for s in store.list() if s["id"] != writer.session_id)
        subprocess.run(["tmux", "send-keys", "-t", name, "C-q"], check=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run(["tmux", "has-session", "-t", name], capture_output=True).returncode != 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the TUI did not quit on ctrl+q")
        time.sleep(1.0)
        assert store.get(session["id"])["state"] in ("running", "finished")  # closing the TUI left it going
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
        stop_engine(home, timeout=20)
