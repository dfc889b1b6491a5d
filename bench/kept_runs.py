"""One `mmul-workbench ... --json` run as a subprocess whose document is kept under $MMUL_HOME/KEEP/, so that a
bench grid re-run after a failure or an interruption runs only the cells it has no document for. A kept document
is keyed by the command and the engine's source, so a grid re-run after the engine changed (a recipe, a world, a
method) runs again instead of reporting what the old code measured."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@functools.cache  # once per grid: the engine it starts with is the one its documents are measured with
def engine_source_digest() -> str:
    """A digest of every engine source file's path and bytes: what a kept document was measured with."""
    digest = hashlib.sha1()
    for path in sorted((ROOT / "engine").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def run_kept(args: list[str], env: dict, keep: str) -> dict:
    """The `--json` document of `python -m workbench.cli ARGS`, with its `wall_seconds`; SystemExit on failure."""
    key = hashlib.sha1((" ".join(args) + "\0" + engine_source_digest()).encode()).hexdigest()[:16]
    kept = Path(env["MMUL_HOME"]) / keep / (key + ".json")
    if kept.exists():
        return json.loads(kept.read_text())
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise SystemExit(f"mmul-workbench {' '.join(args)} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    document = json.loads(result.stdout)
    document["wall_seconds"] = round(time.perf_counter() - started, 1)
    kept.parent.mkdir(parents=True, exist_ok=True)
    staging = kept.with_suffix(".tmp")
    staging.write_text(json.dumps(document))
    os.replace(staging, kept)
    return document


def add_grid_options(parser, seeds: str = "42,87,21") -> None:
    """The options every kept-run grid takes: the seeds, the home its runs share, where its grid goes."""
    parser.add_argument("--seeds", default=seeds)
    parser.add_argument("--home", default=None, help="MMUL_HOME for the runs (default: $MMUL_HOME or a temp dir)")
    parser.add_argument("--json-out", default=None, help="write the grid here (a results record's input)")


def grid_env(home: str | None, prefix: str) -> dict:
    """This environment with MMUL_HOME set to `home`, else $MMUL_HOME, else a new temp dir."""
    env = dict(os.environ)
    env["MMUL_HOME"] = home or env.get("MMUL_HOME") or tempfile.mkdtemp(prefix=prefix)
    return env
