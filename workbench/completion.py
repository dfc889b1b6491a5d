"""Shell completion (typer's): the values the options and arguments take, offered with their one-line help.

`mmul-workbench --install-completion` adds the completion script to the user's shell (bash, zsh, fish,
PowerShell); the shell then runs `mmul-workbench` with `_MMUL_WORKBENCH_COMPLETE` set on every TAB, which
calls the callbacks below. Each must answer in a blink, so each reads only the torch-free catalogue
(`engine.spec`) or the session catalog (one JSON file, never rewritten here), and a store it cannot read
completes nothing rather than printing an error into the shell.
"""
from __future__ import annotations

from typing import Iterable

from engine import spec as specs

Completion = tuple[str, str]  # (value, help): bash shows the values; zsh and fish show the help beside them
HELP_WIDTH = 50  # a longer help wraps in typer's rendering, and a wrapped line breaks zsh's completion list


def starting_with(incomplete: str, choices: Iterable[Completion]) -> list[Completion]:
    return [(value, brief(help_text)) for value, help_text in choices if value.startswith(incomplete)]


def brief(text: str) -> str:
    """The help's first clause, cut at a word to fit HELP_WIDTH."""
    text = text.split(";")[0].split(" (")[0].strip()
    return text if len(text) <= HELP_WIDTH else text[:HELP_WIDTH - 1].rsplit(" ", 1)[0].rstrip(",:") + "…"


def method_choices(names: Iterable[str] = ()) -> list[Completion]:
    """Every method (or those in ``names``) and its aliases."""
    choices = []
    for method in (specs.METHODS[name] for name in names or specs.METHODS):
        choices.append((method.name, method.summary))
        choices += [(alias, f"= {method.name}") for alias in method.aliases]
    return choices


def complete_method(incomplete: str) -> list[Completion]:
    return starting_with(incomplete, method_choices())


def complete_pulse_method(incomplete: str) -> list[Completion]:
    return starting_with(incomplete, method_choices(specs.PULSE_METHODS))


def complete_method_list(incomplete: str) -> list[Completion]:
    """`--methods A,B,..`: completes the name after the last comma, keeping those before it."""
    done, comma, last = incomplete.rpartition(",")
    taken = set(done.split(","))
    return [(done + comma + value, help_text) for value, help_text in starting_with(last, method_choices())
            if value not in taken]


def complete_model(incomplete: str) -> list[Completion]:
    return starting_with(incomplete, ((m.name, f"{m.family}: {m.summary}") for m in specs.MODELS.values()))


def complete_data(incomplete: str) -> list[Completion]:
    """Built-in worlds by name; real formats as `FORMAT:` (the shell's own path completion does the rest)."""
    worlds = [*specs.WORLDS.values(), *specs.PEOPLE_WORLDS.values()]
    formats = [(f"{d.name}:", f"{d.kind}: {d.summary}") for d in specs.DATA_FORMATS.values()]
    return starting_with(incomplete, [*((d.name, f"{d.kind}: {d.summary}") for d in worlds), *formats])


def complete_task(incomplete: str) -> list[Completion]:
    return starting_with(incomplete, ((name, specs.TASKS[name].summary) for name in specs.RUN_TASKS))


def complete_device(incomplete: str) -> list[Completion]:
    return starting_with(incomplete, [("auto", "CUDA where there is one, else the CPU"), ("cpu", ""),
                                      ("cuda", "the first CUDA device"), ("cuda:", "cuda:N, the Nth CUDA device")])


def complete_session(incomplete: str) -> list[Completion]:
    """Session ids, newest first: those starting with what was typed, else those containing it (the CLI
    takes a unique suffix such as `ab12` too)."""
    rows = session_rows()
    described = [(row["id"], " ".join(str(row.get(k) or "") for k in ("state", "method", "model", "data")).strip())
                 for row in rows]
    return starting_with(incomplete, described) or [(sid, text) for sid, text in described if incomplete in sid]


def session_rows() -> list[dict]:
    """The catalog's rows, newest first; the session directories' names when the catalog cannot be read."""
    from sessions.catalog import read_rows
    from sessions.store import SessionStore

    store = SessionStore()
    try:
        rows = [row for row in read_rows(store.catalog_path) if isinstance(row.get("id"), str)]
    except (OSError, ValueError, RuntimeError):  # damaged or of another schema: `sessions check` says why
        rows = [{"id": sid} for sid in store.session_ids()]
    return sorted(rows, key=lambda row: row["id"], reverse=True)  # ids begin with their UTC creation time


def complete_study(incomplete: str) -> list[Completion]:
    """Study ids (`study` prints them; `$MMUL_HOME/studies/<id>.json`), newest first."""
    from sessions.study import studies_dir

    try:
        records = sorted(studies_dir().glob("study-*.json"), key=lambda path: path.stat().st_mtime, reverse=True)
    except OSError:
        return []
    return starting_with(incomplete, ((path.stem, "") for path in records))
