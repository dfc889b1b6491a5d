"""The table that says whether each built-in world can show forgetting (issue 24 item 6), from the documents of
`bench/bench_worlds.py`: one Retrain run per world and seed, with the original it was compared to.

Per world, mean ± sample std over the seeds: the original's and Retrain's Df performance (Df r_mean on
retrieval, Df accuracy on classification, both in percent) and their gap, the two Df/Dr AUCs (x 100), test
and the holdout sets; then the three criteria, each judged on the means: the gap at least 15 points, the
original's AUC within 45-55, Retrain's at least 10 points away from the original's. Pure Python.
"""
from __future__ import annotations

from sessions.numbers import fmt_mean_std
from sessions.study import mean_std

GAP_AT_LEAST = 15.0
ORIGINAL_AUC_BAND = (45.0, 55.0)
AUC_DISTANCE_AT_LEAST = 10.0


def headline(metrics: dict) -> str:
    return "r_mean" if "r_mean" in (metrics.get("df") or {}) else "accuracy"


def value(metrics: dict, group: str, name: str) -> float | None:
    return metrics.get(group) if group == "df_dr_auc" else (metrics.get(group) or {}).get(name)


def world_row(cells: list[dict]) -> tuple[list[str], list[bool]]:
    name = headline(cells[0]["original_metrics"])

    def stat(which: str, group: str):
        return mean_std(value(c[which], group, name) for c in cells)

    def both(group: str) -> str:
        return f"{fmt_mean_std(stat('original_metrics', group), f'{group}.{name}')} / " \
               f"{fmt_mean_std(stat('metrics', group), f'{group}.{name}')}"

    pairs = [(value(c["original_metrics"], "df", name), value(c["metrics"], "df", name)) for c in cells]
    gap = mean_std(original - retrain for original, retrain in pairs if None not in (original, retrain))
    original_auc, retrain_auc = stat("original_metrics", "df_dr_auc"), stat("metrics", "df_dr_auc")
    checks = [gap is not None and gap["mean"] >= GAP_AT_LEAST,
              original_auc is not None and ORIGINAL_AUC_BAND[0] <= 100 * original_auc["mean"] <= ORIGINAL_AUC_BAND[1],
              None not in (original_auc, retrain_auc)
              and 100 * abs(retrain_auc["mean"] - original_auc["mean"]) >= AUC_DISTANCE_AT_LEAST]
    metric = f"df.{name}"
    shown = [f"`{cells[0]['world']}` ({cells[0]['model']}, {name})",
             fmt_mean_std(stat("original_metrics", "df"), metric), fmt_mean_std(stat("metrics", "df"), metric),
             fmt_mean_std(gap, metric), fmt_mean_std(original_auc, "df_dr_auc"), fmt_mean_std(retrain_auc, "df_dr_auc"),
             fmt_mean_std(stat("original_metrics", "test"), f"test.{name}"), fmt_mean_std(stat("metrics", "test"), f"test.{name}"),
             both("holdout_identity"), both("holdout_association"),
             " ".join("yes" if ok else "**no**" for ok in checks)]
    return shown, checks


def table_lines(grid: dict) -> list[str]:
    worlds: dict[str, list[dict]] = {}
    for cell in grid["worlds"]:
        worlds.setdefault(cell["world"], []).append(cell)
    seeds = sorted({cell["seed"] for cell in grid["worlds"]})
    lines = [f"Retrain against the original, {grid['delete']} units deleted, seeds {', '.join(map(str, seeds))} "
             "(mean ± sample std; percent, AUC x 100):", "",
             "| world (model, metric) | original Df | Retrain Df | gap | Df/Dr AUC original | Df/Dr AUC Retrain | "
             "original test | Retrain test | holdout_identity orig / Retrain | holdout_association orig / Retrain | "
             "gap >= 15, orig AUC 45-55, Retrain AUC >= 10 away |",
             "|" + "---|" * 11]
    lines += ["| " + " | ".join(world_row(cells)[0]) + " |" for cells in worlds.values()]
    return lines
