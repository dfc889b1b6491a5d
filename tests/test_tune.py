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
    core = [p for p in tuned["grid"] if "extension" not in p]
    assert [p["lr"] for p in core] == pytest.approx([lr for lr, _ in expected]) and tuned["grid"][:6] == core
    assert [p["epochs"] for p in core] == [epochs for _, epochs in expected]
    # past an edge the grid grows once, each added point recorded (9 lr or lr/9, 9 epochs)
    assert len(tuned["extended"]) == len(tuned["grid"]) - 6 <= 2 and tuned["against"] == "auc"
    assert "no Retrain to aim at" in tuned["criterion"]
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
    original = {"df_dr_auc": 0.5, "val.r_mean": 50.0}  # the guard reads validation names
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
    from workbench.cli_study import method_params, timed_order

    given = {"budget": "matched-time", "tune": True, "batch_size": 8, "retain_batch_size": 16}
    assert method_params("retrain", given) == {"batch_size": 8}   # Retrain trains in its recipe's Dr batches
    assert method_params("npo", given) == given
    # nor the guardrails: a stop-if cut the reference short (Retrain stopped at step 48 of 288), keep best kept
    # an earlier step of it
    guards = {"stop_if": "df_dr_auc>0.6", "keep": "best", "keep_tolerance": 2.0, "target_auc": 0.7}
    assert method_params("retrain", {**guards, "batch_size": 8}) == {"batch_size": 8}
    assert method_params("ft", guards) == guards
    # a study planned with a guardrail before this gets another id, so its cut-short Retrain is not resumed
    from workbench.cli_study import plan_from_args

    args = ["--methods", "retrain,ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4", "--seeds", "42"]
    guarded = plan_from_args([*args, "--stop-if", "df_dr_auc>0.6"])
    assert guarded.spec["unguarded_reference"] is True and guarded.cells[0][2]["params"]["stop_if"] is None
    assert guarded.cells[1][2]["params"]["stop_if"] == "df_dr_auc>0.6"  # FT keeps it
    assert "unguarded_reference" not in plan_from_args(args).spec  # other studies keep their ids
    # --tune sets --keep-tolerance, which never acted on Retrain: a tuned study keeps its id too (it got a new one)
    assert "unguarded_reference" not in plan_from_args([*args, "--tune"]).spec
    # the tolerance a study ranks by travels in its record's spec, not in its id (the TUI's grid ranks by it)
    tight = plan_from_args([*args, "--tolerance", "0.5"])
    assert tight.spec["tolerance"] == 0.5 and tight.id == plan_from_args(args).id
    assert timed_order(["retrain", "ft", "multidelete", "npo"], given) == ["retrain", "multidelete", "ft", "npo"]
    assert timed_order(["retrain", "ft", "npo"], {**given, "budget_seconds": 2.0}) == ["retrain", "ft", "npo"]
    with pytest.raises(SpecError, match="add multidelete to --methods"):
        timed_order(["retrain", "ft"], given)  # no MultiDelete to read the seconds of (the CLI: one line, exit 2)


# --- closest to a validation Retrain (study --tune with Retrain), and the grid's edge ---------------------
# validation (Df/Dr AUC, r_mean) of each grid point, by (lr / the base lr, epochs); the validation original
# is (0.50, 50.0)
TABLE = {(1 / 3, 1): (0.52, 49.0), (1 / 3, 3): (0.55, 48.0), (1, 1): (0.58, 47.0), (1, 3): (0.66, 45.0),
         (3, 1): (0.63, 46.0), (3, 3): (0.80, 38.0),
         (9, 1): (0.75, 41.0), (9, 3): (0.95, 20.0), (3, 9): (0.84, 35.0)}  # past the grid's edges
BASE_LR = 1e-3


def fake_run_point(retrain: tuple[float, float], calls: list):
    """A grid point's (or the validation Retrain's) result document, from TABLE, without training."""
    def run_point(point, emit, task, original):
        calls.append((point["method"], point["params"]["lr"], point["params"]["epochs"]))
        assert task.world.test is task.world.val  # the validation split stands in for test
        if point["method"] == "retrain":
            auc, r_mean = retrain
        else:
            key = next(k for k in TABLE if k == pytest.approx((point["params"]["lr"] / BASE_LR, point["params"]["epochs"])))
            auc, r_mean = TABLE[key]
        return {"checkpoint": "/nonexistent/mmul-test-checkpoint", "steps": 10,
                "original_metrics": {"df_dr_auc": 0.5, "test": {"r_mean": 50.0}},
                "metrics": {"df_dr_auc": auc, "test": {"r_mean": r_mean}}}
    return run_point


def tuned_with_retrain(retrain, calls, cache, method="ft"):
    from engine.protocols.tune import tune

    normal = spec(method, tune_against="retrain")
    assert normal["params"]["tune_against"] == "retrain"
    return tune(normal, BASE_LR, lambda *a, **k: None, lambda: False, cache, fake_run_point(retrain, calls))


def test_closest_to_the_validation_retrain_within_the_tolerance(tmp_path):
    calls = []
    tuned = tuned_with_retrain((0.62, 47.0), calls, tmp_path)
    # within 5 points of Retrain's 47 (all but 3 lr x 3 epochs at 38): the AUC closest to 0.62 is 0.63 at 3 lr x
    # 1 epoch (gaps 0.04 at lr x 1 and lr x 3); today's criterion (highest AUC within 5 of the original's 50)
    # would take lr x 3 epochs (0.66)
    assert (tuned["lr"], tuned["epochs"]) == (pytest.approx(3 * BASE_LR), 1) and tuned["against"] == "retrain"
    # 3 lr is the grid's largest: one step past it (9 lr, same epochs), 6 points off Retrain's test: kept out
    assert tuned["extended"] == [{"lr": pytest.approx(9 * BASE_LR), "epochs": 1, "past": "largest lr"}]
    assert tuned["grid"][-1]["extension"] == "past the largest lr" and len(tuned["grid"]) == 7
    assert tuned["validation_retrain"] == {"val.df_dr_auc": 0.62, "val.r_mean": 47.0, "steps": 10, "cached": False}
    assert "closest to the validation Retrain's" in tuned["criterion"] and "(5)" in tuned["criterion"]
    assert calls[0] == ("retrain", None, None) and [c[0] for c in calls].count("retrain") == 1

    # another method of the same seed reuses the validation Retrain: one per seed
    again = []
    other = tuned_with_retrain((0.62, 47.0), again, tmp_path, method="neggrad")
    assert "retrain" not in [c[0] for c in again] and other["validation_retrain"]["cached"] is True


def test_a_choice_on_the_edge_extends_the_grid_once(tmp_path):
    calls = []
    tuned = tuned_with_retrain((0.85, 36.0), calls, tmp_path)
    # within 5 of 36 only 3 lr x 3 epochs (38): on two edges, so 9 lr x 3 and 3 lr x 9 epochs are tried;
    # 3 lr x 9 (0.84, 35) is then the closest to 0.85 within the tolerance (9 lr x 3: 16 points off)
    assert tuned["extended"] == [{"lr": pytest.approx(9 * BASE_LR), "epochs": 3, "past": "largest lr"},
                                 {"lr": pytest.approx(3 * BASE_LR), "epochs": 9, "past": "most epochs"}]
    assert (tuned["lr"], tuned["epochs"]) == (pytest.approx(3 * BASE_LR), 9)
    assert len(tuned["grid"]) == 8  # once: 3 lr x 9 epochs sits on an edge again, nothing more is added


def test_the_closest_criterion_by_hand():
    from engine.protocols.tune import choose_closest, past_edges

    points = [{"lr": 1, "epochs": 1, "val.df_dr_auc": 0.60, "val.r_mean": 49.0},
              {"lr": 2, "epochs": 1, "val.df_dr_auc": 0.70, "val.r_mean": 39.0},
              {"lr": 3, "epochs": 1, "val.df_dr_auc": 0.66, "val.r_mean": 46.0}]
    retrain = {"val.df_dr_auc": 0.69, "headline_value": 45.0}
    assert choose_closest(points, retrain, "test.r_mean", 5.0)["lr"] == 3  # lr 2 is closer in AUC, 6 points off
    assert choose_closest(points, retrain, "test.r_mean", 0.5)["lr"] == 3  # none within: the closest headline
    assert past_edges(points, points[2]) == [(4.5, 1, "largest lr")] and past_edges(points, points[1]) == []
    assert past_edges(points, points[0]) == [(0.5, 1, "smallest lr")]


def test_tune_against_retrain_needs_tune():
    with pytest.raises(SpecError, match="needs --tune"):
        validate({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu", "seed": 7,
                  "deletion": {"strategy": "random", "n": 4, "seed": 7}, "params": {"tune_against": "retrain"}})


def test_study_with_retrain_tunes_every_method_against_retrain_within_its_tolerance():
    from workbench.cli_study import method_params, tuning_against_retrain

    given = tuning_against_retrain(["retrain", "ft", "npo"], {"tune": True, "batch_size": 8}, 3.0)
    assert given == {"tune": True, "batch_size": 8, "tune_against": "retrain", "keep_tolerance": 3.0}
    assert method_params("ft", given) == given and method_params("retrain", given) == {"batch_size": 8}
    assert tuning_against_retrain(["retrain", "ft"], {"tune": True, "keep_tolerance": 1.0}, 3.0)["keep_tolerance"] == 1.0
    assert tuning_against_retrain(["ft", "npo"], {"tune": True}, 3.0) == {"tune": True}  # no Retrain: as before
    assert tuning_against_retrain(["retrain", "ft"], {"epochs": 1}, 3.0) == {"epochs": 1}  # no --tune


def test_the_validation_task_builds_the_runs_own_tiny_base(tmp_path):
    """The validation task stands the validation split in for test; a tiny model's tokenizer is built from its
    world's words, so the validation Retrain started from another base (the test split's words left out) and
    fed the original that base's token ids: its `validation_original` read as an untrained model (validation
    r_mean 22.1 against 59.7)."""
    from engine.models.registry import tiny_model_dir
    from engine.protocols.tune import validation_task
    from engine.tasks import task_for

    run = spec("ft")
    main, validation = (task_for(run, lambda *a, **k: None, lambda: False, tmp_path),
                        validation_task(run, lambda *a, **k: None, lambda: False, tmp_path))
    assert validation.world.test == main.world.val   # the view scores validation data ...
    assert validation.model_world().vocabulary() == main.world.vocabulary()   # ... with the run's own models
    assert (tiny_model_dir("clip-tiny", validation.model_world(), 7, tmp_path, "retrieval")
            == tiny_model_dir("clip-tiny", main.world, 7, tmp_path, "retrieval"))
