"""A study as the Studies screens show it: its record (sessions/study.py) joined with its cells' sessions,
read afresh on each poll (the record, the catalog and, once per finished session, its summary), so a
running study fills in as its cells finish. And the grid in words: methods x metrics as mean ± std
(sessions.numbers), headline metrics first, sortable by any column. Pure Python over the store."""
from __future__ import annotations

import math
from typing import Callable

from engine.spec import TASKS, holdout_columns
from screens.metric_order import headline_first
from sessions.attacks import recorded_attacks
from sessions.numbers import fmt_over
from sessions.schema import ACTIVE_STATES
from sessions.store import SessionStore
from sessions.study import (DEFAULT_TOLERANCE, ORIGINAL_GAP, REFERENCE, RELATIVE_HEADERS, StudyError, StudyRecord, aggregate,
                            original_stats, rank_label, studies_dir, study_ranking,
                            with_attacks)

KS = Callable[[list, list], "float | None"]
HEADERS = {"df_dr_auc": "Df/Dr AUC", "test.r_mean": "test r_mean", "test.accuracy": "test acc",
           "df.r_mean": "Df r_mean", "df.accuracy": "Df acc", "dr.r_mean": "Dr r_mean", "dr.accuracy": "Dr acc",
           # the holdout sets as `study` heads them
           **{column.metric: column.header for measure in ("r_mean", "accuracy") for column in holdout_columns(measure)},
           "mia.df_member_rate": "MIA Df member", "mia.auc": "MIA AUC", "mia.test_member_rate": "MIA test member",
           **{metric: header for header, metric in RELATIVE_HEADERS}}
FIXED_COLUMNS = ("method", "n")


def list_studies(store: SessionStore) -> list[dict]:
    """Every study under the store's home, newest first: ``id``, ``spec``, ``cells``, ``updated`` (the
    record's mtime); a record that cannot be read is listed with its one-line ``error``."""
    root = studies_dir(store.home)
    rows = []
    for path in root.glob("study-*.json") if root.is_dir() else ():
        study_id = path.stem
        try:
            record = StudyRecord.stored(study_id, store.home)
            # a cell whose session was deleted since counts as not finished (a stat each, no file read)
            cells = [{**cell, "state": "gone"} if cell.get("session") and not store.session_dir(cell["session"]).exists()
                     else cell for cell in record.cells]
            rows.append({"id": study_id, "spec": record.spec, "cells": cells, "updated": path.stat().st_mtime})
        except (StudyError, OSError) as exc:
            rows.append({"id": study_id, "spec": {}, "cells": [], "updated": 0.0, "error": str(exc)})
    return sorted(rows, key=lambda row: (row["updated"], row["id"]), reverse=True)


def load_study(store: SessionStore, study_id: str, ks: KS | None, summaries: dict[str, dict]) -> dict:
    """The study now: ``id``, ``spec``, ``cells`` (every method x seed of the spec, each with its
    ``session``, ``state`` from the session itself, ``row`` from the catalog) and ``methods`` (per method
    ``{metric: {"mean", "std", "n"}}``, a p-value ``{"median", "per_seed", "n"}``, over the finished cells,
    as `study` reports them). ``summaries`` caches finished sessions' summaries between polls (a finished
    session does not change).
    StudyError when the record cannot be used."""
    record = StudyRecord.stored(study_id, store.home)
    catalog = {row["id"]: row for row in store.list()}
    methods, seeds = list(record.spec["methods"]), list(record.spec.get("seeds") or [])
    seeds += [c["seed"] for c in record.cells if c["seed"] not in seeds]
    cells, runs = [], []
    for method in methods:
        for seed in seeds:
            cell = record.cell(method, seed) or {}
            session = cell.get("session")
            row = catalog.get(session) if session else None
            # a session deleted (or moved aside) since it ran is "gone": its cell is left out, the rest still shown
            state = row.get("state") if row else "gone" if session else cell.get("state") or "pending"
            if state == "finished" and session not in summaries:
                summary = store.get(session).get("summary")
                if isinstance(summary, dict):
                    summaries[session] = summary
            if state == "finished" and session in summaries:
                runs.append((method, seed, with_attacks(summaries[session], recorded_attacks(catalog, cell))))
            cells.append({"method": method, "seed": seed, "session": session, "state": state, "row": row})
    stats = aggregate(runs, ks, order=methods)
    study = {"id": study_id, "spec": record.spec, "cells": cells, "methods": stats}
    if REFERENCE in methods:  # ranked as `study` ranks, by the --tolerance it was last run with
        task = TASKS.get(record.spec.get("task"))
        tolerance = record.spec.get("tolerance")
        tolerance = float(tolerance) if isinstance(tolerance, (int, float)) and tolerance >= 0 else DEFAULT_TOLERANCE
        study["ranking"] = study_ranking(stats, tolerance, task.columns if task else (), original_stats(runs))
    return study


def progress(study: dict) -> str:
    """``3 of 4 runs finished, 1 running`` (failed, pending and deleted ones named when there are any)."""
    states = [cell["state"] for cell in study["cells"]]
    done = states.count("finished")
    words = [f"{done} of {len(states)} runs finished"]
    active = sum(state in ACTIVE_STATES for state in states)
    failed = sum(state in ("failed", "cancelled", "interrupted") for state in states)
    pending, gone = states.count("pending"), states.count("gone")
    words += [f"{active} running"] * bool(active) + [f"{failed} failed"] * bool(failed) + \
        [f"{pending} to start"] * bool(pending) + [f"{gone} deleted since (the study runs them again)"] * bool(gone)
    return ", ".join(words)


def grid_metrics(study: dict) -> list[str]:
    """The grid's metric columns: every metric any method has, headline metrics first."""
    return headline_first(name for stats in study["methods"].values() for name in stats if name != ORIGINAL_GAP)


def header(metric: str) -> str:
    if metric.startswith("attack.") and metric.count(".") == 2:  # attack.relearn.recovery: as `study` heads it
        _, kind, name = metric.split(".")
        return f"{kind} {name}"
    return HEADERS.get(metric, metric)


def fixed_columns(study: dict) -> tuple[str, ...]:
    """The grid's first columns: method and n, and the rank where the study has Retrain to rank against."""
    return (*FIXED_COLUMNS, "rank") if study.get("ranking") is not None else FIXED_COLUMNS


def method_counts(study: dict, method: str) -> tuple[int, int]:
    """(finished runs, runs) of ``method``."""
    cells = [c for c in study["cells"] if c["method"] == method]
    return sum(c["state"] == "finished" for c in cells), len(cells)


def grid_rows(study: dict, metrics: list[str], sort: str = "method", reverse: bool = False) -> list[list[str]]:
    """One row per method: its name, ``finished/runs`` and each metric as ``mean ± std`` (forget quality: its
    median over seeds and each seed's value), sorted by ``sort`` ("method": the study's order; "n": finished
    runs; a metric: its mean or median, missing ones last)."""
    order = list(study["spec"]["methods"])

    def key(method: str):
        if sort == "method":
            return order.index(method)
        if sort == "n":
            return method_counts(study, method)[0]
        if sort == "rank":  # Retrain, then the ranking's order; unranked methods last
            ranking = study.get("ranking") or {"within": [], "outside": []}
            placed = [REFERENCE, *ranking["within"], *ranking.get("as_original", []), *ranking["outside"]]
            return placed.index(method) if method in placed else None
        stats = study["methods"].get(method, {}).get(sort) or {}
        value = stats.get("mean", stats.get("median"))  # a p-value (forget quality) has its median, no mean
        return value if value is not None and math.isfinite(value) else None

    present = sorted((m for m in order if key(m) is not None), key=key, reverse=reverse)
    rows = []
    for method in present + [m for m in order if key(m) is None]:
        done, total = method_counts(study, method)
        per_method = study["methods"].get(method, {})
        ranked = [rank_label(study["ranking"], method)] if "rank" in fixed_columns(study) else []
        rows.append([method, f"{done}/{total}", *ranked, *(fmt_over(per_method.get(m), m, done) for m in metrics)])
    return rows


def method_cells(study: dict, method: str) -> list[dict]:
    return [cell for cell in study["cells"] if cell["method"] == method]
