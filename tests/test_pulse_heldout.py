"""PULSE's membership side and forget rows (issue 20, item 8): the built-in people world holds people never
trained on, and the attacks' held-out side is their questions (not the forget questions' wrong options, now
`option_gap`); a request's forget rows are the image questions unless `--forget-rows all`."""
from __future__ import annotations

import pytest

from engine import spec as specs
from engine.data.people import FIRST_NAMES, build_people_world
from engine.data.people_records import HELDOUT
from engine.spec.catalog import PEOPLE_SIZES


@pytest.mark.parametrize("name", list(PEOPLE_SIZES))
def test_held_out_people_are_asked_about_and_never_trained_on(name):
    world = build_people_world(name)
    held_out = [p for p in world.people if p.phase == HELDOUT]
    assert len(held_out) == PEOPLE_SIZES[name].heldout_people >= 2
    ids = {p.person_id for p in held_out}
    trained = [p for p in world.people if p.phase != HELDOUT]
    assert not ids & {item.person_id for phase in ("pretrain", "finetune") for item in world.train_items(phase)}
    assert not ids & {item.person_id for item in world.person_train}
    assert {q.person_id for q in world.eval_questions} >= ids  # asked about, image and by name
    assert not {p.name for p in held_out} & {p.name for p in trained}
    if len(world.people) <= len(FIRST_NAMES):  # the 275 people of `people` share first names (48 of them)
        assert not {p.name.split()[0] for p in held_out} & {p.name.split()[0] for p in trained}


def task_for(home, **params):
    from engine.tasks.multiple_choice import MultipleChoice

    normal = specs.validate_pulse({"method": "ga", "model": "llava-tiny", "data": "people-tiny",
                                   "knowledge": "finetuned", "forget": 2, "device": "cpu", "params": params})
    return MultipleChoice(normal, lambda *a, **k: None, lambda: False, home / "cache")


def test_forget_rows_are_image_questions_by_default_and_all_adds_text(home):
    default = task_for(home)
    assert default.forget_rows == "image"
    rows = default.forget_items(default.forget_people)
    assert rows and all(item.image is not None for item in rows)
    everything = task_for(home, forget_rows="all")
    rows = everything.forget_items(everything.forget_people)
    assert any(item.image is None for item in rows) and any(item.image is not None for item in rows)
    assert len(rows) == len(everything.items(everything.forget_people))
    assert everything.result_fields([])["forget_rows"] == "all" and default.result_fields([])["forget_rows"] == "image"
    # the retain set keeps both routes whatever --forget-rows says
    assert {item.image is None for item in default.items(default.retain_people)} == {True, False}


def test_attack_held_out_side_is_people_never_trained_on(home, monkeypatch):
    import engine.tasks.multiple_choice as mc
    from engine.models.registry import load_adapter

    task = task_for(home)
    scored_sets, attacked = [], []
    real_score, real_attack = mc.score_options, mc.attack_aucs

    def spy_score(model, questions, *args, **kwargs):
        scored_sets.append(list(questions))
        return real_score(model, questions, *args, **kwargs)

    def spy_attack(members, held_out):
        attacked.append((len(members), len(held_out)))
        return real_attack(members, held_out)

    monkeypatch.setattr(mc, "score_options", spy_score)
    monkeypatch.setattr(mc, "attack_aucs", spy_attack)
    model = load_adapter("llava-tiny", task.source, 0, home / "cache", task.name)  # untrained: enough to score
    metrics = task.evaluate(model, task.forget_people)
    held_out_ids = set(task.heldout_people)
    assert held_out_ids and not held_out_ids & {item.person_id for item in task.data.person_train}
    held_out_questions = next(qs for qs in scored_sets if qs and {q.person_id for q in qs} <= held_out_ids)
    assert len(held_out_questions) == 10 * len(held_out_ids)  # 5 with the portrait, 5 by name, per person
    assert all(list(q.options) == [q.answer] for q in held_out_questions)  # the right option alone
    members = 10 * len(task.forget_people)
    # membership: forget questions against the held-out people's; option gap: against their own wrong options
    assert attacked == [(members, len(held_out_questions)), (members, 3 * members)]
    assert {f"mia.{k}" for k in ("loss_auc", "zlib_auc", "mink_auc", "minkpp_auc")} <= set(metrics)
    assert {f"option_gap.{k}" for k in ("loss_auc", "zlib_auc", "mink_auc", "minkpp_auc")} <= set(metrics)
