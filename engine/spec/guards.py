"""Guardrails of a run, checked before anything runs: `--stop-if` collapse rules and `--keep best`.

Every choice they make is judged on validation data, never on the reported test split (ANCHORS.md section 2,
"Selection"; the released runner's `(test + auc) / 2` epoch choice is the leak this avoids): on image-text
and graph tasks the evaluation they read runs the world's validation split where the report runs test (its
headline `val.r_mean` / `val.accuracy`, its MIA's non-members `mia.val_member_rate`), with Df and Dr as in
the report (the run's own deletion set); on people data the rules read the people's own questions (forget,
retain, other), and MMBench, a reported set with no validation split, is not a rule's to read.

A rule is `METRIC<VALUE` or `METRIC>VALUE` (several joined by commas), on those names (`val.r_mean`,
`df_dr_auc`, `forget.image`), in the units `--json` shows them (AUC a fraction, recall and accuracy in
percent, four-option accuracy a fraction). A rule that holds at an evaluation during unlearning stops the
unlearning there (engine/protocols/guard.py).

`--keep best` keeps, within each request, the evaluated weights with the highest Df/Dr AUC (or the closest
to `--target-auc`, e.g. Retrain's from a study) among those whose validation headline stays within
`--keep-tolerance` points of the original's; the last weights when none qualifies.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from engine.errors import SpecError
from engine.spec.catalog import TASKS

KEEP_CHOICES = ("last", "best")
# what a rule may name on a task without headline columns (four-option QA: fractions): the people's own questions
MULTIPLE_CHOICE_METRICS = ("forget.image", "forget.text", "retain.image", "retain.text", "other.image",
                           "other.text")
REPORTED_ONLY = ("mmbench", "mmbench_retention")  # reported sets with no validation split: no rule reads them
SELECTED_ON = "validation"


def validation_name(metric: str) -> str:
    """A reported metric's name as measured on the validation split: `test.r_mean` -> `val.r_mean`,
    `mia.test_member_rate` -> `mia.val_member_rate`; other names (Df, Dr, AUC) are unchanged."""
    if metric.startswith("test."):
        return "val." + metric.partition(".")[2]
    return metric.replace(".test_", ".val_")


def as_validation(metrics: dict[str, float]) -> dict[str, float]:
    """An evaluation run with the validation split standing in for test, under its validation names."""
    return {validation_name(name): value for name, value in metrics.items()}
RULE = re.compile(r"\s*([A-Za-z_][\w.]*)\s*([<>])\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*")


@dataclass(frozen=True)
class Rule:
    metric: str
    op: str  # "<" or ">"
    threshold: float

    def holds(self, metrics: dict[str, float]) -> bool:
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return False
        return value < self.threshold if self.op == "<" else value > self.threshold

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


def rule_metrics(task: str) -> tuple[str, ...]:
    """The metric names a rule may name on a task: its headline columns measured on validation, or the QA groups."""
    columns = TASKS[task].columns
    return tuple(validation_name(c.metric) for c in columns if not c.optional) if columns else MULTIPLE_CHOICE_METRICS


def rule_scale(metric: str) -> float:
    """The largest value `metric` takes in the units `--json` shows it in: 1 for an AUC, a rate or a four-option
    accuracy (fractions), 100 for recall and accuracy (percent)."""
    last = metric.rsplit(".", 1)[-1]
    return 1.0 if last.endswith("auc") or last.endswith("_rate") or metric in MULTIPLE_CHOICE_METRICS else 100.0


def parse_rules(text: str | None, task: str) -> tuple[Rule, ...]:
    if text is not None and not str(text).strip():
        raise SpecError("--stop-if is empty; give METRIC<VALUE or METRIC>VALUE, or leave the option out",
                        field="stop_if")
    if not text:
        return ()
    known = rule_metrics(task)
    rules = []
    for part in text.split(","):
        match = RULE.fullmatch(part)
        if not match:
            example = known[1] if len(known) > 1 else known[0]
            # in the metric's own units: a four-option accuracy is a fraction (it said `forget.text<10`, then refused it)
            raise SpecError(f"--stop-if takes METRIC<VALUE or METRIC>VALUE, comma-separated (e.g. "
                            f"{example}<{0.1 * rule_scale(example):g}), got {part.strip()!r}", field="stop_if")
        metric, op, threshold = match.groups()
        if validation_name(metric) != metric and validation_name(metric) in known:
            raise SpecError(f"--stop-if rules are judged on the validation split, never on test: name "
                            f"{validation_name(metric)} instead of {metric}", field="stop_if")
        if metric in REPORTED_ONLY:
            raise SpecError(f"--stop-if: {metric} is a reported set with no validation split, so no rule may read "
                            f"it; rules name one of {', '.join(known)}", field="stop_if")
        if metric not in known:
            raise SpecError(f"--stop-if: {task.replace('_', '-')} reports no metric {metric!r}; rules name one of "
                            f"{', '.join(known)}", field="stop_if")
        scale, value = rule_scale(metric), float(threshold)
        if not 0 <= value <= scale:  # `df_dr_auc>95` (a percent) was taken, and never fired: an AUC is a fraction
            hint = f"; did you mean {metric}{op}{value / 100:g}?" if scale == 1 and 0 <= value <= 100 else ""
            raise SpecError(f"--stop-if {metric}{op}{threshold}: {metric} is "
                            f"{'a fraction, 0..1' if scale == 1 else 'in percent, 0..100'}{hint}", field="stop_if")
        rules.append(Rule(metric, op, value))
    return tuple(rules)


def check_guards(params: dict, task: str) -> None:
    """Refuse rules that cannot be read, and `--keep best` where the task has no Df/Dr AUC to rank by."""
    parse_rules(params.get("stop_if"), task)
    if params.get("keep") == "best" and "df_dr_auc" not in rule_metrics(task):
        raise SpecError(f"--keep best ranks evaluations by Df/Dr AUC, which {task.replace('_', '-')} does not "
                        "report; use --keep last (or --stop-if rules)", field="keep")
