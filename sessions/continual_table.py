"""The continual table, from the runs of `bench/bench_continual.py`: each method forgetting one unit a request
for K requests, over seeds.

One row per method, mean ± sample std over the seeds: the union's Df performance and test after the last
request (the task's headline: r_mean on retrieval, accuracy on classification), the history's summary
(sessions/history.py: preservation as a percentage of each past request's forgetting that remains, rebound in
the headline's points, stability, the area under the retain curve) and the training seconds; below the
table, each seed's largest rebound and the requests it spans. Pure Python.
"""
from __future__ import annotations

from sessions.numbers import fmt, fmt_mean_std
from sessions.study import mean_std


def headline(metrics: dict) -> str:
    return "r_mean" if "r_mean" in (metrics.get("df") or {}) else "accuracy"


def method_row(cells: list[dict]) -> list[str]:
    name = headline(cells[0]["metrics"])

    def summary(key: str, scale: float = 1.0):
        return mean_std(None if c["history"]["summary"].get(key) is None else scale * c["history"]["summary"][key]
                        for c in cells)

    return [cells[0]["method"],
            fmt_mean_std(mean_std(c["original_metrics"]["df"][name] for c in cells), f"df.{name}"),
            fmt_mean_std(mean_std(c["metrics"]["df"][name] for c in cells), f"df.{name}"),
            fmt_mean_std(mean_std(c["metrics"]["test"][name] for c in cells), f"test.{name}"),
            fmt_mean_std(summary("preservation", 100.0), f"df.{name}"),
            fmt_mean_std(summary("rebound"), f"df.{name}"),
            fmt_mean_std(summary("stability"), f"dr.{name}"),
            fmt_mean_std(summary("retain_area"), f"dr.{name}"),
            fmt_mean_std(mean_std(c.get("seconds") for c in cells), "seconds")]


def rebound_lines(cells: list[dict]) -> list[str]:
    lines = []
    for cell in cells:
        summary = cell["history"]["summary"]
        if summary.get("rebound"):
            first, last = summary["rebound_at"]
            lines.append(f"- {cell['method']}, seed {cell['seed']}: request {first}'s Df rose by "
                         f"{fmt(summary['rebound'], 'df.' + headline(cell['metrics']))} points by request {last}")
    return lines or ["- no rebound in any run"]


def table_lines(grid: dict) -> list[str]:
    cells = grid["continual"]
    by_method: dict[str, list[dict]] = {}
    for cell in cells:
        by_method.setdefault(cell["method"], []).append(cell)
    seeds = sorted({cell["seed"] for cell in cells})
    history = cells[0]["history"]
    lines = [f"{grid['model']} on {grid['data']}, {grid['requests']} requests of one unit, a full evaluation every "
             f"{grid['eval_every']} requests (a {history.get('sample')}-unit sample between), seeds "
             f"{', '.join(map(str, seeds))} (mean ± sample std; percent; history metric `{history['metric']}`, "
             f"retain curve `{history['utility_metric']}`):", "",
             "| method | original Df | Df after | test after | preservation % | rebound | stability | retain area | "
             "training time |", "|" + "---|" * 9]
    lines += ["| " + " | ".join(method_row(group)) + " |" for group in by_method.values()]
    variants = {cell["method"]: cell.get("variant") or "variant not recorded" for cell in cells}
    return [*lines, "", "Largest rebound per run:", "", *rebound_lines(cells), "", "Variants:", "",
            *(f"- {method}: {variant}" for method, variant in variants.items())]
