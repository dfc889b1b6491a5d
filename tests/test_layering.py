"""The import rules of DESIGN.md section 2: import-linter's contracts (pyproject.toml) hold, no private
name is imported across modules, and our generic package names resolve to this repository."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("workbench", "screens", "sessions", "engine")


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.fail(f"{lint} is missing: pip install -e '.[test]' (import-linter)")
    out = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " 0 broken" in out.stdout


def private_imports(package: str) -> list[str]:
    """``from x import _name`` where x is another module of ours (a module's own names stay private)."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                found += [f"{path.relative_to(ROOT)}: from {node.module} import {alias.name}"
                          for alias in node.names if alias.name.startswith("_")]
    return found


@pytest.mark.parametrize("package", ["workbench", "screens", "sessions"])
def test_no_private_name_imported_across_modules(package):
    assert private_imports(package) == []


def test_packages_resolve_to_this_repo(tmp_path):
    """`workbench` (and the others) are generic names, one is on PyPI: imported from anywhere, ours win."""
    code = "import importlib; print('\\n'.join(importlib.import_module(p).__file__ for p in %r))" % (PACKAGES,)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    files = [Path(line).resolve() for line in out.stdout.split()]
    assert len(files) == len(PACKAGES)
    for package, file in zip(PACKAGES, files):
        assert file == ROOT / package / "__init__.py", (package, file)
