"""What a run of K sequential requests evaluates after each request, and the history it keeps.

Evaluation schedule (`--eval-every-requests N`, `--eval-sample M`): request i gets a full evaluation (Df =
every unit forgotten so far) when N divides i and always after the last request; between them a sample
evaluation scores Df = a fixed panel of M forgotten units: every unit forgotten so far while fewer than M are,
then, from the first sample evaluation with at least M forgotten on, the same M units every time (the first M,
in one seeded order of the deletion set, among those forgotten then). Later requests' units enter only the
full evaluations and the history, which re-scores every request's own set. The test split and
Dr are the task's own fixed-size samples in both kinds, so only Df's part of the cost grew with K, and the
sample evaluation bounds it. Each request's entry records which kind it got (`evaluation`) and how many
units its Df held (`evaluated_units`).

History (sessions/history.py defines the matrix and its summary): after every request the task re-scores
every request's own forget set at once (`request_headlines`: one pass over the whole deletion set, so the
cost is the same at request 1 and request K; the columns of requests not yet asked are dropped), and emits
the row as an `eval` event of split "history" (request 0: the original), which the monitor and `replay` draw.
"""
from __future__ import annotations

import random

from engine.seeding import derive_seed
from sessions.history import history_matrix, history_summary

EVAL_SAMPLE_DEFAULT = 20


class History:
    def __init__(self, task, requests: list[list], emit, seed: int, every: int = 1, sample: int = EVAL_SAMPLE_DEFAULT):
        self.task, self.emit, self.every, self.sample_size = task, emit, max(1, every), sample
        self.requests = [list(request) for request in requests]
        order = [unit for request in self.requests for unit in request]
        random.Random(derive_seed(seed, "eval-sample")).shuffle(order)
        self.rank = {unit: position for position, unit in enumerate(order)}
        self.panel: list | None = None  # the sample evaluations' Df, fixed once M units are forgotten
        self.before: list = []
        self.rows: list[list] = []
        self.utility: list = []
        self.original_utility = None

    def kind(self, number: int) -> str:
        return "full" if number % self.every == 0 or number == len(self.requests) else "sample"

    def evaluated(self, number: int, forgotten: list) -> list:
        """Df of request `number`'s evaluation: every unit forgotten so far, or the sample."""
        if self.kind(number) == "full":
            return forgotten
        if self.panel is None and len(forgotten) >= self.sample_size:
            self.panel = sorted(forgotten, key=self.rank.__getitem__)[: self.sample_size]
        return self.panel if self.panel is not None else forgotten

    def score(self, model, request: int, step: int, metrics: dict) -> None:
        """Row `request` of the history (0: the original, the `before` row) and the utility it leaves."""
        scores = self.task.request_headlines(model, self.requests)
        if request == 0:
            self.before, self.original_utility = scores, self.task.utility(metrics)
            shown = scores
        else:
            shown = scores[:request]
            self.rows.append(shown)
            self.utility.append(self.task.utility(metrics))
        self.emit("eval", step=step, phase="original" if request == 0 else "unlearn", split="history",
                  request=request, metrics={f"r{j}": value for j, value in enumerate(shown, start=1)
                                            if value is not None}, metric=self.task.HISTORY_METRIC)

    def state(self) -> dict:
        """What a resume point keeps of the history (the original's row is scored again when a run resumes)."""
        return {"panel": self.panel, "rows": self.rows, "utility": self.utility}

    def restore(self, state: dict) -> None:
        self.panel, self.rows, self.utility = state["panel"], state["rows"], state["utility"]

    def document(self) -> dict:
        matrix = history_matrix(self.rows)
        utility = [u for u in self.utility if u is not None]
        return {"metric": self.task.HISTORY_METRIC, "utility_metric": self.task.UTILITY_METRIC,
                "before": self.before, "matrix": matrix, "utility": self.utility,
                "every": self.every, "sample": self.sample_size,
                "summary": history_summary(self.before, matrix, self.original_utility, utility)}
