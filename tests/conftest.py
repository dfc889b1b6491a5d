import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory):
    """One $MMUL_HOME for tests that may share the cached tiny original models (trained once)."""
    return tmp_path_factory.mktemp("mmul-home")


@pytest.fixture
def home(shared_home, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(shared_home))
    return shared_home


def cli_env(home: Path) -> dict:
    env = dict(os.environ, MMUL_HOME=str(home), PYTHONUNBUFFERED="1")
    env.pop("MMUL_DEBUG", None)
    return env


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", *args]


async def wait_until(pilot, predicate, timeout: float = 10.0) -> None:
    """Let a Textual pilot run until ``predicate()`` holds; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met in time")
