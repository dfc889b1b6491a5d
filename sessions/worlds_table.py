"""The table that says whether each built-in world can show forgetting (issue 24 item 6), from the documents of
`bench/bench_worlds.py`: one Retrain run per world and seed, with the original it was compared to.

Per world, mean ± sample std over the seeds: the original's and Retrain's Df performance (Df r_mean on
retrieval, Df accuracy on classification, both in percent) and their gap, the two Df/Dr AUCs (x 100), test
and the holdout sets; then the three criteria, each judged on the means: the gap at least 15 points, the
original's AUC within 45-55, Retrain's at least 10 points away from the original's. Pure Python.
"""
from __future__ import annotations

GAP_AT_LEAST = 15.0
ORIGINAL_AUC_BAND = (45.0, 55.0)
AUC_DISTANCE_AT_LEAST = 10.0


def headline(metrics: dict) -> str:
    return "r_mean" if "r_mean" in (metrics.get("df") or {}) else "accuracy"


def value(metrics: dict, group: str, name: str) -> float | None:
    if group == "df_dr_auc":
        auc = metrics.get("df_dr_auc")
        return None if auc is None else 100 * auc
    return (metrics.get(group) or {}).get(name)


def mean_std(values: list) -> tuple[float, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return mean, std


def shown(stat: tuple[float, float] | None, n: int) -> str:
    if stat is None:
        return "-"
    return f"{stat[0]:.1f}" if n == 1 else f"{stat[0]:.1f} ± {stat[1]:.1f}"


def world_row(cells: list[dict]) -> tuple[list[str], list[bool]]:
    name = headline(cells[0]["original_metrics"])
    n = len(cells)

    def stat(which: str, group: str):
        return mean_std([value(c[which], group, name) for c in cells])

    original_df, retrain_df = stat("original_metrics", "df"), stat("metrics", "df")
    gap = mean_std([value(c["original_metrics"], "df", name) - value(c["metrics"], "df", name) for c in cells
                    if value(c["original_metrics"], "df", name) is not None and value(c["metrics"], "df", name) is not None])
    original_auc, retrain_auc = stat("original_metrics", "df_dr_auc"), stat("metrics", "df_dr_auc")
    checks = [gap is not None and gap[0] >= GAP_AT_LEAST,
              original_auc is not None and ORIGINAL_AUC_BAND[0] <= original_auc[0] <= ORIGINAL_AUC_BAND[1],
              None not in (original_auc, retrain_auc) and abs(retrain_auc[0] - original_auc[0]) >= AUC_DISTANCE_AT_LEAST]
    cells_shown = [f"`{cells[0]['world']}` ({cells[0]['model']}, {name})", shown(original_df, n), shown(retrain_df, n),
                   shown(gap, n), shown(original_auc, n), shown(retrain_auc, n),
                   shown(stat("original_metrics", "test"), n), shown(stat("metrics", "test"), n),
                   f"{shown(stat('original_metrics', 'holdout_identity'), n)} / {shown(stat('metrics', 'holdout_identity'), n)}",
                   f"{shown(stat('original_metrics', 'holdout_association'), n)} / {shown(stat('metrics', 'holdout_association'), n)}",
                   " ".join("yes" if ok else "**no**" for ok in checks)]
    return cells_shown, checks


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
