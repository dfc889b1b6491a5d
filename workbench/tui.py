"""Entry points of the TUI: ``create_app`` (the one factory, used by the CLI and the tests) and
``run_tui`` (what ``mmul-workbench`` and ``mmul-workbench replay SESSION`` call)."""
from __future__ import annotations

import os
import sys

from workbench.app import WorkbenchApp
from workbench.services import EngineServices, EngineStarter, SourceFactory, Submitter


def create_app(*, replay: str | None = None, home: str | os.PathLike | None = None,
               start_engine: bool = True, engine_starter: EngineStarter | None = None,
               submitter: Submitter | None = None,
               live_source_factory: SourceFactory | None = None) -> WorkbenchApp:
    """The workbench app. ``replay`` opens a stored session in the monitor (no engine needed);
    tests inject ``engine_starter``, ``submitter`` and ``live_source_factory`` (fakes) or turn the
    engine off with ``start_engine=False``."""
    from sessions.store import SessionStore

    services = EngineServices(SessionStore(home), home, engine_starter=engine_starter, submitter=submitter,
                              live_source_factory=live_source_factory)
    return WorkbenchApp(services, replay=replay, start_engine=start_engine)


def run_tui(replay: str | None = None) -> int:
    """Run the TUI; returns the exit code (2 with one line on stderr for an unknown session)."""
    if replay is not None:
        from sessions.schema import SchemaMismatch
        from sessions.store import SessionDamaged, SessionStore, UnknownSession

        try:
            store = SessionStore()
            replay = store.resolve(replay)
            store.get(replay)
        except (UnknownSession, SchemaMismatch, SessionDamaged) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    app = create_app(replay=replay)
    try:
        app.run()
    except KeyboardInterrupt:
        return 130
    if replay is None:
        say_what_goes_on(app.services.store)
    return int(app.return_code or 0)


def say_what_goes_on(store) -> None:
    """After the TUI quits, the runs still going in the engine (quitting never stops them, and nothing said so)."""
    try:
        going = [row for row in store.catalog_rows() if row.get("state") in ("running", "queued")]
    except Exception:  # an unreadable catalog: the sessions commands say what is wrong with it
        return
    if going:
        names = ", ".join(str(row.get("name") or row.get("id")) for row in going[:3]) + (
            f" and {len(going) - 3} more" if len(going) > 3 else "")
        print(f"{len(going)} run{'s' if len(going) > 1 else ''} go{'es' if len(going) == 1 else ''} on in the engine "
              f"({names}); `mmul-workbench` shows {'them' if len(going) > 1 else 'it'} again, `mmul-workbench engine "
              "status` lists the engine's jobs", file=sys.stderr)
