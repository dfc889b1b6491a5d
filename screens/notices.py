"""Which runs and studies ended since the last look, and the toast that says so (the App shows it
when the operator is on another screen). Pure Python."""
from __future__ import annotations

from sessions.numbers import fmt
from sessions.schema import ACTIVE_STATES, TERMINAL_STATES
from sessions.study import study_of
from sessions.summary import summary_metrics

SEVERITY = {"finished": "information", "failed": "error", "cancelled": "warning", "interrupted": "warning"}


def ended_runs(seen: dict[str, str], rows: list[dict]) -> list[dict]:
    """Catalog rows whose session was queued or running when last ``seen`` and has ended now; a study's cells
    are left out (issue 25: a toast for every cell): a study started here gets one toast when it ends."""
    return [row for row in rows if seen.get(row.get("id")) in ACTIVE_STATES and row.get("state") in TERMINAL_STATES
            and study_of(row.get("name")) is None]


def run_notice(row: dict) -> tuple[str, str]:
    """(message, severity) of a run that ended: ``ft 2026...-ab12 finished: Df/Dr AUC 61.0``."""
    state = str(row.get("state"))
    label = row.get("name") or row.get("id")
    message = f"{row.get('method', 'run')} {label} {state}"
    auc = summary_metrics(row.get("summary")).get("df_dr_auc")
    if state == "finished" and auc is not None:
        message += f": Df/Dr AUC {fmt(auc, 'df_dr_auc')}"
    elif row.get("message"):
        message += f": {str(row['message']).splitlines()[0]}"
    return message, SEVERITY.get(state, "information")


def study_notice(study_id: str, code: int, error: str | None) -> tuple[str, str]:
    """(message, severity) of a study whose process ended with exit ``code``."""
    if code == 0:
        return f"study {study_id} finished", "information"
    return f"study {study_id} ended: {error or f'exit code {code}'}", "error"
