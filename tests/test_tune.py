"""--tune: lr and epochs picked on a validation deletion set (disjoint from Df) scored on the validation
split; the choice is stored, and the reported test split is never read while tuning."""
import pytest

from conftest import ROOT, cli, cli_env
from engine.errors import SpecError
from engine.spec import validate, validate_pulse


def spec(method="neggrad", **params):
    return validate({"method": method, "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu", "seed": 7,
                     "deletion": {"strategy": "random", "n": 4, "seed": 7}, "params": {"tune": True, **params}})


def test_tune_picks_from_the_grid_on_validation_data_and_never_reads_test(home, monkeypatch):
    import engine.protocols.tune as tuning
    import engine.tasks.retrieval as retrieval
    import engine.tasks.units as units
    from engine.data.deletion import select_units
    from engine.data.registry import load_data
    from engine.protocols.requests import run_requests

    world = load_data("shapes-tiny")
    test_ids = {unit.unit_id for unit in world.test}
    val_ids = {unit.unit_id for unit in world.val}
    encoded_while_tuning: set[str] = set()
    tuning_now = [False]

    def spy(encode):
        def wrapped(unit_list, model):
            if tuning_now[0]:
                encoded_while_tuning.update(unit.unit_id for unit in unit_list)
            return encode(unit_list, model)
        return wrapped

    def tune(*args, **kwargs):
        tuning_now[0] = True
        try:
            return real_tune(*args, **kwargs)
        finally:
            tuning_now[0] = False

    real_tune = tuning.tune
    monkeypatch.setattr(retrieval, "encode_units", spy(retrieval.encode_units))
    monkeypatch.setattr(units, "encode_units", spy(units.encode_units))
    monkeypatch.setattr(tuning, "tune", tune)
    logs = []
    normal = spec()
    document = run_requests(normal, lambda kind, **f: logs.append(f.get("message")) if kind == "log" else None,
                            lambda: False)

    assert encoded_while_tuning and val_ids <= encoded_while_tuning and not encoded_while_tuning & test_ids
    tuned = document["tuned"]
    base = tuned["grid"][2]["lr"]  # the grid in its stated order: lr/3, lr, 3 lr, each x 1 and 3 epochs
    expected = [(base * factor, epochs) for factor in (1 / 3, 1, 3) for epochs in (1, 3)]
    assert [p["lr"] for p in tuned["grid"]] == pytest.approx([lr for lr, _ in expected])
    assert [p["epochs"] for p in tuned["grid"]] == [epochs for _, epochs in expected]
    assert all(p["val.df_dr_auc"] is not None and p["val.r_mean"] is not None for p in tuned["grid"])
    assert (tuned["lr"], tuned["epochs"]) in [(p["lr"], p["epochs"]) for p in tuned["grid"]]
    assert document["hyperparameters"]["lr"] == tuned["lr"] and document["hyperparameters"]["epochs"] == tuned["epochs"]
    assert document["hyperparameters"]["tune"] is True
    reported = select_units(world.train, normal["deletion"])
    validation = tuning.validation_units(world, reported, normal["seed"])
    assert len(validation) == len(reported) == tuned["deletion"]["units"] and not set(validation) & set(reported)
    assert any(m and m.startswith("tune: chose lr") for m in logs)
    assert sum(1 for m in logs if m and m.startswith("tune: lr")) == len(tuned["grid"])


def test_the_criterion_by_hand():
    """Highest validation Df/Dr AUC among the points within --keep-tolerance of the original's validation
    headline (or closest to --target-auc); none within: the highest headline; ties: the earlier point."""
    from engine.protocols.guard import Guard
    from engine.protocols.tune import choose

    points = [{"lr": 1, "val.df_dr_auc": 0.60, "val.r_mean": 49.0},
              {"lr": 2, "val.df_dr_auc": 0.90, "val.r_mean": 40.0},  # the most forgetting, but 10 points down
              {"lr": 3, "val.df_dr_auc": 0.70, "val.r_mean": 46.0},
              {"lr": 4, "val.df_dr_auc": 0.70, "val.r_mean": 47.0}]
    original = {"df_dr_auc": 0.5, "test.r_mean": 50.0}
    guard = Guard({"keep_tolerance": 5.0}, "retrieval", original, lambda *a, **k: None)
    assert choose(points, guard, "test.r_mean")["lr"] == 3  # 0.70 within 5 points; lr 4 ties, comes later
    closest = Guard({"keep_tolerance": 5.0, "target_auc": 0.62}, "retrieval", original, lambda *a, **k: None)
    assert choose(points, closest, "test.r_mean")["lr"] == 1
    strict = Guard({"keep_tolerance": 0.5}, "retrieval", original, lambda *a, **k: None)
    assert choose(points, strict, "test.r_mean")["lr"] == 1  # none within 0.5 points: the highest headline


@pytest.mark.parametrize("params, message", [
    ({"lr": 1e-3}, "--tune picks --lr itself"),
    ({"epochs": 2}, "--tune picks --epochs itself"),
])
def test_tune_refuses_what_it_would_choose(params, message):
    with pytest.raises(SpecError, match=message):
        spec(**params)


def test_tune_refused_for_retrain_and_people_data():
    with pytest.raises(SpecError, match="Retrain is the reference"):
        spec("retrain")
    with pytest.raises(SpecError, match="people data has none"):
        validate_pulse({"method": "ga", "model": "llava-tiny", "data": "people-tiny", "requests": 1,
                        "params": {"tune": True}})


def test_tune_bad_input_through_the_cli_is_one_line_exit_2(home):
    import subprocess

    result = subprocess.run(cli("run", "--method", "neggrad", "--model", "clip-tiny", "--data", "shapes-tiny",
                                "--delete", "4", "--tune", "--lr", "0.001"), cwd=ROOT, env=cli_env(home),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "--tune picks --lr itself" in result.stderr and "Traceback" not in result.stderr


def test_study_gives_budget_and_tuning_to_every_method_but_retrain_and_runs_multidelete_first():
    import typer

    from workbench.cli_study import method_params, timed_order

    given = {"budget": "matched-time", "tune": True, "batch_size": 8}
    assert method_params("retrain", given) == {"batch_size": 8}
    assert method_params("npo", given) == given
    assert timed_order(["retrain", "ft", "multidelete", "npo"], given) == ["retrain", "multidelete", "ft", "npo"]
    assert timed_order(["retrain", "ft", "npo"], {**given, "budget_seconds": 2.0}) == ["retrain", "ft", "npo"]
    with pytest.raises(typer.Exit):
        timed_order(["retrain", "ft"], given)  # no MultiDelete to read the seconds of
