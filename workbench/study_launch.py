"""A study started from the TUI: `mmul-workbench study ARGS --json` in its own detached process (as the
engine is started: a new session, stdin closed, output to files), so closing the TUI or losing the SSH
connection never stops it. Its stderr goes to ``$MMUL_HOME/studies/launches/<stamp>.log`` (where the
study says its id first, then its cells' progress), its JSON document to ``<stamp>.json`` and its process
id to ``<stamp>.pid`` (to stop it: ``kill $(cat <stamp>.pid)``; the same `study` command resumes it)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from sessions.files import private_dir
from sessions.study import studies_dir

STUDY_SAID = re.compile(r"\bstudy (study-[0-9a-f]{12})\b")
HEAD_BYTES = 65_536   # the id comes in the first lines
TAIL_BYTES = 4_096    # the error is the last line


class StudyProcess:
    """The study's process and its files (``screens.services.StudyLaunch``)."""

    def __init__(self, args: list[str], home: str | os.PathLike | None = None) -> None:
        directory = private_dir(studies_dir(home) / "launches")
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 1_000_000}"
        self.log, self.out = directory / f"{stamp}.log", directory / f"{stamp}.json"
        env = dict(os.environ, PYTHONUNBUFFERED="1", **({"MMUL_HOME": str(home)} if home is not None else {}))
        self.args = ["study", *args, "--json"]
        with open(self.log, "wb") as log, open(self.out, "wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "workbench.cli", *self.args],
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=log,
                                            start_new_session=True, env=env)
        self.pid_file = directory / f"{stamp}.pid"
        self.pid_file.write_text(f"{self.process.pid}\n")
        self._id: str | None = None

    def poll(self) -> int | None:
        return self.process.poll()

    def study_id(self) -> str | None:
        if self._id is None:
            found = STUDY_SAID.search(_read(self.log, 0, HEAD_BYTES))
            if found is None and self.poll() == 0:  # every cell had finished already: only the document says it
                try:
                    found_id = json.loads(self.out.read_text()).get("study")
                except (OSError, ValueError, AttributeError):
                    found_id = None
                self._id = found_id if isinstance(found_id, str) else None
            elif found is not None:
                self._id = found.group(1)
        return self._id

    def error(self) -> str | None:
        code = self.poll()
        if code in (None, 0):
            return None
        lines = [line.strip() for line in _read(self.log, -TAIL_BYTES, TAIL_BYTES).splitlines() if line.strip()]
        said = next((line for line in reversed(lines) if line.startswith("error:")), None)
        return said[len("error:"):].strip() if said else f"the study exited with code {code}; see {self.log}"


def _read(path: Path, offset: int, size: int) -> str:
    try:
        with open(path, "rb") as handle:
            if offset < 0:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) + offset))
            return handle.read(size).decode("utf-8", "replace")
    except OSError:
        return ""
