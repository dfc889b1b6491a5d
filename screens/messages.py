"""Messages the screens post to themselves from their workers (workers compute, handlers mutate)."""
from __future__ import annotations

from textual.message import Message


class SessionsLoaded(Message):
    """The catalog's rows, read in a thread (or the one line that says why not)."""

    def __init__(self, rows: list[dict] | None, error: str | None = None) -> None:
        super().__init__()
        self.rows = rows
        self.error = error


class CompareLoaded(Message):
    """The compared sessions' series and final metrics, read in a thread."""

    def __init__(self, runs: list[dict], error: str | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.error = error


class PreviewReady(Message):
    """The deletion-set preview text, computed in a thread."""

    def __init__(self, text: str, refused: bool = False) -> None:
        super().__init__()
        self.text, self.refused = text, refused  # refused: the deletion set's check refused it (text says why)


class StudyLoaded(Message):
    """A study read in a thread (screens.study_data.load_study), or the one line that says why not."""

    def __init__(self, study: dict | None, error: str | None = None) -> None:
        super().__init__()
        self.study = study
        self.error = error


class StudiesLoaded(Message):
    """Every study's record (screens.study_data.list_studies), read in a thread."""

    def __init__(self, rows: list[dict]) -> None:
        super().__init__()
        self.rows = rows


class DetailLoaded(Message):
    """The home's detail of one session (its verdict lines), read in a thread."""

    def __init__(self, session_id: str, text: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.text = text
