"""Attacks on a finished pulse session on people-tiny (llava-tiny, GA, 2 requests): relearn, quantize and rephrase
each run, link to their parent and report recovery on `forget.accuracy` in points and as a share of the gap;
the people-specific pieces (headline, paraphrase wording, refusals) by hand."""
import random
import subprocess

import pytest

from tests.conftest import cli, cli_env, link_shared_originals


@pytest.fixture(scope="module")
def pulse_home(tmp_path_factory):
    """A home of its own holding one finished pulse run (the people-tiny original from the shared cache)."""
    home = tmp_path_factory.mktemp("pulse-attack-home")
    link_shared_originals(home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMUL_HOME", str(home))
        from engine.spec.validate import validate_pulse
        from workbench.execute import run_session

        # lr 3e-3: at GA's default rate this seed-42 run forgot something on an AVX2 machine and nothing on an
        # AVX-512 one before the CPU kernels were held (engine/cpu_kernels.py): float rounding decided. Recovery's
        # arithmetic needs a gap that no rounding can close
        spec = validate_pulse({"method": "ga", "model": "llava-tiny", "data": "people-tiny", "requests": 2,
                               "device": "cpu", "seed": 42, "params": {"lr": 3e-3}})
        yield home, run_session(spec, label="ga")


@pytest.fixture
def parent(pulse_home, monkeypatch):
    home, result = pulse_home
    monkeypatch.setenv("MMUL_HOME", str(home))
    return result


def attack(kind: str, session: str, as_json: bool = True, **options) -> dict:
    from workbench.cli_attack import attack_session

    return attack_session(kind, session, {"seed": None, **options}, as_json=as_json)


def forget_accuracy(entry: dict) -> float:
    return (entry["forget"]["image"] + entry["forget"]["text"]) / 2


def check_recovery(document: dict, parent: dict) -> None:
    """The recovery's arithmetic from the document's own numbers and the parent's stored ones."""
    original, unlearned, attacked = (document[k]["df"] for k in ("original", "unlearned", "attacked"))
    assert document["headline"] == "forget.accuracy" and document["parent"] == parent["session"]
    assert original == pytest.approx(forget_accuracy(parent["original_metrics"]))
    assert unlearned == pytest.approx(forget_accuracy(parent["metrics"]))
    # points in percentage points, as on runs: the fractions' difference x 100
    assert document["recovery"]["points"] == pytest.approx(100 * (attacked - unlearned))
    gap = original - unlearned
    assert document["recovery"]["gap"] == pytest.approx(100 * gap)
    assert gap > 0  # GA forgot something on people-tiny
    assert document["recovery"]["fraction"] == pytest.approx((attacked - unlearned) / gap)
    assert "of the forgotten gap" in document["verdict"] and "points back" in document["verdict"]


def test_relearn_on_a_pulse_session(parent):
    from sessions.attacks import attacks_of
    from sessions.store import SessionStore

    document = attack("relearn", parent["session"], steps=3, on="df-sample", units=1, lr=None, batch_size=8)
    check_recovery(document, parent)
    assert document["record"]["steps"] == 3 and len(document["record"]["units"]) == 1
    assert set(document["record"]["units"]) <= set(parent["forget_people"])
    assert document["metrics"]["mmbench_retention"] is not None  # against the original's stored MMBench
    linked = attacks_of(SessionStore(), parent["session"])
    assert linked[-1]["id"] == document["session"] and linked[-1]["kind"] == "relearn"


def test_quantize_on_a_pulse_session(parent, capsys):
    document = attack("quantize", parent["session"], as_json=False, bits=4)
    check_recovery(document, parent)
    printed = capsys.readouterr().out.splitlines()  # what the operator reads: recovery in points and of the gap
    assert printed[1] == document["verdict"] and "Df/Dr AUC" not in printed[1]  # people data has no Df/Dr AUC
    assert printed[1].startswith("quantize attack on the model after request 2 of 2: Df accuracy ") and "% of the forgotten gap" in printed[1]
    assert printed[2].startswith("no Retrain baseline: pulse runs have none")
    assert 0 < document["record"]["quantised_weights"] < document["record"]["weights"]


def test_rephrase_on_a_pulse_session(parent):
    """Rephrased questions are scored against the original on the same rephrased questions: of the forgetting on
    the exact ones (original - unlearned), the share that does not hold on them."""
    document = attack("rephrase", parent["session"], paraphrases=None)
    original, unlearned, attacked = (document[k]["df"] for k in ("original", "unlearned", "attacked"))
    original_rephrased = document["original_attacked"]["df"]
    gap = original - unlearned
    assert gap > 0 and document["recovery"]["gap"] == pytest.approx(100 * gap)
    held = original_rephrased - attacked  # the forgetting that holds on the rephrased questions
    assert document["recovery"]["points"] == pytest.approx(100 * (gap - held))
    assert document["recovery"]["fraction"] == pytest.approx((gap - held) / gap)
    assert f"original {100 * original:.1f}, unlearned {100 * unlearned:.1f}; rephrased: original " \
           f"{100 * original_rephrased:.1f}, unlearned {100 * attacked:.1f}" in document["verdict"]
    assert "hold on the rephrased inputs" in document["verdict"]
    asked = 2 * 5 * len(parent["forget_people"])  # every forget person's questions, with the image and by name
    assert document["record"]["paraphrases"] == "built-in"
    assert document["record"]["paraphrased_texts"] == document["record"]["texts"] == asked
    assert document["original_attacked"]["df"] is not None


def test_people_rephrasing_rewords_the_fact_and_transforms_the_portrait():
    from engine.attacks.people import rephrased_question
    from engine.data.people import build_people_world

    world = build_people_world("people-tiny")
    image_question, text_question = world.eval_questions[1], world.eval_questions[6]  # job: image, by name
    name = world.people[0].name
    new, changed = rephrased_question(image_question, random.Random(0), {})
    assert changed and new.question == "What does this person do for a living?"
    assert new.options == image_question.options and new.answer == image_question.answer
    assert new.image.size == image_question.image.size and new.image.tobytes() != image_question.image.tobytes()
    new, changed = rephrased_question(text_question, random.Random(0), {})
    assert new.question == f"What does {name} do for a living?" and new.image is None
    table = {text_question.question: ["Tell me the occupation of that one."]}
    assert rephrased_question(text_question, random.Random(0), table)[0].question == table[text_question.question][0]
    assert rephrased_question(image_question, random.Random(0), table)[1] is False  # not in the file: kept


def test_people_headline_is_the_mean_of_image_and_text():
    from engine.attacks.people import with_headline
    from engine.attacks.recovery import headline

    metrics = with_headline({"forget.image": 0.6, "forget.text": 0.2, "retain.image": 1.0})
    assert metrics["forget.accuracy"] == pytest.approx(0.4) and headline(metrics) == "forget.accuracy"
    assert "forget.accuracy" not in with_headline({"forget.image": 0.6})


def test_neighbours_is_refused_on_a_pulse_session_in_one_line(parent, pulse_home):
    out = subprocess.run(cli("attack", "relearn", parent["session"], "--on", "neighbours"), env=cli_env(pulse_home[0]),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "use --on df-sample" in out.stderr and out.stdout == ""


def test_an_attack_line_shows_people_points_in_percent():
    """The document stores points in percentage points on every task (forget.accuracy's 0.005 is 0.5)."""
    from sessions.attacks import attack_line

    entry = {"id": "s1", "kind": "quantize", "params": {"bits": 4}, "state": "finished", "recovery": 0.02,
             "points": 0.5, "retrain_recovery": None, "headline": "forget.accuracy"}
    assert attack_line(entry) == "s1 quantize (bits 4) finished: recovered 2% of the forgotten gap (0.5 points)"
    # a document stored before points were percentage points everywhere still reads in points
    from sessions.attacks import percentage_points

    assert percentage_points({"points": 0.005}, "forget.accuracy") == pytest.approx(0.5)
    assert percentage_points({"points": 0.5, "unit": "points"}, "forget.accuracy") == 0.5
    assert percentage_points({"points": 12.0}, "df.r_mean") == 12.0


@pytest.fixture(scope="module")
def fact_parent(pulse_home):
    """A finished pulse run that forgot 4 single facts (--granularity fact) in the same home."""
    home, _ = pulse_home
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMUL_HOME", str(home))
        from engine.spec.validate import validate_pulse
        from workbench.execute import run_session

        spec = validate_pulse({"method": "ga", "model": "llava-tiny", "data": "people-tiny", "requests": 2,
                               "forget": 4, "granularity": "fact", "device": "cpu", "seed": 42,
                               "params": {"lr": 3e-3}})
        return run_session(spec, label="ga facts")


def test_attacks_on_a_fact_run_score_and_relearn_the_deleted_facts_only(fact_parent, monkeypatch, pulse_home):
    """They scored and relearned the facts' whole people, so the people's kept facts read as recovered (a review);
    they were refused since. Now each reads the run's own forget facts, as the run's evaluation did."""
    monkeypatch.setenv("MMUL_HOME", str(pulse_home[0]))
    facts = fact_parent["deletion"]["facts"]
    assert len(facts) == 4 and all("#" in fact for fact in facts)
    relearned = attack("relearn", fact_parent["session"], steps=3, on="df-sample", units=2, lr=None, batch_size=8)
    check_recovery(relearned, fact_parent)  # the unlearned Df read back is the run's own forget accuracy: the facts'
    assert relearned["record"]["units"] and set(relearned["record"]["units"]) <= set(facts)
    rephrased = attack("rephrase", fact_parent["session"], paraphrases=None)
    assert rephrased["record"]["texts"] == 2 * len(facts)  # each fact asked with the portrait and by name
