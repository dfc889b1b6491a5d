"""Plots by question (sessions/panels.py): which series go to which panel, the cap of 4, one x range, the
reference lines, integer ticks and the palette (distinct on 256-colour terminals, never the background)."""
from __future__ import annotations

from rich.color import Color, ColorSystem

from sessions.panels import (MAX_SERIES, PALETTE, compare_panels, event_panels, integer_ticks, metric_group,
                             run_panels)
from sessions.series import eval_series, loss_series, training_steps, unlearning_steps


def test_metrics_go_to_the_panel_of_their_question():
    assert [metric_group(n) for n in ("df_dr_auc", "df.r_mean", "forget.image", "test.r_mean", "holdout.accuracy",
                                      "dr.r_mean", "retain.text", "mia.df_member_rate", "mia.auc",
                                      "mmbench_retention", "other.image")] == \
        ["forget", "forget", "forget", "keep", "keep", "keep", "keep", "privacy", "privacy", "general", "general"]
    assert metric_group("forget_quality") is None  # a p-value: left to the tables
    # PULSE's attack AUCs were drawn in the keep panel (in place of the forget people's kept facts)
    assert metric_group("option_gap.loss_auc") == "privacy" and metric_group("holdout_identity.image") == "keep"


def test_the_keep_panel_draws_the_holdout_sets_before_dr():
    from sessions.panels import run_panels

    line = ([0.0, 5.0], [1.0, 2.0])
    names = ("test.r_mean", "dr.r_mean", "holdout_identity.r_mean", "holdout_association.r_mean", "dr.txt_r1")
    keep = next(panel for panel in run_panels({}, {name: line for name in names}) if panel.title == "keep")
    assert [drawn.label for drawn in keep.lines] == ["test.r_mean", "holdout_identity.r_mean",
                                                     "holdout_association.r_mean", "dr.r_mean"]


def test_panels_cap_series_headline_first_and_share_one_x_range():
    line = ([0.0, 5.0], [1.0, 2.0])
    metrics = {name: line for name in ("forget.text", "df.txt_r1", "df_dr_auc", "df.r_mean", "forget.image",
                                       "auc_gap_to_retrain", "test.r_mean", "mmbench_retention")}
    losses = {"kl": ([0.0, 1.0, 2.0], [1.0, 1.0, 1.0]), "total": ([0.0, 1.0, 2.0], [1.0, 1.0, 1.0])}
    panels = run_panels(losses, metrics, steps=12, before={"df_dr_auc": 0.9, "mmbench_retention": 100.0},
                        retrain={"df_dr_auc": 0.5})
    assert [p.key for p in panels] == ["forget", "keep", "general", "loss"]
    forget = panels[0]
    assert [l.label for l in forget.lines] == ["df_dr_auc", "df.r_mean", "forget.image", "forget.text"]
    assert forget.left_out == ["auc_gap_to_retrain", "df.txt_r1"]
    assert all(len(p.lines) <= MAX_SERIES for p in panels)
    assert {p.x_range for p in panels} == {(0.0, 12.0)}   # one x range: the run's 12 unlearning steps
    assert [(r.label, r.y) for r in forget.references] == [("original df_dr_auc", 90.0), ("Retrain df_dr_auc", 50.0)]
    assert [(r.label, r.y) for r in panels[2].references] == [("original mmbench_retention", 100.0), ("100%", 100.0)]
    assert [l.label for l in panels[3].lines] == ["total", "kl"] and not panels[3].references
    assert all(p.integer_x for p in panels)
    assert [l.colour for l in forget.lines] == list(PALETTE[:4])


def test_integer_ticks():
    assert integer_ticks(0, 12) == [0, 5, 10]
    assert integer_ticks(0, 12, most=7) == [0, 2, 4, 6, 8, 10, 12]
    assert integer_ticks(0, 3) == [0, 1, 2, 3]
    assert integer_ticks(0, 300, most=5) == [0, 100, 200, 300]
    assert integer_ticks(0, 0.5) == [0]
    assert integer_ticks(0, 60, most=2) == [0, 60]  # a narrow panel: the two ends
    assert all(isinstance(t, int) for t in integer_ticks(0, 7))


def test_palette_is_distinct_on_256_colours_and_never_the_background():
    assert len(PALETTE) >= 8
    folded = [Color.from_rgb(*rgb).downgrade(ColorSystem.EIGHT_BIT).number for rgb in PALETTE]
    assert len(set(folded)) == len(PALETTE)
    # Textual's dark and light themes' backgrounds and surfaces, and pure black and white
    backgrounds = [(18, 18, 18), (30, 30, 30), (0, 0, 0), (255, 255, 255), (224, 224, 224), (239, 239, 239)]
    for rgb in PALETTE:
        for background in backgrounds:
            assert sum((a - b) ** 2 for a, b in zip(rgb, background)) ** 0.5 > 60, (rgb, background)
    assert not set(folded) & {Color.from_rgb(*b).downgrade(ColorSystem.EIGHT_BIT).number for b in backgrounds}


def phased_events() -> list[dict]:
    """A run that trained its original (300 steps) before a 12-step unlearning."""
    events = [{"kind": "phase", "name": "original"}]
    events += [{"kind": "step", "phase": "original", "losses": {"total": 2.0}} for _ in range(300)]
    events += [{"kind": "eval", "split": "before", "metrics": {"df_dr_auc": 0.9}},
               {"kind": "phase", "name": "unlearn"}]
    for i in range(12):
        events.append({"kind": "step", "phase": "unlearn", "losses": {"total": 1.0, "kl": 0.1}})
        if i == 5:
            events.append({"kind": "eval", "split": "step", "metrics": {"df_dr_auc": 0.7}})
    events.append({"kind": "eval", "split": "after", "metrics": {"df_dr_auc": 0.5, "test": {"r_mean": 40.0}}})
    return events


def test_the_originals_training_is_kept_apart_from_the_unlearning_curves():
    events = phased_events()
    assert unlearning_steps(events) == 12 and training_steps(events) == 300
    assert loss_series(events)["total"][0] == list(range(12))
    assert loss_series(events, training=True)["total"][0] == list(range(300))
    assert eval_series(events, split="curve")["df_dr_auc"] == ([6, 12], [70.0, 50.0])
    panels = event_panels(events, retrain={"df_dr_auc": 0.5})
    assert {p.x_range for p in panels} == {(0.0, 12.0)}
    assert [(r.label, r.y) for r in panels[0].references] == [("original df_dr_auc", 90.0), ("Retrain df_dr_auc", 50.0)]


def test_compare_panels_give_each_run_its_colour_and_cap_runs():
    runs = [(f"run{i}", {"total": ([0, 1], [1.0, 0.5])}, {"df_dr_auc": ([1], [60.0]), "test.r_mean": ([1], [40.0])})
            for i in range(6)]
    panels = compare_panels(runs, chosen={"keep": "test.r_mean"})
    assert [p.key for p in panels] == ["forget", "keep", "loss"]
    for panel in panels:
        assert [l.label for l in panel.lines] == ["run0", "run1", "run2", "run3"]
        assert [l.colour for l in panel.lines] == list(PALETTE[:4])
        assert panel.left_out == ["run4", "run5"]
    assert panels[0].title == "forget: df_dr_auc" and panels[2].title == "loss terms: total"


def test_an_attacks_panels_name_its_before_the_unlearned_model():
    """replay --headless of an attack drew `original df_dr_auc 55.6`, the unlearned model's value (a review)."""
    from sessions.panels import event_panels

    def events(phase):
        return [{"kind": "eval", "split": "before", "phase": phase, "metrics": {"df_dr_auc": 0.556}},
                {"kind": "step", "step": 1, "phase": phase, "losses": {"total": 1.0}},
                {"kind": "eval", "split": "curve", "step": 1, "phase": phase, "metrics": {"df_dr_auc": 0.6}},
                {"kind": "eval", "split": "after", "phase": phase, "metrics": {"df_dr_auc": 0.62}}]

    def labels(panels):
        return [ref.label for panel in panels for ref in panel.references]

    assert "unlearned df_dr_auc" in labels(event_panels(events("attack")))
    assert "original df_dr_auc" in labels(event_panels(events("unlearn")))
