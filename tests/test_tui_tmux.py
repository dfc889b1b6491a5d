"""End to end in a real terminal: `mmul-workbench` in tmux shows the sessions home, starts the
engine, launches a study from the New-study form and a run from the New-run form on the built-in world, shows
the study's grid and the run's loss curve live, and quits on ctrl+q without stopping the run. The two TUIs share
one home and its engine (as an operator's second session would find it running). Skipped only where tmux is
absent; stops the engine it started."""
from __future__ import annotations

import re
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import link_shared_originals
from sessions_fixtures import wait_for

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
# a tmux server of the tests' own, with no configuration: on the user's server another session's window size or a
# ~/.tmux.conf changed how the panes were laid out (a review's tmux sessions beside these made one test fail)
TMUX = ["tmux", "-L", f"mmul-tests-{os.getpid()}", "-f", "/dev/null"]


def _capture(name: str) -> str:
    return subprocess.run([*TMUX, "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout


def _until(predicate, timeout: float = 30.0, what: str = "the condition"):
    return wait_for(predicate, timeout, interval=0.1, what=what)  # each poll runs tmux: ten a second


def _wait(name: str, predicate, timeout: float = 30.0) -> str:
    screens = []

    def matched():
        screens.append(_capture(name))
        return predicate(screens[-1])
    try:
        _until(matched, timeout, "the screen")
    except AssertionError:
        raise AssertionError(f"screen never matched; last screen:\n{screens[-1] if screens else ''}") from None
    return screens[-1]


BRAILLE_OR_BLOCKS = re.compile(r"[\u2580-\u259f\u2800-\u28ff]")


def _curve_drawn(text: str) -> bool:
    """The monitor is up, the loss plot has a drawn line, and at least 3 steps have arrived."""
    steps = re.search(r"step (\d+)", text)
    plot = "\n".join(line for line in text.splitlines() if "┤" in line or "│" in line)
    return ("loss terms" in text and steps is not None and int(steps.group(1)) >= 3
            and len(BRAILLE_OR_BLOCKS.findall(plot)) >= 5)


@pytest.fixture(scope="module")
def tmux_home(tmp_path_factory):
    """The home both TUIs open, with the shared originals (clip-tiny on shapes-tiny, seed 42, the forms'
    defaults); the engine the first TUI starts is the one the second finds, and stopped at the end."""
    from workbench.client.process import stop_engine

    home = tmp_path_factory.mktemp("tmux-home")
    link_shared_originals(home)
    yield home
    stop_engine(home, timeout=20)


def _send(name: str, *keys: str) -> None:
    subprocess.run([*TMUX, "send-keys", "-t", name, *keys], check=True)


def _cursor(name: str) -> tuple[int, int]:
    out = subprocess.run([*TMUX, "display", "-p", "-t", name, "#{cursor_x} #{cursor_y}"],
                         capture_output=True, text=True).stdout.split()
    return int(out[0]), int(out[1])


def _tab(name: str) -> None:
    """Move focus to the next field and wait until it has moved (the terminal cursor follows the focused
    input): a Tab bubbles up to the app before it moves focus, so keys typed right behind it can still
    land in the field it leaves."""
    before = _cursor(name)
    _send(name, "Tab")
    _until(lambda: _cursor(name) != before, what="Tab to move the focus")


def _replace(name: str, old: str, new: str) -> None:
    """Empty the focused input (it shows ``old``) and type ``new``, each step seen on the screen."""
    _send(name, "C-u")
    _wait(name, lambda t: old not in t)
    _send(name, "-l", "--", new)
    _wait(name, lambda t: re.search(rf"(^|\s){re.escape(new)}(\s|$)", t, re.MULTILINE) is not None)


def _first_cell_filled(text: str) -> bool:
    """The study's grid is up with both methods, and the first one's run has finished: its row has numbers."""
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip().startswith(("ft ", "neggrad "))}
    return ("runs finished" in text and set(rows) == {"ft", "neggrad"}
            and re.search(r"1/1\s+\d+\.\d", rows["ft"]) is not None)  # one seed: values with no ±


def test_tui_in_tmux_launches_a_study_and_its_grid_fills_in(tmux_home):
    """F3 opens the study form; ctrl+s starts ft and neggrad for one epoch on clip-tiny / shapes-tiny (seed 42,
    whose original the shared cache holds once trained: test_study trains it earlier in the suite); the
    grid opens and fills in, with no key, as its first cell finishes through the engine. The study goes on in
    the engine after the TUI quits."""
    home = tmux_home
    cached = any((home / "cache" / "originals").glob("clip-tiny-shapes-tiny-seed42-*"))
    name = f"mmul-{uuid.uuid4().hex[:8]}"
    command = f"cd {ROOT} && MMUL_HOME={home} {sys.executable} -m workbench.cli"
    subprocess.run([*TMUX, "new-session", "-d", "-s", name, "-x", "100", "-y", "30", command], check=True)
    try:
        _wait(name, lambda t: "engine ready" in t, timeout=60)
        _send(name, "F3")
        _wait(name, lambda t: "New study" in t and "retrain,ft,multidelete" in t)
        _replace(name, "retrain,ft,multidelete", "ft,neggrad")
        _tab(name)
        _replace(name, "42,87,21", "42")
        _tab(name)                                # the method flags
        _send(name, "-l", "--", "--epochs 1")
        _wait(name, lambda t: any(line.strip() == "--epochs 1" for line in t.splitlines()))
        started = time.monotonic()
        _send(name, "C-s")
        _wait(name, lambda t: "study-" in t and "method" in t and "runs finished" in t, timeout=30)
        # an original to train (this test alone, on a fresh home) takes minutes on 2 cores; cached, seconds
        _wait(name, _first_cell_filled, timeout=45 if cached else 900)
        print(f"grid filled in {time.monotonic() - started:.1f} s after ctrl+s (original cached: {cached})")
        _send(name, "C-q")
    finally:
        subprocess.run([*TMUX, "kill-session", "-t", name], capture_output=True)


def test_tui_in_tmux_launches_a_run_shows_its_curve_and_quits(tmux_home):
    from sessions.store import SessionStore

    home = tmux_home
    store = SessionStore(home)
    writer = store.create({"method": "ft", "model": "blip-tiny", "data": "shapes-tiny"})
    writer.finish("finished", summary={"metrics": {"df_dr_auc": 0.61}})
    name = f"mmul-{uuid.uuid4().hex[:8]}"
    command = f"cd {ROOT} && MMUL_HOME={home} {sys.executable} -m workbench.cli"
    subprocess.run([*TMUX, "new-session", "-d", "-s", name, "-x", "100", "-y", "30", command], check=True)
    try:
        _wait(name, lambda t: writer.session_id in t and "61.0" in t)  # the AUC in percent
        _wait(name, lambda t: "engine ready" in t, timeout=60)
        subprocess.run([*TMUX, "send-keys", "-t", name, "C-n"], check=True)
        _wait(name, lambda t: "New run" in t and "shapes-tiny" in t)
        earlier = {s["id"] for s in store.list()}  # the study's, the test above's
        subprocess.run([*TMUX, "send-keys", "-t", name, "C-s"], check=True)
        _wait(name, _curve_drawn, timeout=120)
        session = next(s for s in store.list() if s["id"] not in earlier)
        subprocess.run([*TMUX, "send-keys", "-t", name, "C-q"], check=True)
        _until(lambda: subprocess.run([*TMUX, "has-session", "-t", name], capture_output=True).returncode != 0,
               timeout=10, what="the TUI to quit on ctrl+q")
        # closing the TUI left the run going: it takes further steps (or has finished) after the TUI is gone
        steps_at_quit = sum(1 for e in store.events(session["id"]) if e["kind"] == "step")
        _until(lambda: store.get(session["id"])["state"] == "finished"
               or sum(1 for e in store.events(session["id"]) if e["kind"] == "step") > steps_at_quit,
               what="the run to go on after the TUI quit")
        assert store.get(session["id"])["state"] in ("running", "finished")
    finally:
        subprocess.run([*TMUX, "kill-session", "-t", name], capture_output=True)
