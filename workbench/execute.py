"""A validated spec run in this process as a session (``run``, ``demo`` and ``pulse`` without
``--engine``): the job's events go to the session writer and to the progress display on stderr.

Errors end the session and the command: bad input exit 2, a failed run exit 1 (session kept, marked
failed), a full disk exit 1 (one line naming the path and the space it needed; the session marked failed
with it where the disk lets that be written), Ctrl-C exit 130 (marked cancelled).
"""
from __future__ import annotations

from typing import Callable

from engine.errors import Cancelled, RunFailed, SpecError
from sessions.errors import DiskFull
from sessions.store import SessionStore
from sessions.writer import SessionWriter
from workbench.output import Exit, Progress, fail


def run_session(spec: dict, label: str, original_metrics: dict | None = None,
                on_session: Callable[[str], None] | None = None) -> dict:
    """Run ``spec``; returns the result document with its ``session`` id. What only the engine can check
    (this machine's devices, the data's records) is checked first: bad input there is exit 2 with no
    session made. ``on_session(id)`` is told the session's id as soon as it exists (a study records it)."""
    from engine.api import preflight, run_job

    try:
        preflight(spec)
    except SpecError as error:
        fail(str(error))
    return run_in_session(spec, label, lambda emitter: run_job(spec, emitter, lambda: False,
                                                               original_metrics=original_metrics), on_session)


def run_in_session(spec: dict, label: str, job: Callable[[object], dict],
                   on_session: Callable[[str], None] | None = None) -> dict:
    """Run ``job(emitter)`` (``emitter.emit(kind, **fields)``, ``emitter.session_id``) as a new session of
    ``spec`` with the progress display and the exits ``run_session`` has (an attack's job too); returns the
    job's document with its ``session`` id."""
    writer = SessionStore().create(spec, name=spec.get("name"))
    if on_session is not None:
        on_session(writer.session_id)
    with Progress(label, quiet=False) as progress:

        class Tee:
            session_id = writer.session_id

            @staticmethod
            def emit(kind, **fields):
                writer.emit(kind, **fields)
                progress.event(kind, fields)

        try:
            result = job(Tee)
        except SpecError as error:
            writer.finish("failed", message=str(error))
            fail(str(error))
        except RunFailed as error:
            writer.finish("failed", message=str(error))
            fail(f"{error} (session {writer.session_id} kept)", Exit.RUN_FAILED)
        except DiskFull as error:
            fail(f"{error} ({finish_failed(writer, str(error))})", Exit.RUN_FAILED)
        except (Cancelled, KeyboardInterrupt):
            writer.finish("cancelled", message="interrupted from the terminal")
            fail(f"cancelled (session {writer.session_id} kept)", Exit.INTERRUPTED)
        except Exception as error:  # an engine bug: keep the session, say where, exit 1
            writer.finish("failed", message=f"{type(error).__name__}: {error}")
            fail(f"run failed: {type(error).__name__}: {error} (session {writer.session_id}; MMUL_DEBUG=1 for a traceback)",
                 Exit.RUN_FAILED)
    result["session"] = writer.session_id
    writer.finish("finished", summary=result)
    return result


def finish_failed(writer: SessionWriter, message: str) -> str:
    """Mark the session failed with ``message`` after a full disk; what became of it, in words."""
    try:
        writer.finish("failed", message=message)
    except DiskFull:
        return (f"session {writer.session_id} could not be marked failed on the full disk; the next `engine start` "
                "marks it interrupted")
    return f"session {writer.session_id} kept"
