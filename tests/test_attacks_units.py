"""The attacks' parts checked by hand: recovery arithmetic, 4- and 8-bit weight rounding, the relearning
neighbours, the paraphrase file and the image/text rephrasing, the attack spec's refusals (no model runs)."""
import random

import pytest
import torch
from PIL import Image

from engine.attacks import attack_spec
from engine.attacks.quantize import quantize_linear_weights
from engine.attacks.recovery import headline, recovery
from engine.attacks.relearn import chosen_units
from engine.attacks.rephrase import read_paraphrases, rephrased_unit, swap_sides
from engine.data.pairs import PairSet, TensorBank
from engine.data.shapes import ShapeAttrs, Unit
from engine.errors import SpecError


def test_recovery_by_hand():
    # Df r_mean: original 80, unlearned 20, after the attack 50: 30 points back of a 60-point gap = 0.5
    assert recovery("df.r_mean", 80.0, 20.0, 50.0) == {"points": 30.0, "fraction": 0.5, "gap": 60.0,
                                                        "unit": "points"}
    # the attack made Df worse: negative; unlearning that lowered nothing has no gap to recover
    assert recovery("df.r_mean", 80.0, 20.0, 14.0)["fraction"] == pytest.approx(-0.1)
    assert recovery("df.r_mean", 50.0, 60.0, 70.0) == {"points": 10.0, "fraction": None, "gap": -10.0,
                                                        "unit": "points"}
    # a Df that unlearning left as it was, up to float32 rounding: no gap, not a recovery of 3e7
    assert recovery("df.r_mean", 33.3333335, 33.3333332, 43.3333332)["fraction"] is None
    # people data's accuracy is a fraction: points and gap in percentage points all the same, the share unchanged
    assert recovery("forget.accuracy", 0.8, 0.2, 0.5) == pytest.approx({"points": 30.0, "fraction": 0.5, "gap": 60.0,
                                                                         "unit": "points"})
    assert headline({"df.accuracy": 1.0, "test.accuracy": 2.0}) == "df.accuracy"
    assert headline({"df.r_mean": 1.0}) == "df.r_mean"


def test_quantize_rounds_each_row_to_its_own_grid():
    layer = torch.nn.Linear(3, 2, bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.75, -0.3, 0.1], [2.0, 1.0, -0.6]]))
        layer.bias.copy_(torch.tensor([0.123, -0.456]))
    model = torch.nn.Sequential(layer, torch.nn.LayerNorm(2))
    assert quantize_linear_weights(model, 4) == 6
    # 4 bits, symmetric: scale = max|w| / ((7 - (-8)) / 2) = max|w| / 7.5 per row
    # row 0: scale 0.1 -> 0.75 = 7.5 steps rounds (half to even) to 8, clamped to 7: 0.7; -0.3 -> -3 -> -0.3; 0.1 -> 1
    # row 1: scale 2/7.5 = 0.2667 -> 2.0 = 7.5 steps -> 8 -> clamped 7: 1.8667; 1.0 = 3.75 -> 4: 1.0667; -0.6 = -2.25 -> -2
    s1 = 2.0 / 7.5
    assert layer.weight[0].tolist() == pytest.approx([0.7, -0.3, 0.1], abs=1e-6)
    assert layer.weight[1].tolist() == pytest.approx([7 * s1, 4 * s1, -2 * s1], abs=1e-6)
    assert layer.bias.tolist() == pytest.approx([0.123, -0.456])  # biases stay
    # 8 bits: a grid of max|w| / 127.5 per row; every value within half a step
    other = torch.nn.Linear(4, 3)
    before = other.weight.detach().clone()
    quantize_linear_weights(other, 8)
    step = before.abs().amax(dim=1, keepdim=True) / 127.5
    assert ((other.weight - before).abs() <= step / 2 + 1e-7).all()
    assert torch.allclose(other.weight / step, torch.round(other.weight / step), atol=1e-4)


class FakeAdapter:
    """f_I = the unit's 2-pixel 'image', so the nearest units can be worked out by hand."""

    class Module(torch.nn.Module):
        pass

    def __init__(self):
        self.model = self.Module()
        self.device = torch.device("cpu")

    def image_embed(self, batch):
        return batch["pixel_values"]


class FakeTask:
    def __init__(self, vectors, deletion):
        n = len(vectors)
        self.train = PairSet(TensorBank("pixel_values", torch.tensor(vectors, dtype=torch.float)),
                             torch.zeros(n, 2, dtype=torch.long), torch.ones(n, 2, dtype=torch.long),
                             torch.arange(n), [f"u{i}" for i in range(n)], [f"t{i}" for i in range(n)])
        self.deletion = deletion


def test_relearn_neighbours_are_the_retain_units_closest_to_df():
    # Df = units 0 (east) and 1 (north); Dr: 2 at 10 degrees from east, 3 west, 4 at 60 degrees, 5 south
    task = FakeTask([[1, 0], [0, 1], [0.985, 0.174], [-1, 0], [0.5, 0.866], [0, -1]], [0, 1])
    assert chosen_units(task, FakeAdapter(), "neighbours", 2, seed=1) == [2, 4]
    assert chosen_units(task, FakeAdapter(), "neighbours", 1, seed=1) == [2]
    # more neighbours than Dr holds (a parent document without retain_units): all of Dr, and a warning says so
    said = []
    assert chosen_units(task, FakeAdapter(), "neighbours", 9, seed=1,
                        emit=lambda kind, **event: said.append((kind, event))) == [2, 3, 4, 5]
    assert said == [("log", {"level": "warning",
                             "message": "--units 9: Dr holds 4 units, so the attack relearns on all 4 of them"})]
    sample = chosen_units(task, FakeAdapter(), "df-sample", 1, seed=7)
    assert sample in ([0], [1]) and sample == chosen_units(task, FakeAdapter(), "df-sample", 1, seed=7)


def test_paraphrase_file(tmp_path):
    good = tmp_path / "p.tsv"
    good.write_text("a red circle\tone circle in red\na red circle\ta circle coloured red\n\nx\ty\n")
    assert read_paraphrases(str(good)) == {"a red circle": ["one circle in red", "a circle coloured red"], "x": ["y"]}
    bad = tmp_path / "bad.tsv"
    bad.write_text("no tab here\n")
    with pytest.raises(SpecError, match="line 1 is not original<TAB>paraphrase"):
        read_paraphrases(str(bad))
    with pytest.raises(SpecError, match="cannot read it"):
        read_paraphrases(str(tmp_path / "missing.tsv"))


def test_rephrased_unit_is_seeded_and_keeps_captions_true():
    assert swap_sides("a circle on the left, not the right; leftover") == "a circle on the right, not the left; leftover"
    attrs = ShapeAttrs("circle", "red", "small", "left", "dark")
    unit = Unit("u/1.png", Image.new("RGB", (16, 16), (200, 10, 10)),
                ["a small red circle on the left", "a red circle on a dark background"], attrs)
    first, changed = rephrased_unit(unit, random.Random(3), {})
    again, _ = rephrased_unit(unit, random.Random(3), {})
    assert first.captions == again.captions and first.image.tobytes() == again.image.tobytes()
    assert changed == 2 and not set(first.captions) & set(unit.captions)  # phrasings it was not given
    assert first.image.size == (16, 16) and first.unit_id == unit.unit_id
    flipped = [rephrased_unit(unit, random.Random(seed), {})[0] for seed in range(12)]
    # a flipped image's captions say "right" where the unflipped ones say "left" (never both sides at once)
    sides = {("left" in " ".join(u.captions), "right" in " ".join(u.captions)) for u in flipped}
    assert (True, True) not in sides and len(sides) == 2
    # a fact caption is paraphrased as the same fact, never as a description (which would state another thing)
    facts = Unit("u/2.png", unit.image, ["picture vokelu owned by mira made in oslo",
                                          "picture vokelu shows drabimor marked kappa", *unit.captions], attrs)
    reworded, changed = rephrased_unit(facts, random.Random(3), {})
    assert changed == 4 and reworded.captions[:2] == ["picture vokelu made in oslo owned by mira",
                                                      "drabimor marked kappa in picture vokelu"]
    table = {"a small red circle on the left": ["one small circle in red on the left"]}
    from_file, changed = rephrased_unit(unit, random.Random(0), table)
    assert changed == 1 and from_file.captions[1] in (unit.captions[1], swap_sides(unit.captions[1]))


def parent(**changes):
    meta = {"id": "20261206-000000-ab12", "state": "finished", "name": None,
            "spec": {"kind": "run", "method": "neggrad", "model": "clip-tiny", "data": "shapes-tiny", "seed": 5,
                     "task": "retrieval", "deletion": {"strategy": "random", "n": 8, "seed": 5}, "device": "cpu"},
            "summary": {"metrics": {"df": {"r_mean": 1.0}}, "deletion": {"units": 8}}}
    meta.update(changes)
    return meta


def test_attack_spec_links_the_parent_and_refuses_bad_input(tmp_path):
    spec = attack_spec("relearn", parent(), {})
    assert spec["parent"] == "20261206-000000-ab12" and spec["method"] == "attack:relearn"
    assert spec["attack"] == {"kind": "relearn", "params": {"seed": 5, "steps": 10, "on": "df-sample", "units": 2,
                                                            "lr": None, "batch_size": 8}}
    assert spec["deletion"] == parent()["spec"]["deletion"] and spec["kind"] == "attack"
    assert attack_spec("quantize", parent(), {"bits": 4, "seed": 9})["attack"]["params"] == {"seed": 9, "bits": 4}
    cases = [
        (("quantize", parent(), {"bits": 3}), "--bits 3 is not offered; choose 8 or 4"),
        (("relearn", parent(), {"on": "all"}), "--on 'all' is not known; choose df-sample or neighbours"),
        (("relearn", parent(), {"steps": 0}), "--steps must be a whole number from 1"),
        (("quantize", parent(), {"seed": 10**20}), "--seed must be a whole number from 0 to 4294967295"),  # as run's
        (("relearn", parent(state="running"), {}), "is running; an attack needs a finished session"),
        (("relearn", parent(summary=None), {}), "has no result document"),
        (("quantize", parent(spec={**parent()["spec"], "data": "x", "task": "generation"}), {}),
         "attack quantize is built for retrieval, classification, multiple_choice runs"),
        (("relearn", pulse_parent(), {"on": "neighbours"}), "relearn --on neighbours (an embedding search over units) "
         "is not offered there; use --on df-sample"),
        (("quantize", parent(spec={**parent()["spec"], "kind": "attack", "parent": "x"}), {}), "is itself an attack"),
        (("rephrase", parent(), {"paraphrases": tmp_path / "none.tsv"}), "cannot read it"),
        (("melt", parent(), {}), "unknown attack 'melt'"),
        (("relearn", parent(), {"units": 9}), "deleted 8 units, the most --on df-sample can draw"),
        # more neighbours than Dr holds: refused as df-sample is (it used to be clamped, with a warning, mid-run)
        (("relearn", parent(summary={"metrics": {"df": {"r_mean": 1.0}}, "deletion": {"units": 8, "retain_units": 12}}), {"on": "neighbours", "units": 13}),
         "kept 12 units, the most --on neighbours can draw; give --units 12 or fewer"),
    ]
    assert attack_spec("relearn", parent(summary={"metrics": {"df": {"r_mean": 1.0}}, "deletion": {"units": 8, "retain_units": 12}}),
                       {"on": "neighbours", "units": 12})["attack"]["params"]["units"] == 12
    for args, message in cases:
        with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
            attack_spec(*args)


def pulse_parent():
    return parent(spec={"kind": "pulse", "method": "ga", "model": "llava-tiny", "data": "people-tiny", "seed": 5,
                        "knowledge": "pretrained", "forget": 8, "requests": 2},
                  summary={"metrics": {"forget": {"image": 0.25, "text": 0.5}},
                           "forget_people": [f"person-{k:04d}" for k in range(8)]})


def test_a_pulse_session_is_attacked_on_a_quarter_of_its_forget_people_by_default():
    spec = attack_spec("relearn", pulse_parent(), {})
    assert spec["data"] == "people-tiny" and spec["parent"] == "20261206-000000-ab12"
    assert spec["attack"]["params"]["units"] == 2  # 8 forget people / 4


def test_a_classification_unit_keeps_its_texts_and_labels_and_transforms_both_images():
    from engine.data.labelled import LabelledUnit

    pair = (Image.new("RGB", (8, 8), (0, 0, 255)), Image.new("RGB", (8, 8), (0, 255, 0)))
    unit = LabelledUnit("p/1", pair, ["the shape is on the left"], [1])
    out, changed = rephrased_unit(unit, random.Random(1), {})
    assert changed == 0 and out.labels == [1] and len(out.images) == 2
    assert out.texts in (unit.texts, [swap_sides(unit.texts[0])])  # the wording kept, its side swapped on a flip


def test_a_flipped_nlvr2_pair_is_mirrored_whole_so_its_left_image_statement_stays_true():
    """Each image was flipped in place and "the left image" became "the right image" with the label kept: a
    true statement turned false (26 of the first 40 shapes-nlvr2-tiny units). The mirrored pair swaps its images."""
    from engine.data.labelled import LabelledUnit

    blue, green = Image.new("RGB", (8, 8), (0, 0, 255)), Image.new("RGB", (8, 8), (0, 255, 0))
    unit = LabelledUnit("p/1", (blue, green), ["the left image shows a blue shape"], [1])
    outcomes = [rephrased_unit(unit, random.Random(seed), {})[0] for seed in range(12)]
    flipped = [out for out in outcomes if out.texts == ["the right image shows a blue shape"]]
    kept = [out for out in outcomes if out.texts == unit.texts]
    assert flipped and kept and len(flipped) + len(kept) == 12 and all(out.labels == [1] for out in outcomes)
    blue_side = [max(range(2), key=lambda i: out.images[i].convert("RGB").getpixel((4, 4))[2]) for out in flipped]
    assert blue_side == [1] * len(flipped)  # the blue image is now the right one, as the statement says
    assert all(max(range(2), key=lambda i: out.images[i].convert("RGB").getpixel((4, 4))[2]) == 0 for out in kept)


def test_relearn_cannot_draw_more_df_units_than_were_deleted():
    """`attack relearn --units N` on a session that deleted fewer units is refused, not trained on all of Df while
    the spec records N."""
    from engine.attacks import attack_spec
    from engine.errors import SpecError

    parent = {"id": "20261207-000000-abcd", "state": "finished",
              "spec": {"kind": "run", "method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "task": "retrieval",
                       "deletion": {"strategy": "random", "n": 8, "seed": 42}, "seed": 42, "device": "cpu"},
              "summary": {"metrics": {"df": {"r_mean": 1.0}}, "deletion": {"units": 8}}}
    assert attack_spec("relearn", parent, {"units": 8})["attack"]["params"]["units"] == 8
    with pytest.raises(SpecError, match="--units 100000: session 20261207-000000-abcd deleted 8 units"):
        attack_spec("relearn", parent, {"units": 100000})


def test_an_attack_on_a_session_whose_checkpoint_was_cut_is_refused_before_it_starts(tmp_path):
    """The unlearned weights are read from their headers first: a cut model.safetensors is one line naming it (it
    failed inside the attack's session with safetensors' own error)."""
    import json as json_module

    from engine.attacks import attack_spec
    from engine.errors import SpecError

    checkpoint = tmp_path / "runs" / "20261207-000000-abcd"
    checkpoint.mkdir(parents=True)
    header = json_module.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    (checkpoint / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 10)
    parent = {"id": "20261207-000000-abcd", "state": "finished",
              "spec": {"kind": "run", "method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "task": "retrieval",
                       "deletion": {"strategy": "random", "n": 8, "seed": 42}, "seed": 42, "device": "cpu"},
              "summary": {"metrics": {"df": {"r_mean": 1.0}}, "deletion": {"units": 8}, "checkpoint": str(checkpoint)}}
    with pytest.raises(SpecError, match="checkpoint .* is damaged: model.safetensors is cut short"):
        attack_spec("quantize", parent, {})
    (checkpoint / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    assert attack_spec("quantize", parent, {})["attack"]["kind"] == "quantize"


def test_a_relearn_that_lowered_df_says_it_damaged_the_model():
    """At its default rate (the original's) relearn on clip-tiny took Df r_mean 65.6 -> 46.5 and test 50.7 -> 33.0,
    and the line read only '-76% of the forgotten gap', as if the method had hidden nothing and more."""
    from engine.attacks.run import damage_note

    document = {"attack": {"kind": "relearn"}, "recovery": {"points": -19.2}, "record": {"lr": 5e-4},
                "unlearned_metrics": {"test": {"r_mean": 50.7}}, "metrics": {"test": {"r_mean": 33.0}}}
    assert damage_note(document) == ("; Df fell: at lr 0.0005 the attack damaged the model rather than recovering it "
                                     "(test r_mean 50.7 -> 33.0); a lower --lr asks the question better")
    assert damage_note({**document, "recovery": {"points": 6.0}}) == ""
    assert damage_note({**document, "recovery": {"points": -0.4}}) == ""   # a query or two: noise, not damage
    assert damage_note({**document, "attack": {"kind": "rephrase"}}) == ""   # harder inputs, not a damaged model
    # test held and Dr fell: the damage is named by Dr; both held: no word of damage (it read "damaged the model
    # rather than recovering it (test r_mean 14.4 -> 14.4)")
    dr_fell = {**document, "unlearned_metrics": {"test": {"r_mean": 14.4}, "dr": {"r_mean": 29.0}},
               "metrics": {"test": {"r_mean": 14.4}, "dr": {"r_mean": 18.1}}}
    assert "damaged the model rather than recovering it (Dr r_mean 29.0 -> 18.1)" in damage_note(dr_fell)
    held = {**dr_fell, "metrics": {"test": {"r_mean": 14.4}, "dr": {"r_mean": 28.9}}}
    assert damage_note(held) == ("; Df fell further: at lr 0.0005 relearning these units did not bring them back "
                                 "(test r_mean, Dr r_mean held)")
    # people data has no test or Dr: its retain questions are what a damaged model loses (it said "test and Dr held")
    people = {**document, "unlearned_metrics": {"retain": {"image": 0.9}}, "metrics": {"retain": {"image": 0.5}}}
    assert "(retain.image 90.0 -> 50.0)" in damage_note(people)
    assert damage_note({**people, "unlearned_metrics": {}, "metrics": {}}).endswith("did not bring them back")


def test_an_attack_on_a_request_sequence_names_the_model_it_took():
    """An attack on a 20-request run attacked its final model and said nothing of which (the review checked it by
    hand: 33.3, Df after request 20/20)."""
    from engine.attacks.run import last_request, verdict

    parent = {"spec": {"requests": 20}, "summary": {"requests": [{"request": i} for i in range(1, 21)]}}
    assert last_request(parent) == {"request": 20, "of": 20}
    stopped = {"spec": {"requests": 20}, "summary": {"requests": [{"request": i} for i in range(1, 8)]}}
    assert last_request(stopped) == {"request": 7, "of": 20}   # a guardrail ended it at request 7
    assert last_request({"spec": {}, "summary": {"requests": [{"request": 1}]}}) is None
    document = {"headline": "df.r_mean", "attack": {"kind": "quantize"}, "parent_request": {"request": 20, "of": 20},
                "original": {"df": 89.3}, "unlearned": {"df": 33.3, "df_dr_auc": None},
                "attacked": {"df": 22.8, "df_dr_auc": None}, "recovery": {"fraction": -0.2, "points": -10.5}}
    assert verdict(document).startswith("quantize attack on the model after request 20 of 20: Df r_mean 33.3 -> 22.8")


def test_rephrasing_is_read_against_the_original_on_the_same_rephrased_inputs():
    """A review's numbers (clip-tiny, shapes-tiny, 16 units): rephrased inputs are harder for any model, and the
    recovery against the unlearned model's exact score read that as forgetting: a model never unlearned 'lost' 18.3
    points, MultiDelete's -43% was +30% of its forgetting not reaching the rephrased inputs."""
    from engine.attacks.recovery import rephrase_recovery

    never_unlearned = rephrase_recovery("df.r_mean", 90.8, 90.8, 72.5, 72.5)
    assert never_unlearned["fraction"] is None and never_unlearned["points"] == pytest.approx(0.0)
    multidelete = rephrase_recovery("df.r_mean", 90.8, 65.6, 72.5, 54.8)
    assert multidelete["fraction"] == pytest.approx(7.5 / 25.2) and multidelete["points"] == pytest.approx(7.5)
    assert multidelete["against"] == "the original on the rephrased inputs"


def test_a_run_a_stop_if_rule_ended_is_not_attacked():
    """Stopped at request 3 of 20, its model forgot 3 units while the original's Df (the attack's reference) was
    scored on all 20: an attack compared other units, and reported a gap across them."""
    from engine.attacks import check_parent
    from engine.errors import SpecError

    meta = {"id": "20261207-000000-ab12", "state": "finished",
            "spec": {"method": "ga", "model": "clip-tiny", "data": "shapes-tiny", "requests": 20},
            "summary": {"metrics": {"df": {"r_mean": 27.8}}, "stopped_by": {"rule": "val.r_mean<35", "request": 3}}}
    with pytest.raises(SpecError, match=r"stopped by --stop-if val.r_mean<35 after request 3 of 20: its model forgot "
                                        "part of the deletion set"):
        check_parent(meta, "quantize")


def test_attack_verdicts_show_what_their_recovery_is_made_of():
    """A rephrase line read "Df r_mean 26.8 -> 28.2 on rephrased inputs, 36.8 points back" (most of those points
    were the original's own fall on the harder inputs), and a quantisation that lowered Df "-3.1 points back, -6% of
    the forgotten gap" (a review)."""
    from engine.attacks.recovery import recovery, rephrase_recovery
    from engine.attacks.run import verdict

    def document(kind, recovered, attacked, **extra):
        return {"attack": {"kind": kind}, "headline": "df.r_mean", "original": {"df": 77.3, "df_dr_auc": None},
                "unlearned": {"df": 26.8, "df_dr_auc": None}, "attacked": {"df": attacked, "df_dr_auc": None},
                "recovery": recovered, "record": {}, "retrain": None, "unlearned_metrics": {"test": {"r_mean": 50.0}},
                "metrics": {"test": {"r_mean": 50.0}}, **extra}

    line = verdict(document("rephrase", rephrase_recovery("df.r_mean", 77.3, 26.8, 41.9, 28.2), 28.2,
                            original_attacked={"df": 41.9}))
    assert line == ("rephrase attack: Df r_mean exact: original 77.3, unlearned 26.8; rephrased: original 41.9, "
                    "unlearned 28.2: of 50.5 points forgotten, 13.7 hold on the rephrased inputs and 36.8 (73%) do not")
    # the arithmetic is the shown scores': 76.2 - 26.3 read "50.0 hold" from the raw 76.24999980 and 26.25000005
    raw = document("rephrase", rephrase_recovery("df.r_mean", 76.2499998, 26.250000049, 50.0, 40.0), 40.0,
                   original_attacked={"df": 50.0})
    raw["original"]["df"], raw["unlearned"]["df"] = 76.2499998, 26.250000049
    assert verdict(raw).endswith("original 76.2, unlearned 26.3; rephrased: original 50.0, unlearned 40.0: of 49.9 "
                                 "points forgotten, 10.0 hold on the rephrased inputs and 39.9 (80%) do not")
    beyond = verdict(document("rephrase", rephrase_recovery("df.r_mean", 77.3, 26.8, 30.0, 32.0), 32.0,
                              original_attacked={"df": 30.0}))   # unlearned above the original on rephrased inputs
    assert beyond.endswith("none of the 50.5 points forgotten hold on the rephrased inputs")
    # a change that rounds to nothing is not "0.0 points lower"; an old rephrase document still names the original
    assert "0.0 points back" in verdict(document("quantize", recovery("df.r_mean", 77.3, 26.8, 26.78), 26.78))
    assert "(original 77.3)" in verdict(document("rephrase", recovery("df.r_mean", 77.3, 26.8, 30.0), 30.0))
    unmatched = document("rephrase", recovery("df.r_mean", 77.3, 26.8, 25.0), 25.0)
    unmatched["record"] = {"paraphrases": "file", "paraphrased_texts": 0, "texts": 200}
    assert verdict(unmatched).endswith("; the paraphrase file matched none of Df's 200 texts: no text was rephrased")
    line = verdict(document("quantize", recovery("df.r_mean", 77.3, 26.8, 23.7), 23.7))
    assert line == ("quantize attack: Df r_mean 26.8 -> 23.7, 3.1 points lower: nothing of the forgotten gap back "
                    "(original 77.3); Df fell further: the attack brought nothing back (test r_mean held)")


def test_a_resumed_sessions_gone_checkpoint_is_derived_from_its_whole_run(tmp_path, monkeypatch):
    """The re-derivation ran a resumed session's spec, resume point and all; the point was gone with its finish, and
    the attack failed with "resume it again", which was refused (a review)."""
    import engine.protocols.requests as requests
    from engine.attacks.run import unlearned_checkpoint

    ran = []
    monkeypatch.setattr(requests, "run_requests", lambda spec, emit, should_stop, session_id=None:
                        ran.append((spec, session_id)) or {"checkpoint": str(tmp_path / "runs" / session_id)})
    meta = {"id": "20261207-205252-7b3e", "summary": {"checkpoint": str(tmp_path / "gone")},
            "spec": {"method": "ga", "requests": 3, "resume_every": 0,
                     "resumes": {"session": "20261207-205207-9439", "request": 2}}}
    assert unlearned_checkpoint(meta, lambda *a, **k: None, lambda: False) == str(tmp_path / "runs" / meta["id"])
    (spec, session), = ran
    assert "resumes" not in spec and spec["resume_every"] == "off" and session == meta["id"]
    assert spec["method"] == "ga" and spec["requests"] == 3


def test_a_paraphrase_file_is_recorded_by_its_absolute_path(tmp_path, monkeypatch):
    """The record kept `nomatch.txt` as given, which names nothing once read from another directory (a review)."""
    from pathlib import Path

    (tmp_path / "p.tsv").write_text("a red circle\ta circle in red\n")
    monkeypatch.chdir(tmp_path)
    spec = attack_spec("rephrase", parent(), {"paraphrases": Path("p.tsv")})
    assert spec["attack"]["params"]["paraphrases"] == str(tmp_path / "p.tsv")
