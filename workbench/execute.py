"""A validated spec run in this process as a session (``run``, ``demo`` and ``pulse`` without
``--engine``): the job's events go to the session writer and to the progress display on stderr.

Errors end the session and the command: bad input found before the session exists exit 2, a failed run exit
1 (session kept, marked failed; also bad input found only while running, e.g. an image that does not decode), a full disk exit 1 (one line naming the path and the space it needed; the session marked failed
with it where the disk lets that be written), Ctrl-C exit 130 (marked cancelled), and so SIGTERM and SIGHUP too
(a batch scheduler's stop, a closed terminal): they ended the process and left its session marked running. Under
`--json` (`as_json`),
a run that ends so once its session exists still prints one document: its session, state and error.
"""
from __future__ import annotations

import signal
import threading
from typing import Callable

import typer

from engine import spec as specs
from engine.errors import Cancelled, RunFailed, SpecError
from sessions.errors import DiskFull
from sessions.resuming import drop_points_of_finished, resume_hint
from sessions.store import SessionStore
from sessions.study import CELL_NAME, STUDY_GOES_ON
from sessions.writer import SessionWriter
from workbench.output import Exit, Progress, fail, print_json


class FailedOnInput(typer.Exit):
    """Exit 1 for bad input found only while running (an image that does not decode, a checkpoint that knows
    none of the people): its session is kept, and a study stops at it, as every other cell would fail alike."""


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP while a session is written here: handled as Ctrl-C is, in the signal's name."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal_name = signal.Signals(signum).name


def interrupted_after_the_end(signum, frame) -> None:
    """SIGTERM or SIGHUP in the command-line process once a session's end is written: it stops as Ctrl-C stops it
    (`workbench.cli.main`: "interrupted", exit 130). Under the default a SIGTERM that landed while a finished run
    printed its document killed the process with 143, which a script reads as a failed run."""
    raise KeyboardInterrupt


class StopSignals:
    """SIGTERM and SIGHUP raise `Stopped` in the main thread while a session is written here, so the session is
    ended as cancelled rather than left running by a killed process. Only signals left at their default action
    are taken over (`nohup` ignores SIGHUP, and a run under it must outlive the terminal), and once one has been
    raised, or the session is being ended, both are ignored until the end is written (systemd sends SIGTERM
    and SIGHUP together, and a shell passes its hang-up on to its jobs). Restored on leaving the block."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP)
    AFTER_THE_END: Callable | None = None   # the command line's process sets interrupted_after_the_end (cli.main)

    def __enter__(self) -> "StopSignals":
        self.kept = {}
        if threading.current_thread() is threading.main_thread():
            self.kept = {signum: signal.signal(signum, self.stop) for signum in self.SIGNALS
                         if signal.getsignal(signum) in (signal.SIG_DFL, interrupted_after_the_end)}
        return self

    def stop(self, signum, frame) -> None:
        self.hold()
        raise Stopped(signum)

    def hold(self) -> None:
        """Ignore the signals taken over while the session's end is written."""
        for signum in self.kept:
            signal.signal(signum, signal.SIG_IGN)

    def __exit__(self, kind, error, trace) -> None:
        after = type(self).AFTER_THE_END if kind is None else None   # a session ended as it should (a class attribute:
        # through the instance the function would be bound)
        for signum, handler in self.kept.items():
            signal.signal(signum, after or handler)


def preflighted(spec: dict, said: Callable[[str], str] = str) -> None:
    """What the engine checks before a session exists (engine/preflight.py), or exit 2 in one line (`said`: the
    line in the command's own words)."""
    from engine.api import preflight

    try:
        preflight(spec)
    except SpecError as error:
        fail(said(str(error)))


def run_session(spec: dict, label: str, original_metrics: dict | None = None,
                on_session: Callable[[str], None] | None = None, as_json: bool = False,
                checked: bool = False) -> dict:
    """Run ``spec``; returns the result document with its ``session`` id. What only the engine can check
    (this machine's devices, the data's records) is checked first, unless the caller has (`checked`): bad
    input there is exit 2 with no session made. ``on_session(id)`` is told the session's id as soon as it exists
    (a study records it)."""
    from engine.api import run_job

    if not checked:
        preflighted(spec)
    return run_in_session(spec, label, lambda emitter: run_job(spec, emitter, lambda: False,
                                                               original_metrics=original_metrics), on_session,
                          as_json)


def run_in_session(spec: dict, label: str, job: Callable[[object], dict],
                   on_session: Callable[[str], None] | None = None, as_json: bool = False) -> dict:
    """Run ``job(emitter)`` (``emitter.emit(kind, **fields)``, ``emitter.session_id``) as a new session of
    ``spec`` with the progress display and the exits ``run_session`` has (an attack's job too); returns the
    job's document with its ``session`` id."""
    writer = SessionStore().create(spec, name=spec.get("name"))
    if on_session is not None:
        on_session(writer.session_id)

    def fail_ended(state: str, message: str, line: str, code: Exit = Exit.RUN_FAILED) -> "NoReturn":  # noqa: F821
        if as_json:
            print_json({"session": writer.session_id, "state": state, "error": message})
        fail(line, code)

    with Progress(label, quiet=False, requests=spec.get("requests") or 1) as progress:

        class Tee:
            session_id = writer.session_id

            @staticmethod
            def emit(kind, **fields):
                writer.emit(kind, **fields)
                progress.event(kind, fields)

        with StopSignals() as stops:
            try:
                try:
                    result = job(Tee)
                finally:   # however the job ended, a stop signal waits until its end is written
                    stops.hold()
            except SpecError as error:  # exit 2 says no session was made; this one is kept
                writer.finish("failed", message=str(error))
                try:
                    fail_ended("failed", str(error), f"{error} (session {writer.session_id} kept)")
                except typer.Exit as ended:
                    raise FailedOnInput(ended.exit_code) from None
            except RunFailed as error:
                writer.finish("failed", message=str(error))
                fail_ended("failed", str(error), f"{error} ({kept(spec, writer.session_id)})")
            except DiskFull as error:
                fail_ended("failed", str(error), f"{error} ({finish_failed(writer, str(error))})")
            except (Cancelled, KeyboardInterrupt) as error:
                why = f"stopped by {error.signal_name}" if isinstance(error, Stopped) else "interrupted from the terminal"
                writer.finish("cancelled", message=why)
                fail_ended("cancelled", why, f"cancelled ({kept(spec, writer.session_id)})", Exit.INTERRUPTED)
            except Exception as error:  # an engine bug: keep the session, say where, exit 1
                message = f"{type(error).__name__}: {error}"
                writer.finish("failed", message=message)
                fail_ended("failed", message, f"run failed: {message} ({kept(spec, writer.session_id)}; MMUL_DEBUG=1 "
                           "for a traceback)")
            result["session"] = writer.session_id
            writer.finish("finished", summary=result)
            drop_points_of_finished(spec, writer.session_id)   # its checkpoint covers them, now that it is finished
    return result


def kept(spec: dict, session_id: str) -> str:
    """``session S kept``, and how a run of K requests goes on when it left a resume point."""
    try:
        hint = resume_hint(SessionStore(), spec, session_id)
    except Exception:  # the hint is a courtesy: the session's line is said whatever the store answers
        hint = None
    resumed = (spec.get("resumes") or {}).get("session") if isinstance(spec.get("resumes"), dict) else None
    if hint is None and resumed:  # a resumed run cut short before a point of its own goes on as it did
        hint = (f"it stopped before a resume point of its own, so `mmul-workbench resume {resumed}` goes on again "
                "from the point it started from")
    elif hint is None and CELL_NAME.match(str(spec.get("name") or "")):  # a study's cell: said as `study` goes on
        hint = STUDY_GOES_ON
    elif hint is None and (every := specs.resume_minutes(spec)) is not None:
        hint = (f"it stopped before its first resume point (--resume-every {every:g} minutes), so its command "
                "starts it again")
    return f"session {session_id} kept" + (f"; {hint}" if hint else "")


def finish_failed(writer: SessionWriter, message: str) -> str:
    """Mark the session failed with ``message`` after a full disk; what became of it, in words."""
    try:
        writer.finish("failed", message=message)
    except DiskFull:
        return (f"session {writer.session_id} could not be marked failed on the full disk; the next `engine start` "
                "marks it interrupted")
    return f"session {writer.session_id} kept"
