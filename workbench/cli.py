"""`mmul-workbench`: the TUI by default, and every action as a headless subcommand.

Nothing heavy at import: torch and transformers load inside the commands that run a model, so
`--help`, `methods`, `models`, `data list` and `sessions` start instantly.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from engine import spec as specs
from engine.errors import SpecError
from sessions.errors import DiskFull
from sessions.paths import cache_dir, mmul_home
from workbench.completion import complete_session
from workbench.output import Exit, fail, os_error_line, parser_errors, print_json

app = typer.Typer(
    name="mmul-workbench",
    help="Multimodal machine unlearning workbench: MultiDelete, PULSE-style requests, baselines, sessions.",
    no_args_is_help=False,
    add_completion=True,  # --install-completion / --show-completion; the values: workbench/completion.py
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Built-in worlds and real-format data.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _register_subcommands() -> None:
    from workbench import (cli_attack, cli_compare, cli_plan, cli_pulse, cli_report, cli_resume, cli_run, cli_serve,
                           cli_study)
    from workbench.cli_engine import engine_app
    from workbench.cli_sessions import sessions_app

    cli_run.register(app)
    cli_pulse.register(app)
    cli_resume.register(app)
    cli_study.register(app)
    cli_plan.register(app)
    cli_serve.register(app)
    cli_attack.register(app)
    cli_report.register(sessions_app)
    cli_compare.register(sessions_app)

    app.add_typer(sessions_app, name="sessions", help="List, show, compare, export, report and delete sessions.")
    app.add_typer(engine_app, name="engine", help="Start, stop and inspect the engine daemon.")


_register_subcommands()


@app.callback(invoke_without_command=True)
def default(ctx: typer.Context) -> None:
    """Open the workbench TUI (starts the engine if needed)."""
    if ctx.invoked_subcommand is None:
        from workbench.tui import run_tui

        raise typer.Exit(run_tui())


# --- catalogue ------------------------------------------------------------------------------------
@app.command()
def methods(as_json: bool = typer.Option(False, "--json", help="one JSON document on stdout")) -> None:
    """List the unlearning methods and their parameters."""
    rows = specs.method_rows()
    if as_json:
        return print_json({"methods": rows})
    for row in rows:
        params = " ".join(f"--{specs.dash(p['name'])}={p['default']}" for p in row["params"])
        name = row["name"] + "".join(f" ({alias})" for alias in row["aliases"])
        print(f"{name:<12} {row['summary']}" + (f"  [{params}]" if params else ""))
        print(f"{'':<12} variant: {row['variant']}")
        print(f"{'':<12} budget: {row['budget']}")


@app.command()
def models(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the registered models (a checkpoint directory or a hub id works too)."""
    rows = [{"name": m.name, "family": m.family, "summary": m.summary} for m in specs.MODELS.values()]
    if as_json:
        return print_json({"models": rows})
    name, family = (max(len(row[key]) for row in rows) for key in ("name", "family"))  # qwen2-vl-tiny is 13
    for row in rows:
        print(f"{row['name']:<{name}} {row['family']:<{family}} {row['summary']}")


@data_app.command("list")
def data_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the built-in worlds and the real formats accepted as FORMAT:PATH."""
    rows = [{"name": d.name, "kind": d.kind, "summary": d.summary, "builtin": True} for d in specs.WORLDS.values()]
    rows += [{"name": d.name, "kind": d.kind, "summary": d.summary, "builtin": True}
             for d in specs.PEOPLE_WORLDS.values()]
    rows += [{"name": f"{d.name}:PATH", "kind": d.kind, "summary": d.summary, "builtin": False}
             for d in specs.DATA_FORMATS.values()]
    if as_json:
        return print_json({"data": rows})
    name, kind = (max(len(row[key]) for row in rows) for key in ("name", "kind"))
    for row in rows:
        print(f"{row['name']:<{name}} {row['kind']:<{kind}} {row['summary']}")


@data_app.command("export")
def data_export(
    world: str = typer.Argument(..., help="built-in world: shapes (flickr30k, coco), shapes-ve (snli-ve), "
                               "shapes-nlvr2 (nlvr2), graph (graph-text), people (mmbench, mllmu)"),
    directory: Path = typer.Argument(..., help="output directory"),
    fmt: str = typer.Option(..., "--format", help="flickr30k or coco for retrieval worlds, snli-ve or nlvr2 "
                             "for classification worlds, graph-text for graph worlds, mmbench or mllmu for people"),
    force: bool = typer.Option(False, "--force", help="write into a directory that is not empty, over files of "
                               "the same names"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write a built-in world in a real file format."""
    from engine.api import export_world

    try:
        written = export_world(world, fmt, directory, force)
    except SpecError as error:
        fail(str(error))
    if as_json:
        return print_json({"world": world, "format": fmt, "directory": str(directory), "files": [str(p) for p in written]})
    print(f"wrote {world} as {fmt} to {directory} ({', '.join(str(p.relative_to(directory)) if p.is_relative_to(directory) else p.name for p in written)})")


@data_app.command("info")
def data_info(
    data: str = typer.Argument(..., help="FORMAT:PATH (flickr30k:DIR, coco:DIR, snli-ve:DIR, nlvr2:DIR, ...) or a built-in world"),
    decode_images: bool = typer.Option(False, "--decode-images", help="decode every image file too, and exit 2 "
                                       "naming those that do not (cut short, corrupt): a run finds them only when a "
                                       "batch first draws them"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Counts per split, units, texts per unit and the fingerprint, read without decoding any image (unless
    --decode-images)."""
    from engine.api import data_info as describe

    fmt, _, location = data.partition(":")
    try:
        info, text, problem = describe(data if not location else f"{fmt}:{os.path.abspath(Path(location).expanduser())}",
                                       decode_images)
    except SpecError as error:
        fail(str(error))
    print_json(info) if as_json else print(text)
    if problem is not None:
        fail(problem)


@data_app.command("ids")
def data_ids(
    data: str = typer.Argument(..., help="FORMAT:PATH (flickr30k:DIR, coco:DIR, snli-ve:DIR, nlvr2:DIR, ...) or a built-in world"),
    limit: int = typer.Option(0, "--limit", min=0, help="the first N ids only (0: all)"),
    granularity: str = typer.Option("unit", "--granularity",
                                    help="unit: the units' ids; fact: their facts' ids, UNIT#KEY (built-in worlds)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The training units' ids, one a line: what `run --delete-ids FILE` takes (e.g. `data ids shapes-tiny
    --limit 16 > ids.txt`; `--granularity fact` the facts' ids, for `run --granularity fact --delete-ids FILE`)."""
    from engine.api import unit_ids

    fmt, _, location = data.partition(":")
    try:
        chosen = specs.GRANULARITY.coerce(granularity, "data ids")
        ids = unit_ids(data if not location else f"{fmt}:{os.path.abspath(Path(location).expanduser())}", chosen)
    except SpecError as error:
        fail(str(error))
    ids = ids[:limit] if limit else ids
    if as_json:
        return print_json({"data": data, "ids": ids})
    print("\n".join(ids))


@app.command()
def replay(
    session: str = typer.Argument(..., help="session id, name, or a unique prefix of either", autocompletion=complete_session),
    headless: bool = typer.Option(False, "--headless", help="draw the curves and the final table to stdout"),
) -> None:
    """Play a stored session back: in the TUI's monitor, or drawn to stdout with --headless."""
    if headless:
        from workbench.cli_sessions import replay_headless

        raise typer.Exit(replay_headless(session))
    from workbench.tui import run_tui

    raise typer.Exit(run_tui(replay=session))


PRIVATE_UMASK = 0o077  # everything the workbench creates (sessions, caches, exports, logs) is the user's alone


def usage_error_line(error: parser_errors.UsageError) -> str:
    """A flag or argument the parser refused, as the one line every other bad input gets (typer would draw a
    boxed panel of five lines): what is wrong, and where the options are listed."""
    message = " ".join(error.format_message().split())
    if message.startswith("Got unexpected extra argument"):
        message += "; quote a value of several words"
    option = getattr(error, "option_name", "") or ""
    if error.ctx is not None and error.ctx.command_path.endswith(" pulse") and \
            option.lstrip("-").replace("-", "_") in specs.NOT_ON_PEOPLE:
        # `run`'s option, not offered on people data: typer said "(Possible options: --help, --seed)" and no why
        message = (f"{option} is not a pulse option: people data has no validation split to tune or keep the best "
                   "on, no Df/Dr AUC to aim at and no image-text pairs to score")
    where = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
    return f"error: {message}{where}"


def home_problem() -> str | None:
    """One line when the workbench's home, one of its folders (sessions.paths, sessions.study), or $MMUL_CACHE
    cannot be a directory: it, or the nearest part of its path that exists, is a file."""
    from engine.spec.inputs import blocking_file
    from workbench.output import home_folders

    home, own_cache = mmul_home(), "MMUL_CACHE" in os.environ
    places = [(home, "the workbench's home {path} (MMUL_HOME)", "MMUL_HOME")]
    places += [(folder, "{path}, the home's " + folder.name + " folder,", "MMUL_HOME")
               for folder in (*home_folders(), *(() if own_cache else (cache_dir(),)))]
    if own_cache:
        places.append((cache_dir(), "the model cache {path} (MMUL_CACHE)", "MMUL_CACHE"))
    for path, named, variable in places:
        if (blocking := blocking_file(path)) is not None:
            if blocking.is_symlink():   # one that leads nowhere or loops read "is a file"
                kind = f"a symbolic link to {os.readlink(blocking)}, which is no directory"
            else:
                kind = "a file"
            what = f"it is {kind}" if blocking == path else f"{blocking} is {kind}"
            return (f"{named.format(path=path)} cannot be a directory: {what}; move it aside, or set {variable} to "
                    "a directory (made if missing)")
    return None


def every_command(command):
    """`command` and every subcommand under it."""
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from every_command(sub)


def as_offered(command):
    """The typer app's commands as the workbench offers them (each adjustment says what typer did otherwise)."""
    for each in every_command(command):
        untyped_flags(each)
        empty_paths_refused(each)
        if not each.short_help and each.help:
            # listed by its first paragraph on one line: typer's rich help kept the docstring's line breaks there,
            # so `--help` broke "report per method / mean +/- std" mid-sentence
            each.short_help = " ".join(each.help.split("\n\n")[0].split())
    return command


def untyped_flags(command) -> None:
    """Its on/off flags shown without a type: `--help` listed `--json <bool>`, which reads as an option that takes a
    value."""
    for param in command.params:  # typer's own click (typer._click) has no click.Option to test against
        if getattr(param, "is_flag", False) and not getattr(param, "count", False):
            param.metavar = ""
    own_help_option = command.get_help_option

    def get_help_option(ctx):  # --help is made per invocation, not one of the command's params
        option = own_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option


def empty_paths_refused(command) -> None:
    """An empty path refused: a Path reads `''` as `.`, so `--cache-dir ''` (an unset shell variable) put the model
    cache in the current directory."""
    for param in command.params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and descriptor.annotation is Path:
            own_process_value = param.process_value

            def process_value(ctx, value, own=own_process_value, param=param):
                if value == "":
                    raise typer.BadParameter("an empty path names nothing; give a file or folder (. for this one)",
                                             ctx=ctx, param=param)
                return own(ctx, value)

            param.process_value = process_value


def main() -> None:
    os.umask(PRIVATE_UMASK)  # inherited by the engine it starts
    from workbench.execute import StopSignals, interrupted_after_the_end

    StopSignals.AFTER_THE_END = interrupted_after_the_end   # this process only (not the tests' in-process runs)
    if (problem := home_problem()) is not None:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(int(Exit.BAD_INPUT))
    try:  # also names completion's variable: _MMUL_WORKBENCH_COMPLETE
        code = as_offered(typer.main.get_command(app))(prog_name="mmul-workbench", standalone_mode=False)
    except parser_errors.UsageError as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # a group alone asks for its help: typer printed it
            sys.exit(int(Exit.OK))
        print(usage_error_line(error), file=sys.stderr)
        sys.exit(int(Exit.BAD_INPUT))
    except parser_errors.ClickException as error:
        print(f"error: {' '.join(error.format_message().split())}", file=sys.stderr)
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        print("interrupted", file=sys.stderr)
        sys.exit(int(Exit.INTERRUPTED))
    except DiskFull as error:  # a write outside a run (a new session, the catalog, a study record): one line
        print(f"error: {error}", file=sys.stderr)
        sys.exit(int(Exit.RUN_FAILED))
    except OSError as error:  # a path or a disk no command had a better line for (a home that cannot be made)
        if os.environ.get("MMUL_DEBUG"):
            raise
        line, code = os_error_line(error)
        print(f"error: {line}", file=sys.stderr)
        sys.exit(code)
    except RuntimeError as error:  # pathlib's resolve() on a loop of symbolic links raises this, not an OSError
        if os.environ.get("MMUL_DEBUG") or not str(error).startswith("Symlink loop"):
            raise
        print(f"error: {error}: a path given loops through symbolic links; give one that ends in a file or folder",
              file=sys.stderr)
        sys.exit(int(Exit.BAD_INPUT))
    sys.exit(code if isinstance(code, int) else 0)  # not standalone: typer returns a command's exit code


if __name__ == "__main__":
    main()
