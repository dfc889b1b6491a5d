import os
import sys
from pathlib import Path

import pytest

import engine  # noqa: F401  first: it holds torch's CPU kernels to AVX2 before any test imports torch (engine/cpu_kernels.py)

ROOT = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two workers on two cores: one torch thread each (and in the processes they start), not two each fighting
    # over the cores; the tiny models gain nothing from a second thread
    os.environ.setdefault("OMP_NUM_THREADS", "1")


# The test files that take longest (worker seconds in fresh-ci, most first): each runs whole on one worker
# (`--dist loadfile`, pyproject's addopts) and these start first, so that the last file a worker takes is a short one
# and no long test starts last to set the suite's tail; a module-scoped fixture (a measured step, a trained run) is
# also built once, not once per worker. Files not named keep their order after these. Files that train the same
# original are kept apart at the start, so that one worker does not wait on the other's training.
SLOW_FILES = (
    "test_cache_keys.py", "test_requests.py", "test_resume.py", "test_parallel.py", "test_classification.py", "test_plan.py",
    "test_pulse_methods.py", "test_tui_tmux.py", "test_tui.py", "test_study_engine.py", "test_cluster.py",
    "test_graph_text.py", "test_disk_full.py", "test_guards.py", "test_engine_hardening.py",
    "test_engine_daemon.py", "test_cli.py", "test_engine_daemon_real.py", "test_browser.py", "test_study.py",
    "test_models.py", "test_tune.py", "test_tui_forms.py", "test_tui_snapshots.py", "test_report.py",
    "test_gcn_bert.py", "test_tui_studies.py", "test_attacks_sessions.py", "test_pulse.py", "test_fact_deletion.py",
    "test_data_scale.py", "test_attacks_people.py", "test_generated_params.py", "test_input_checks.py",
    "test_step_cache.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: place for place, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's tests keep their order


def shared_originals() -> Path:
    """The tiny original models every test process shares (``$MMUL_TEST_CACHE``, default
    ``<repo>/.mmul-home/cache``, git-ignored): entries are keyed by content and produced under a per-key lock,
    so parallel test workers train each original once between them."""
    path = Path(os.environ.get("MMUL_TEST_CACHE") or ROOT / ".mmul-home" / "cache") / "originals"
    path.mkdir(parents=True, exist_ok=True)
    return path


def link_shared_originals(home: Path) -> None:
    (home / "cache").mkdir(parents=True, exist_ok=True)
    (home / "cache" / "originals").symlink_to(shared_originals(), target_is_directory=True)


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory):
    """One $MMUL_HOME for tests that may share the cached tiny original models (trained once)."""
    home = tmp_path_factory.mktemp("mmul-home")
    link_shared_originals(home)
    return home


@pytest.fixture
def home(shared_home, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(shared_home))
    return shared_home


def run_in_memory(spec: dict) -> tuple[dict, list[dict]]:
    """Run a validated spec in this process (engine.jobs.run_job) with a writer that keeps its events in a list:
    (the run's document, its events)."""
    from engine.jobs import run_job

    events: list[dict] = []

    class Writer:
        session_id = None

        @staticmethod
        def emit(kind, **fields):
            events.append({"kind": kind, **fields})

    return run_job(spec, Writer, lambda: False), events


def cli_env(home: Path) -> dict:
    env = dict(os.environ, MMUL_HOME=str(home), PYTHONUNBUFFERED="1")
    env.pop("MMUL_DEBUG", None)
    return env


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", *args]


def run_in_process(home: Path, *args: str, env: dict | None = None):
    """``mmul-workbench ARGS`` through the typer app in this process, with ``MMUL_HOME=home``: its exit code,
    stdout and stderr as a ``subprocess.CompletedProcess``, without a fresh interpreter importing torch and
    transformers (5-10 s a call on a loaded 2-core machine). For tests about what a command prints and exits
    with; a test about the process itself (signals, the daemon, the torch-free start, tmux, umask) runs the real
    one (``cli``). An exception the command did not turn into an exit is raised here, traceback and all, as a
    real process would print it."""
    import subprocess

    from typer.testing import CliRunner

    from workbench.cli import app

    result = CliRunner().invoke(app, list(args), prog_name="mmul-workbench",
                                env={"MMUL_HOME": str(home), "MMUL_DEBUG": None, **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["mmul-workbench", *args], result.exit_code, result.stdout, result.stderr)


async def until_value(probe, done, timeout: float = 30.0, interval: float = 0.01):
    """Await ``probe()`` (a coroutine function) until ``done(value)``, and return that value; fail with the last
    value after ``timeout`` seconds: the tests' one asynchronous waiting loop."""
    import asyncio
    import time

    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        value = await probe()
        if done(value):
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"not there in {timeout:g} s; last: {str(value)[:2000]}")


async def until(condition, timeout: float = 30.0) -> None:
    """Await until ``condition()`` holds, for asyncio code without a Textual pilot (an engine in-process)."""
    async def probe():
        return condition()
    await until_value(probe, bool, timeout)


def count_ticks(screen) -> list:
    """Count a MonitorScreen's timer ticks (one entry each) from before it is mounted: ``set_interval`` takes
    the bound name at mount, so this instance attribute is what ticks."""
    ticks: list = []
    tick = screen.tick

    def counted_tick() -> None:
        ticks.append(1)
        tick()

    screen.tick = counted_tick
    return ticks


def form_ready(screen) -> bool:
    """Whether every Select of a form has handled its Mount (it sets its initial value then: a value set before
    that, under load, was put back, and the method's fields never showed)."""
    from textual.widgets import Select

    selects = list(screen.query(Select))
    return bool(selects) and all(select.is_mounted for select in selects)


def param_shown(screen, name: str) -> bool:
    """Whether the New-run form shows the field of parameter ``name`` (the fields of the methods chosen so far are
    mounted; the chosen method's are displayed)."""
    found = screen.query(f"#p-{name}")
    return bool(found) and bool(found.first().parent.display)


async def wait_until(pilot, predicate, timeout: float = 10.0, interval: float = 0.05) -> None:
    """Let a Textual pilot run until ``predicate()`` holds, checking every ``interval`` seconds of app time
    (the pilot's pause lets the app handle what is pending); fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(interval)
    raise AssertionError("condition not met in time")
