"""A study started from the TUI: its `mmul-workbench study` arguments planned here (``cli_study.plan_from_args``,
torch-free) and the study sent to the engine as a job (engine/daemon/studies.py), through the same client
facade as `study --engine` (``workbench.client.follow.submit_study_and_follow``). The engine runs and records
it, so closing the TUI or losing the SSH connection never stops it; one thread here follows it to its end,
for the App's toast.

With `--attacks`, once the engine has finished the study, that thread runs `mmul-workbench study ARGS --engine`
as a child process: the engine finds every cell done, and the child runs the attacks (they import torch, which the
TUI never does) and records them on the study, whose grid gains their columns as they land. The TUI closing
stops the child (`stop`), and a re-run of the study or the same form resumes (attacks made are read back).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from engine.errors import SpecError
from sessions.files import private_dir
from sessions.study import studies_dir

ENDED_CODES = {"finished": 0, "failed": 1, "cancelled": 130}   # as the `study` command would exit
REPO_ROOT = Path(__file__).resolve().parents[1]   # where `python -m workbench.cli` is found


class EngineStudy:
    """A study submitted to the engine (``screens.services.StudyLaunch``): ``study_id`` once the engine has
    accepted it, ``poll`` its exit code once it has ended, ``error`` why, in one line."""

    def __init__(self, args: list[str], home: str | os.PathLike | None = None) -> None:
        self.args, self.home = list(args), home
        self._id: str | None = None
        self._code: int | None = None
        self._error: str | None = None
        self._child: subprocess.Popen | None = None   # the attacks' child process, while it runs
        self._stopping = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="study-launch", daemon=True)
        self._thread.start()

    def poll(self) -> int | None:
        return self._code

    def study_id(self) -> str | None:
        return self._id

    def error(self) -> str | None:
        return self._error if self._code not in (None, 0) else None

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit code once it has ended (None after ``timeout`` seconds)."""
        self._thread.join(timeout)
        return self._code

    def _run(self) -> None:
        import typer

        from workbench.cli_study import check_inputs, plan_from_args
        from workbench.client.errors import EngineError
        from workbench.client.follow import submit_study_and_follow

        try:
            plan = plan_from_args(self.args)
            check_inputs(plan.cells, here=False)
            cells = [{"method": method, "seed": seed, "spec": spec} for method, seed, spec in plan.cells]
            info = submit_study_and_follow(plan.id, plan.spec, cells, lambda cell, event: None,
                                           on_accepted=lambda _: setattr(self, "_id", plan.id), home=self.home)
        except SpecError as exc:
            self._end(2, str(exc))
        except EngineError as exc:
            self._end(1, f"engine: {exc}")
        except typer.Exit as exc:  # a `fail` of the checks the command shares (it said why on stderr)
            self._end(int(exc.exit_code or 2), "the study's arguments were refused (see `mmul-workbench study --help`)")
        except Exception as exc:  # the App shows it as the study's one-line error
            self._end(1, f"{type(exc).__name__}: {exc}".splitlines()[0])
        else:
            if info["state"] == "finished" and any(a == "--attacks" or a.startswith("--attacks=") for a in self.args):
                self._end(*self._attack(plan.id))
                return
            self._end(ENDED_CODES.get(info["state"], 1), info.get("message"))

    def _attack(self, study_id: str) -> tuple[int, str | None]:
        """The study's attacks on its finished cells, in a child `study ... --engine` (exit code, its error line).
        Its stderr goes to `<home>/studies/<id>.attacks.log`, never a pipe this process could leave unread."""
        command = [sys.executable, "-m", "workbench.cli", "study", *self.args, "--engine"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH")))),
               **({"MMUL_HOME": str(self.home)} if self.home is not None else {})}
        log = studies_dir(self.home) / f"{study_id}.attacks.log"
        try:  # in this directory, as the study's paths were given here
            private_dir(log.parent)
            with open(log, "w", encoding="utf-8") as stderr:
                with self._lock:
                    if self._stopping:
                        return 130, "the TUI closed before the study's attacks started; run the study again for them"
                    self._child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                                   stdout=subprocess.DEVNULL, stderr=stderr)
                code = self._child.wait()
        except OSError as exc:
            return 1, f"the study's attacks could not start: {exc}"
        errors = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error: ")]
        return code, (errors[-1].removeprefix("error: ") if errors else None)

    def stop(self) -> None:
        """The TUI is closing: a running attack child is stopped (SIGTERM: it ends its attack session cancelled);
        a re-run of the study reads back the attacks it finished and makes the rest."""
        with self._lock:
            self._stopping = True
            if self._child is not None and self._child.poll() is None:
                self._child.terminate()

    def _end(self, code: int, message: str | None) -> None:
        self._error = message
        self._code = code
