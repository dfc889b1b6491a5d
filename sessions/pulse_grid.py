"""The PULSE grid's tables, from the cells `bench/bench_pulse.py` ran (each a `pulse --json` document with its
method, knowledge source, K and seed): the originals' accuracies (request 0) per knowledge source and seed,
then one row per method x knowledge x K after the last request, mean ± sample std over the seeds (n - 1, as
`study` reports). `bench_pulse.py` prints these lines and `workbench.results` puts them in the docs from the
record of the same cells, so the printed and the published table are one.

Accuracies are stored as 0-1 fractions and shown in percent; MMBench retention is stored in percent. Pure
Python.
"""
from __future__ import annotations

COLUMNS = (("forget img", "forget", "image"), ("forget txt", "forget", "text"),
           ("retain img", "retain", "image"), ("retain txt", "retain", "text"))
ORIGINAL_COLUMNS = (*[(g, m) for _, g, m in COLUMNS], ("other", "image"), ("other", "text"))


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def pair(entry: dict, group: str, mode: str):
    return (entry.get(group) or {}).get(mode)


def spread(values: list) -> str:
    """mean ± the sample standard deviation in percent; one value alone; "-" when missing."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{100 * mean:.1f}"
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def original_lines(cells: list[dict]) -> list[str]:
    lines = ["| knowledge | seed | forget img | forget txt | retain img | retain txt | other img | other txt | MMBench |",
             "|---|---|---|---|---|---|---|---|---|"]
    seen = set()
    for cell in cells:
        key = (cell["knowledge"], cell["seed"])
        if key in seen:
            continue
        seen.add(key)
        original = cell["document"]["original_metrics"]
        values = [pct(pair(original, group, mode)) for group, mode in ORIGINAL_COLUMNS]
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(values) + f" | {pct(original.get('mmbench'))} |")
    return lines


def seconds_spread(values: list[float]) -> str:
    """``2.2 ± 0.1`` (mean ± sample std over the seeds, sessions.study.mean_std; one seed's alone)."""
    from sessions.study import mean_std

    spread_of = mean_std(values)
    return f"{spread_of['mean']:.1f}" if spread_of["n"] == 1 else f"{spread_of['mean']:.1f} ± {spread_of['std']:.1f}"


def last_request_lines(cells: list[dict]) -> list[str]:
    lines = ["| method | knowledge | K | " + " | ".join(c[0] for c in COLUMNS) + " | MMBench ret % | unlearning s |",
             "|---|---|---|" + "---|" * (len(COLUMNS) + 2)]
    groups: dict[tuple, list[dict]] = {}
    for cell in cells:
        groups.setdefault((cell["method"], cell["knowledge"], cell["requests"]), []).append(cell)
    for (method, knowledge, k), group in groups.items():
        lasts = [cell["document"]["requests"][-1] for cell in group]
        values = [spread([pair(last, group_name, mode) for last in lasts]) for _, group_name, mode in COLUMNS]
        retention = spread([None if last.get("mmbench_retention") is None else last["mmbench_retention"] / 100
                            for last in lasts])
        # the unlearning's own seconds: a cell's wall time holds the original's training where that cell paid for
        # it (GA read 92 s a cell, 62-77 of them training the original, against 2.1-2.3 s of unlearning)
        unlearning = [(cell["document"].get("cost") or {}).get("unlearning_seconds") for cell in group]
        seconds = "-" if None in unlearning else seconds_spread(unlearning)
        lines.append(f"| {method} | {knowledge} | {k} | " + " | ".join(values) + f" | {retention} | {seconds} |")
    return lines


def grid_lines(cells: list[dict]) -> list[str]:
    seeds = sorted({cell["seed"] for cell in cells})
    return ["Original model (request 0), accuracy %:", "", *original_lines(cells), "",
            f"After the last request, accuracy % (mean over seeds {', '.join(map(str, seeds))} ± sample std; "
            "MMBench: retention in % of the original):", "", *last_request_lines(cells), "",
            *variant_lines(cells)]


def variant_lines(cells: list[dict]) -> list[str]:
    variants = {cell["method"]: cell["document"].get("variant", "variant not recorded") for cell in cells}
    return [f"- {method}: {variant}" for method, variant in variants.items()]
