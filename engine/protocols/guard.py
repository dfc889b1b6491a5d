"""The guardrails while a request unlearns (rules and choices: engine/spec/guards.py).

`check` reads every judged evaluation: a `--stop-if` rule that holds stops the unlearning (the run then ends
with the weights it has, or the best kept ones, and runs no further request); with `--keep best`,
`consider` holds a copy of the trainable weights of the best qualifying evaluation (on the CPU) and
`restore` puts it back before the request's update is merged. Each firing is a warning `log` event, so the
monitor and replay show it. The evaluations it is given are validation ones (`val.*` names: the protocol
evaluates the world's validation split for it, never the reported test split), and each is kept in `judged`
for the result document.
"""
from __future__ import annotations

from typing import Callable

import torch

from engine.spec import TASKS
from engine.spec.guards import MULTIPLE_CHOICE_METRICS, parse_rules, validation_name


class Guard:
    def __init__(self, params: dict, task: str, original_metrics: dict[str, float], emit: Callable[..., None]):
        self.rules = parse_rules(params.get("stop_if"), task)
        self.keep_best = params.get("keep") == "best"
        self.tolerance = params.get("keep_tolerance") or 0.0
        self.target = params.get("target_auc")
        test_metric = TASKS[task].test_metric
        self.headline = validation_name(test_metric) if test_metric else None
        self.floor = original_metrics[self.headline] - self.tolerance if self.headline in original_metrics else None
        self.emit = emit
        self.fired: dict | None = None  # the rule that stopped the run: {rule, metric value, step, request}
        # every evaluation judged (request, step, and the metrics a choice can read): the document's record
        self.judged: list[dict] = []
        self.unkept = 0  # the requests whose evaluations none qualified: the last weights stayed
        self.begin(None, [])

    @property
    def active(self) -> bool:
        """Whether anything is judged at all (a rule, or --keep best): only then are validation evaluations run."""
        return bool(self.rules) or self.keep_best

    def judging(self, step: int, metrics: dict[str, float], final: bool = False) -> dict[str, float]:
        """Record an evaluation as judged (the metrics a rule or the choice may read) and return it. `final`: the
        request's weights as it ends (the kept step's, merged, noised), at `step`, the step they were kept from (an
        entry at the last step with other numbers than that step's read as a second evaluation of it)."""
        readable = {name: value for name, value in metrics.items()
                    if name in (self.headline, "df_dr_auc") or name in MULTIPLE_CHOICE_METRICS
                    or any(rule.metric == name for rule in self.rules)}
        self.judged.append({"request": self.request, "step": step, "metrics": readable, **({"final": True} if final else {})})
        return metrics

    def begin(self, request: int | None, parameters: list[torch.nn.Parameter]) -> None:
        """A new request: forget the previous request's best (its update is merged)."""
        self.request, self.parameters = request, parameters
        self.best: tuple[float, int, list[torch.Tensor]] | None = None  # (distance, step, weights)

    def distance(self, metrics: dict[str, float]) -> float | None:
        """How far an evaluation is from the best possible (smaller is better); None when it does not
        qualify (the validation headline below the floor, or no AUC)."""
        auc = metrics.get("df_dr_auc")
        if auc is None or (self.floor is not None and metrics.get(self.headline, float("-inf")) < self.floor):
            return None
        return abs(auc - self.target) if self.target is not None else -auc

    def consider(self, step: int, metrics: dict[str, float]) -> None:
        """With --keep best: hold the weights of this evaluation when it is the best so far."""
        if self.keep_best:
            distance = self.distance(metrics)
            if distance is not None and (self.best is None or distance < self.best[0]):
                self.best = (distance, step, [p.detach().to("cpu", copy=True) for p in self.parameters])

    def check(self, step: int, metrics: dict[str, float]) -> bool:
        """True when a --stop-if rule holds for this evaluation (and says so in the log)."""
        for rule in self.rules:
            if rule.holds(metrics):
                self.fired = {"rule": str(rule), "value": metrics[rule.metric], "step": step, "request": self.request}
                self.emit("log", level="warning", message=f"stop-if {rule} held at step {step} (request "
                          f"{self.request}): {rule.metric} = {metrics[rule.metric]:.4g}; unlearning stops here")
                return True
        return False

    def restore(self, last_step: int) -> int | None:
        """With --keep best: put the best evaluation's weights back (when it is not the last); its step."""
        if not self.keep_best:
            return None
        if self.best is None:
            # once a sequence has drifted past the tolerance no later request qualifies either: a 100-request
            # run gave 99 warnings; the first is one, the rest are info lines that count them
            self.unkept += 1
            level, again = ("warning", "") if self.unkept == 1 else ("info", f" ({self.unkept} requests so far)")
            self.emit("log", level=level, message=f"keep best: no validation evaluation of request {self.request} kept "
                      f"{self.headline} within {self.tolerance:g} of the original's; the last weights stay{again}")
            return None
        _, step, weights = self.best
        if step != last_step:
            with torch.no_grad():
                for parameter, saved in zip(self.parameters, weights):
                    parameter.copy_(saved.to(parameter.device))
        self.emit("log", level="info", message=f"keep best: request {self.request} keeps the weights evaluated "
                  f"at step {step}" + (" (the last)" if step == last_step else ""))
        return step
