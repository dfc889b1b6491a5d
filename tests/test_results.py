"""Results tables are generated from the JSON they came from (workbench/results.py): every record under
docs/results/ has its block in the results page (docs/pages/results.md), and the block is exactly what the record renders."""
from __future__ import annotations

import json

import pytest

from workbench import results

RECORDS = sorted(results.RESULTS.glob("*.json"))


def test_there_are_records():
    assert RECORDS, "docs/results/ holds the JSON the results page's tables are generated from"


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: p.stem)
def test_a_table_matches_its_json(path):
    """Every record's table stands in some docs page (the results page, or the page whose subject it is), and
    every page holding its block holds exactly what the record renders."""
    record = json.loads(path.read_text())
    pages = [page for page in sorted((results.ROOT / "docs" / "pages").glob("*.md"))
             if results.block(record["name"]).search(page.read_text())]
    assert pages, f"no docs page has a block for {path.name}"
    for page in pages:
        text = page.read_text()
        assert results.refreshed(text, record) == text, (
            f"{page.name}'s {record['name']} table differs from {path.name}: run python -m workbench.results {path} {page}")


def test_a_changed_number_is_caught():
    record = next(r for r in map(json.loads, (path.read_text() for path in RECORDS)) if "runs" in r["document"])
    page = results.TARGET.read_text()
    first = record["document"]["runs"][0]["metrics"]
    first["df_dr_auc"] = (first.get("df_dr_auc") or 0) + 0.123
    assert results.refreshed(page, record) != page


def test_a_study_table_is_its_grid_in_markdown():
    """A `study --json` document renders as the grid `study` prints: Retrain first, then the ranking; mean ± std
    over the seeds from the runs themselves; the ranking rule below."""
    from sessions.study import aggregate, rank

    def result(auc: float, test: float) -> dict:
        return {"metrics": {"df_dr_auc": auc, "test": {"r_mean": test}}, "seconds": 2.0}

    runs = [("retrain", 1, result(0.60, 50.0)), ("retrain", 2, result(0.62, 52.0)),
            ("ft", 1, result(0.52, 51.0)), ("ft", 2, result(0.54, 53.0)),
            ("multidelete", 1, result(0.64, 49.0)), ("multidelete", 2, result(0.60, 51.0))]
    methods = aggregate(runs, order=["retrain", "ft", "multidelete"])
    document = {"study": "study-x", "cells": [], "methods": methods, "ranking": rank(methods, 5.0),
                "spec": {"methods": ["retrain", "ft", "multidelete"], "seeds": [1, 2], "model": "clip-tiny",
                         "data": "shapes-tiny", "task": "retrieval"}}
    record = results.make_record("study-x", "mmul-workbench study ... --json", document)
    table = results.render(record)
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert [row.split(" | ")[0] for row in rows[:3]] == ["| Retrain", "| MultiDelete", "| FT"]  # AUC gap 3.0 < 8.0
    retrain = rows[0].split(" | ")
    assert retrain[1] == "2" and "61.0 ± 1.4" in rows[0] and "51.0 ± 1.4" in rows[0]
    assert "Ranked by closeness to Retrain" in table


def test_a_study_with_attacks_shows_each_attacks_recovery_as_study_prints_it():
    """`study --attacks` adds a recovery column per attack (workbench/study_attacks.py); the docs table is the
    same grid, mean ± std of each method's fractions over the seeds, in percent."""
    from sessions.study import aggregate
    from sessions.study import with_attacks

    def result(recovery: float) -> dict:
        summary = {"metrics": {"df_dr_auc": 0.6, "test": {"r_mean": 50.0}}, "seconds": 2.0}
        return with_attacks(summary, {"quantize": {"recovery": recovery, "points": 1.0}})

    runs = [("retrain", 1, result(0.0)), ("retrain", 2, result(0.0)), ("ft", 1, result(0.10)), ("ft", 2, result(0.30))]
    methods = aggregate(runs, order=["retrain", "ft"])
    document = {"study": "s", "cells": [], "methods": methods, "attacks": ["quantize"],
                "spec": {"methods": ["retrain", "ft"], "seeds": [1, 2], "model": "clip-tiny", "data": "shapes-tiny",
                         "task": "retrieval"}}
    table = results.render(results.make_record("s", "study --attacks quantize", document))
    header = next(line for line in table.splitlines() if line.startswith("| method"))
    assert "quantize recovery" in header
    ft = next(line for line in table.splitlines() if line.startswith("| FT"))
    assert "20.0 ± 14.1" in ft


def test_a_pulse_grid_renders_its_cells_with_mean_and_sample_std():
    """bench_pulse's cells: one row per method x knowledge x K after the last request, mean ± sample std over
    the seeds in percent; the originals per knowledge and seed; each method's variant below."""
    def cell(method: str, seed: int, forget_image: float, retention: float, unlearning: float) -> dict:
        last = {"forget": {"image": forget_image, "text": 0.5}, "retain": {"image": 0.9, "text": 0.8},
                "mmbench_retention": retention}
        original = {"forget": {"image": 1.0, "text": 1.0}, "retain": {"image": 1.0, "text": 0.9},
                    "other": {"image": 0.25, "text": 0.3}, "mmbench": 0.6}
        return {"method": method, "knowledge": "pretrained", "requests": 2, "seed": seed,
                "document": {"model": "llava-tiny", "data": "people-tiny", "variant": f"{method} as released",
                             "original_metrics": original, "requests": [{}, last], "wall_seconds": 70.0,
                             "cost": {"unlearning_seconds": unlearning, "original_seconds": 60.0}}}

    cells = [cell("ga", 42, 0.2, 90.0, 2.0), cell("ga", 87, 0.4, 100.0, 3.0)]
    record = results.make_record("pulse-x", "python bench/bench_pulse.py ...", cells)
    table = results.render(record)
    row = next(line for line in table.splitlines() if line.startswith("| ga |"))
    assert row.split(" | ")[3:5] == ["30.0 ± 14.1", "50.0 ± 0.0"]  # forget img: (20 + 40) / 2, std sqrt(200)
    assert "95.0 ± 7.1" in row
    # the unlearning's own seconds, with their spread: a wall time held the original's training where a cell paid
    assert row.endswith("| 2.5 ± 0.7 |") and "| unlearning s |" in table
    assert "| pretrained | 42 | 100.0 | 100.0 | 100.0 | 90.0 | 25.0 | 30.0 | 60.0 |" in table
    assert "- ga: ga as released" in table and "llava-tiny on people-tiny; 2 runs" in table


def test_a_worlds_table_judges_each_world_on_its_seed_means():
    """bench_worlds' grid: per world the original's and Retrain's Df, their gap and AUCs as mean ± sample std,
    and the three criteria judged on the means (gap >= 15, original AUC in 45-55, Retrain's >= 10 away)."""
    def cell(world: str, seed: int, original_df: float, retrain_df: float, original_auc: float, retrain_auc: float):
        def metrics(df: float, auc: float) -> dict:
            return {"df": {"accuracy": df}, "test": {"accuracy": 60.0}, "df_dr_auc": auc,
                    "holdout_identity": {"accuracy": 70.0}, "holdout_association": {"accuracy": 71.0}}
        return {"world": world, "model": "blip-tiny", "seed": seed, "original_metrics": metrics(original_df, original_auc),
                "metrics": metrics(retrain_df, retrain_auc)}

    grid = {"delete": 16, "worlds": [cell("w-a", 1, 80.0, 60.0, 0.50, 0.70), cell("w-a", 2, 90.0, 60.0, 0.52, 0.66),
                                     cell("w-b", 1, 70.0, 60.0, 0.50, 0.52), cell("w-b", 2, 72.0, 64.0, 0.56, 0.50)]}
    table = results.render(results.make_record("worlds-x", "python bench/bench_worlds.py", grid))
    a = next(line for line in table.splitlines() if line.startswith("| `w-a`"))
    b = next(line for line in table.splitlines() if line.startswith("| `w-b`"))
    assert "| 85.0 ± 7.1 | 60.0 ± 0.0 | 25.0 ± 7.1 | 51.0 ± 1.4 | 68.0 ± 2.8 |" in a
    assert a.endswith("| yes yes yes |")
    assert b.endswith("| **no** yes **no** |")  # gap 9.0; AUC 53.0 against 51.0


def test_a_continual_table_summarises_the_history_over_seeds():
    """bench_continual's grid: per method the Df after the last request, preservation in percent and rebound as
    mean ± sample std; each run's largest rebound listed with the requests it spans."""
    def cell(seed: int, df_after: float, preservation: float, rebound: float, where) -> dict:
        return {"method": "ga_klr", "seed": seed, "variant": "PULSE's GA+KLR", "seconds": 60.0,
                "original_metrics": {"df": {"r_mean": 90.0}}, "metrics": {"df": {"r_mean": df_after}, "test": {"r_mean": 30.0}},
                "history": {"metric": "df.r_mean", "utility_metric": "dr.r_mean", "sample": 20,
                            "summary": {"preservation": preservation, "rebound": rebound, "rebound_at": where,
                                        "stability": 1.0, "retain_area": 80.0}}}

    grid = {"continual": [cell(42, 20.0, 0.9, 0.0, None), cell(87, 30.0, 0.7, 12.5, [3, 40])],
            "model": "clip-tiny", "data": "shapes-tiny", "requests": 100, "eval_every": 10}
    table = results.render(results.make_record("continual-x", "python bench/bench_continual.py", grid))
    row = next(line for line in table.splitlines() if line.startswith("| ga_klr |"))
    assert row.split(" | ")[1:6] == ["90.0 ± 0.0", "25.0 ± 7.1", "30.0 ± 0.0", "80.0 ± 14.1", "6.2 ± 8.8"]
    assert "- ga_klr, seed 87: request 3's Df rose by 12.5 points by request 40" in table
    assert "seed 42: request" not in table and "100 requests of one unit" in table


def test_demo_and_study_tables_show_the_holdout_sets_beside_test_where_the_runs_have_them():
    """Issue 24: the holdout sets are columns of the demo and study tables on a built-in world; a run on real
    files (no holdout sets) gets no empty columns."""
    from sessions.study import aggregate
    from engine.spec import shown_columns

    def metrics(holdout: bool) -> dict:
        return {"df_dr_auc": 0.5, "test": {"accuracy": 60.0}, "df": {"accuracy": 80.0}, "dr": {"accuracy": 79.0},
                **({"holdout_identity": {"accuracy": 77.5}, "holdout_association": {"accuracy": 66.25}} if holdout else {})}

    def demo(holdout: bool) -> str:
        runs = [{"method": m, "task": "classification", "data": "shapes-ve-tiny", "seed": 1, "seconds": 1.0,
                 "metrics": metrics(holdout)} for m in ("retrain", "ft")]
        document = {"runs": runs, "deletion": {"units": 4}, "original_metrics": metrics(holdout)}
        return results.render(results.make_record("demo-x", "mmul-workbench demo ...", document))

    header = next(line for line in demo(True).splitlines() if line.startswith("| method"))
    cells = [cell.strip() for cell in header.split("|")]
    assert cells.index("holdout id") == cells.index("Dr acc") + 1
    assert "77.5" in demo(True) and "66.2" in demo(True)
    assert "holdout" not in demo(False)

    stats = aggregate([("retrain", 1, {"metrics": metrics(True)}), ("ft", 1, {"metrics": metrics(True)})],
                      order=["retrain", "ft"])
    document = {"study": "s", "cells": [], "methods": stats, "spec": {"methods": ["retrain", "ft"], "seeds": [1],
                "model": "blip-tiny", "data": "shapes-ve-tiny", "task": "classification"}}
    assert "| holdout id | holdout assoc |" in results.render(results.make_record("s", "study", document))
    assert [c.header for c in shown_columns("classification", [{"test.accuracy": 60.0}])] == [
        "Df/Dr AUC", "test acc", "Df acc", "Dr acc", "MIA Df member", "MIA test member", "MIA AUC"]


def test_each_recorded_studys_command_still_plans_the_recorded_study():
    """A recorded study's id is how it is found and resumed: study-shapes-tiny's command planned another id once
    --tune's tolerance was taken for a guardrail (its numbers were the same, its record was lost to the command)."""
    import shlex

    from workbench.cli_study import plan_from_args

    for path in sorted(results.RESULTS.glob("study-*.json")):
        record = json.loads(path.read_text())
        args = [word for word in shlex.split(record["command"])[2:] if word != "--json"]
        assert plan_from_args(args).id == record["document"]["study"], path.name


def test_a_records_threads_are_those_its_runs_recorded():
    """The header took the thread count from the recording shell's OMP_NUM_THREADS ("torch default"), though each
    run had recorded its own (1), and said nothing of a study resumed at another count."""
    run = {"runs": [{"cost": {"torch_threads": 1}}, {"cost": {"torch_threads": 1}}]}
    assert results.threads_of(run) == "1"
    study = {"methods": {"ft": {"cost.torch_threads": {"mean": 1.5, "std": 0.71, "n": 2}},
                         "npo": {"cost.torch_threads": {"mean": 1.0, "std": 0.0, "n": 2}}}}
    assert results.threads_of(study) == "mixed (the runs trained at different counts)"
    assert results.threads_of({"metrics": {}}) is None
    assert results.make_record("x", "cmd", run)["threads"] == "1"


def test_a_bench_table_says_which_goals_were_met():
    """A bench script's `--json-out` figures (bench/figures.py) render with their goals, met or missed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("figures", results.ROOT / "bench" / "figures.py")
    figures_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures_module)
    figures = figures_module.Figures("engine", "clip-tiny on shapes", torch_threads=1)
    figures.add("Retrain", 35.2, "s", detail="2628 steps")
    figures.add("MultiDelete / Retrain time", 0.129, goal="<= 0.12")
    figures.add("redraws a second", 44.2, "/s", goal=">= 4")
    figures.add("plot redraw", 0.0226, "s")
    record = results.make_record("bench-x", "python bench/bench_engine.py --json-out x.json", figures.document)
    assert record["threads"] == "1"
    rows = [line for line in results.render(record).splitlines() if line.startswith("| ") and "figure" not in line]
    assert rows == ["| Retrain | 35.2 s (2628 steps) |  |  |",
                    "| MultiDelete / Retrain time | 0.129 | <= 0.12 | **missed** |",
                    "| redraws a second | 44.2/s | >= 4 | met |",
                    "| plot redraw | 22.6 ms |  |  |"]
