"""The README and the docs site: one screen of README, the test command CI runs, every relative link and anchor
resolving, `mkdocs build --strict` passing (mkdocs is in the test extra; without it the link check still runs),
and the CLI reference matching the typer app it is generated from."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = DOCS / "pages"  # the site's docs_dir: mkdocs wants it a child of docs/mkdocs.yml's folder
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*```")


def slug(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading; GitHub's agrees on the headings linked here."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def prose(path: Path) -> list[str]:
    """The file's lines outside fenced code."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(path: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in prose(path) if re.match(r"#{1,6} ", line)}


def broken_links(path: Path) -> list[str]:
    """Every relative link of a Markdown file whose file or anchor does not exist, as `file: link (why)`."""
    problems = []
    for line in prose(path):
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                problems.append(f"{path.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{path.name}: {target} (no such heading)")
    return problems


def test_readme_is_one_screen_and_keeps_ci_s_test_command():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_command.endswith(".venv/bin/python -m pytest")
    assert f"```\n{ci_command}\n```" in readme  # the README's test command is exactly what CI runs


def test_every_relative_link_of_the_readme_and_the_docs_resolves():
    pages = [ROOT / "README.md", *sorted(PAGES.rglob("*.md"))]
    assert len(pages) > 10
    problems = [problem for page in pages for problem in broken_links(page)]
    assert problems == []


def test_the_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Studies: several seeds, scored against Retrain\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#studies-several-seeds-scored-against-retrain) [here](#page)\n"
                    "[gone](missing.md) [no heading](other.md#nowhere) ![img](img/x.svg) [web](https://x.org)\n"
                    "`[code](not-a-link.md)`\n```\n[fenced](not-a-link-either.md)\n```\n")
    assert broken_links(page) == ["page.md: missing.md (no such file)", "page.md: other.md#nowhere (no such heading)",
                                  "page.md: img/x.svg (no such file)"]


def test_cli_reference_matches_the_typer_app():
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    gen_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_cli)
    assert (PAGES / "cli.md").read_text() == gen_cli.render(), "docs/pages/cli.md is stale: run docs/gen_cli.py"


def test_the_readme_screenshot_is_the_monitor_as_it_draws_now(monkeypatch):
    """The README's picture showed `lr 0.00025` after the status line had changed to `lr 2.5e-04` (a review): it is
    made again here (the same fixed run, the same size) and must be the one in the docs."""
    spec = importlib.util.spec_from_file_location("screenshot", DOCS / "screenshot.py")
    screenshot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(screenshot)
    monkeypatch.setenv("MMUL_HOME", "unused")  # picture() points it at a home of its own
    assert screenshot.OUT.read_text() == screenshot.picture(), "docs/pages/img/monitor.svg is stale: run docs/screenshot.py"


def test_mkdocs_strict_build(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs / mkdocs-material not installed (pip install -e '.[docs]'); links checked above")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(DOCS / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, env=env, timeout=300)
    # never -q: mkdocs counts the warnings that fail --strict only while it logs them
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "cli" / "index.html").exists()
