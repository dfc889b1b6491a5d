"""Writes docs/pages/cli.md, the CLI reference, from the typer app itself (never by hand).

Typer's own Markdown writer (`typer.cli.get_docs_for_click`, what `typer workbench.cli utils docs` runs) walks
the command tree typer builds from `workbench.cli`'s app: one section per command with its help, usage, arguments
and options. Torch-free, like `--help`.

    .venv/bin/python docs/gen_cli.py            # rewrite docs/pages/cli.md
    .venv/bin/python docs/gen_cli.py --check    # exit 1 when docs/pages/cli.md differs from what the app gives

tests/test_docs.py runs the check, so a new flag or command without a regenerated page fails the suite.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "pages" / "cli.md"
PROG = "mmul-workbench"

INTRO = f"""Generated from the typer app (`workbench.cli`) by `docs/gen_cli.py` with typer's own Markdown writer
(what `typer workbench.cli utils docs` prints); do not edit by hand: run `.venv/bin/python docs/gen_cli.py` after
changing a command (tests/test_docs.py fails while this page and the app disagree). `{PROG} COMMAND --help`
prints the same on a terminal. Method parameters are generated from the catalogue (`engine/spec/catalog.py`);
what each method takes is in [Methods](methods.md).
"""


def render() -> str:
    import typer
    from typer.cli import get_docs_for_click

    from workbench.cli import app

    root = typer.main.get_command(app)
    text = get_docs_for_click(obj=root, ctx=typer.Context(root), name=PROG, title="CLI reference").strip()
    title, _, rest = text.partition("\n\n")
    return f"{title}\n\n{INTRO}\n{rest}\n"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    text = render()
    if argv[:1] == ["--check"]:
        if PAGE.read_text() != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run .venv/bin/python docs/gen_cli.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(PAGE.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
