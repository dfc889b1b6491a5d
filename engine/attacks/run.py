"""The attack job: load the session's unlearned model, evaluate it, attack it, evaluate again, and do the same
to a Retrain of the same deletion set when the home holds one (the honest baseline: Retrain relearns too).

Where the unlearned model comes from: every finished run saves its weights to `<cache>/runs/<session id>`
(engine/protocols/requests.py; the result document's `checkpoint`). When that directory is gone (a cleared
cache), the model is re-derived by running the session's own spec again with its seed and saving it there:
the same spec and seed give the same model (DESIGN.md s. 3, Reproducibility). Nothing the attack does is
saved: a relearned or quantised model is thrown away after its evaluation.

The numbers before the attack are the ones the session stored (its `metrics`, and the original's
`original_metrics`): the same model under the same seeded evaluation gives them again (DESIGN.md s. 3), so
they are not recomputed. Every evaluation is seeded from the attack's seed (engine/seeding.py), and the attack's own draws (the
relearning sample and batches, the rephrasing) from the same seed and their labels, so the same session and
seed give the same recovery.
"""
from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Callable

from engine.attacks import ATTACKS
from engine.attacks.people import deleted_units, with_headline
from engine.attacks.recovery import headline, recovery, rephrase_recovery
from engine.devices import resolve_device
from engine.errors import SpecError
from engine.seeding import seed_everything
from engine.tasks import task_for
from sessions.attacks import shown_points, shown_score
from sessions.metric_names import flatten, nest
from sessions.numbers import fmt, shown
from sessions.series import BASELINE_PHASE
from sessions.paths import cache_dir


def attack_function(kind: str):
    module, _, name = ATTACKS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def unlearned_checkpoint(meta: dict, emit, should_stop) -> str:
    """The session's unlearned weights: its checkpoint directory, re-derived from its spec and seed when gone."""
    summary, spec = meta["summary"], meta["spec"]
    path = summary.get("checkpoint")
    if path and Path(path).is_dir():
        return str(path)
    if spec.get("devices", 1) > 1:
        raise SpecError(f"session {meta['id']}'s checkpoint {path} is gone, and a --devices run is not re-derived "
                        "here; run its spec again", field="session")
    emit("log", level="info", message=f"session {meta['id']}'s checkpoint {path} is gone: re-deriving it by running "
         "its spec again with its seed (same spec + seed, same model)")
    from engine.protocols.requests import run_requests

    # the run as if it had never stopped (a resumed run gives its numbers exactly): a resumed session's spec names the
    # point it went on from, which its finish removed ("resume it again", which then refused), and the re-derivation of
    # a finished session writes no points of its own
    whole = {key: value for key, value in spec.items() if key != "resumes"} | {"resume_every": "off"}
    rerun = run_requests(whole, lambda kind, **fields: None, should_stop, session_id=meta["id"])
    return rerun["checkpoint"]


class Probe:
    """One model's numbers under the attack: Df headline and Df/Dr AUC before and after, and the recovery."""

    def __init__(self, task, kind: str, params: dict, device, emit, should_stop):
        self.task, self.kind, self.params, self.device = task, kind, params, device
        self.emit, self.should_stop = emit, should_stop
        self.seed = params["seed"]
        self.prepared = False

    def evaluate(self, evaluator, model) -> dict[str, float]:
        seed_everything(self.seed, "attack", "evaluate")
        return with_headline(evaluator.evaluate(model, deleted_units(self.task)))

    def load(self, source: str):
        model = self.task.load(source, self.device)
        if not self.prepared:  # every model here shares the task's processors: the data is encoded once
            self.task.prepare(model)
            self.prepared = True
        return model

    def run(self, source: str, before: dict[str, float], label: str, steps_before: int = 0,
            chosen: list[int] | None = None) -> tuple[dict, dict]:
        """(flat metrics after, the attack's record) of the model at `source`, whose metrics as its session
        stored them are `before` (the same evaluation, seeded the same: not repeated); `chosen`: the units a
        relearning trains on, when already chosen (for the unlearned model: Retrain's baseline reuses them)."""
        model = self.load(source)
        self.emit("eval", step=steps_before, phase="attack", split=f"{label}before".strip(), metrics=before)
        self.emit("phase", name="attack")
        seed_everything(self.seed, "attack", self.kind)
        params = {**self.params, "chosen": chosen} if chosen else self.params
        emit = as_baseline(self.emit) if label else self.emit   # Retrain's: not the attacked run's own steps
        evaluator, record = attack_function(self.kind)(self.task, model, params, self.seed, emit, self.should_stop)
        after = self.evaluate(evaluator, model)
        self.emit("eval", step=steps_before + record.get("steps", 0), phase="attack", split=f"{label}after".strip(),
                  metrics=after)
        return after, record

    def attacked_original(self, source: str) -> dict[str, float]:
        """The original model's metrics on what the attack evaluates on (rephrasing: the rephrased Df)."""
        model = self.load(source)
        seed_everything(self.seed, "attack", self.kind)
        evaluator, _ = attack_function(self.kind)(self.task, model, self.params, self.seed, lambda *a, **k: None,
                                                  self.should_stop)
        return self.evaluate(evaluator, model)


def numbers(metrics: dict[str, float], name: str) -> dict:
    return {"df": metrics.get(name), "df_dr_auc": metrics.get("df_dr_auc")}


def run_attack(spec: dict, parent: dict, retrain: dict | None, emit: Callable[..., None],
               should_stop: Callable[[], bool]) -> dict:
    """Run attack `spec` (engine.attacks.attack_spec) on session `parent` (its meta), and on `retrain` (the meta
    of a finished Retrain of the same deletion set, or None); returns the attack's document."""
    started = time.perf_counter()
    base, kind, params = parent["spec"], spec["attack"]["kind"], spec["attack"]["params"]
    device = resolve_device(spec.get("device") or base.get("device") or "auto")
    task = task_for(base, emit, should_stop, cache_dir(base.get("artifacts")))
    task.forget_units()
    emit("phase", name="prepare")
    probe = Probe(task, kind, params, device, emit, should_stop)
    original = with_headline(flatten(parent["summary"].get("original_metrics") or {}))
    before = with_headline(flatten(parent["summary"]["metrics"]))
    if hasattr(task, "original_mmbench"):  # people data: MMBench retention against the original's, as stored
        task.original_mmbench = original.get("mmbench")
    after, record = probe.run(unlearned_checkpoint(parent, emit, should_stop), before, "")
    name = headline(after)
    if name is None or name not in original:
        raise SpecError(f"session {parent['id']} reports no Df headline (df.r_mean, df.accuracy or forget.accuracy) "
                        "to recover",
                        field="session")
    original_rephrased = None
    if kind == "rephrase":  # what the rephrased inputs allow at most: the original model on them
        original_checkpoint = parent["summary"].get("original_checkpoint")
        if original_checkpoint and Path(original_checkpoint).exists():
            original_rephrased = probe.attacked_original(original_checkpoint)

    def recovered(unlearned: dict, attacked: dict) -> dict:
        """Rephrasing against the original on the same rephrased inputs (rephrase_recovery), when it was scored."""
        if original_rephrased is not None and name in original_rephrased:
            return rephrase_recovery(name, original[name], unlearned[name], original_rephrased[name], attacked[name])
        return recovery(name, original[name], unlearned[name], attacked[name])

    document = {
        "session": None, "kind": "attack", "attack": {"kind": kind, "params": params}, "parent": parent["id"],
        "parent_method": base.get("method"), "model": base.get("model"), "data": base.get("data"), "task": task.name,
        "seed": params["seed"], "device": str(device), "headline": name,
        "original": numbers(original, name), "unlearned": numbers(before, name), "attacked": numbers(after, name),
        "recovery": recovered(before, after), "record": record,
        **({"parent_request": request} if (request := last_request(parent)) else {}),
        **({"original_attacked": numbers(original_rephrased, name)} if original_rephrased is not None else {}),
    }
    document["retrain"] = None
    if retrain is not None:
        r_before = with_headline(flatten(retrain["summary"]["metrics"]))
        r_after, _ = probe.run(unlearned_checkpoint(retrain, emit, should_stop), r_before, "retrain ",
                               record.get("steps", 0), record.get("chosen"))
        document["retrain"] = {"session": retrain["id"], "unlearned": numbers(r_before, name),
                               "attacked": numbers(r_after, name),
                               "recovery": recovered(r_before, r_after)}
    document |= {"steps": record.get("steps", 0), "seconds": round(time.perf_counter() - started, 3),
                 "metrics": nest(after), "unlearned_metrics": nest(before)}
    document["verdict"] = verdict(document)
    return document


def last_request(parent: dict) -> dict | None:
    """Which model of a request sequence an attack takes (its final one, the checkpoint the run saved):
    ``{"request": i, "of": K}``, i < K when a guardrail ended the run early; None for a single request."""
    asked = parent["spec"].get("requests") or 1
    entries = [e for e in parent["summary"].get("requests") or [] if isinstance(e, dict)]
    if asked <= 1 or not entries:
        return None
    return {"request": entries[-1].get("request", len(entries)), "of": asked}


def verdict(document: dict) -> str:
    """`relearn: Df r_mean 20.8 -> 60.4 (original 85.4): 39.6 points back, 61% of the forgotten gap; Retrain ...`"""
    name, metric = document["headline"], document["headline"].split(".")[1]

    def part(entry: dict, first: bool = True) -> str:
        back = entry["recovery"]
        if back.get("against"):  # rephrase: the forgetting that does not reach the rephrased inputs
            # its parts, not a bare "36.8 points back" beside a Df that rose 1.4: most of those points are the
            # original's own fall on the harder inputs (a review); Retrain's part leaves the original's out
            exact = (f"Df {metric} exact: original {fmt(document['original']['df'], name)}, unlearned "
                     f"{fmt(entry['unlearned']['df'], name)}; rephrased: original "
                     f"{fmt(document['original_attacked']['df'], name)}, unlearned "
                     f"{fmt(entry['attacked']['df'], name)}") if first else \
                (f"Df {metric} {fmt(entry['unlearned']['df'], name)} exact, {fmt(entry['attacked']['df'], name)} "
                 "rephrased")
            if back["fraction"] is None:
                return f"{exact}: no gap to recover"
            # from the four scores as shown, so that the line's arithmetic is the reader's (76.2 - 26.3 read "50.0
            # hold" from the raw 76.24999 and 26.25000; the parts rounded apart read "of 8.8, 2.5 ... and 6.2")
            points = shown_points(name, entry["unlearned"]["df"], entry["attacked"]["df"], document["original"]["df"],
                                  document["original_attacked"]["df"])
            gap = shown_score(name, document["original"]["df"]) - shown_score(name, entry["unlearned"]["df"])
            held = round(gap - points, 1)
            if points <= 0:
                return f"{exact}: all {gap:.1f} points forgotten hold on the rephrased inputs ({held:.1f} there)"
            if held <= 0:  # the unlearned model scores the rephrased inputs as well as the original, or better
                return f"{exact}: none of the {gap:.1f} points forgotten hold on the rephrased inputs"
            return (f"{exact}: of {gap:.1f} points forgotten, {held:.1f} hold on the rephrased inputs and "
                    f"{points:.1f} ({points / gap:.0%}) do not")
        change = f"Df {metric} {fmt(entry['unlearned']['df'], name)} -> {fmt(entry['attacked']['df'], name)}"
        points = shown_points(name, entry["unlearned"]["df"], entry["attacked"]["df"])   # the difference read
        if round(points, 1) < 0:  # "-3.1 points back, -6% of the forgotten gap" read as a recovery of sorts
            return f"{change}, {-points:.1f} points lower: nothing of the forgotten gap back"
        fraction = "no gap to recover" if back["fraction"] is None else f"{back['fraction']:.0%} of the forgotten gap"
        return f"{change}, {points:.1f} points back, {fraction}"

    request = document.get("parent_request")
    on = f" on the model after request {request['request']} of {request['of']}" if request else ""
    line = f"{document['attack']['kind']} attack{on}: {part(document)}"
    if not document["recovery"].get("against"):  # (read against the original's rephrased scores: named in its part)
        line += f" (original {fmt(document['original']['df'], name)})"
    if document["unlearned"]["df_dr_auc"] is not None or document["attacked"]["df_dr_auc"] is not None:  # not on people
        # rephrase transforms Df alone: its AUC after reads the inputs' difficulty too, and says so
        rephrased = " (Df rephrased, Dr as it was)" if document["attack"]["kind"] == "rephrase" else ""
        line += (f"; Df/Dr AUC{rephrased} {fmt(document['unlearned']['df_dr_auc'], 'df_dr_auc')} -> "
                 f"{fmt(document['attacked']['df_dr_auc'], 'df_dr_auc')}")
    record = document.get("record") or {}
    if record.get("paraphrases") == "file" and record.get("paraphrased_texts") == 0:  # the log's warning, in the line
        line += f"; the paraphrase file matched none of Df's {record.get('texts')} texts: no text was rephrased"
    if document.get("retrain"):
        line += f"; Retrain under the same attack: {part(document['retrain'], first=False)}"
    return line + damage_note(document)


DAMAGE_POINTS = 1.0   # a relearn that lowered Df by less is within a query or two of nothing, not damage
# what a damaged model loses, by the name the note gives it: the test and Dr headlines, people data's retain questions
KEPT_HEADLINES = {"test.r_mean": "test r_mean", "test.accuracy": "test accuracy", "dr.r_mean": "Dr r_mean",
                  "dr.accuracy": "Dr accuracy", "retain.image": "retain.image", "retain.text": "retain.text",
                  "mmbench_retention": "mmbench_retention"}


def as_baseline(emit: Callable[..., None]) -> Callable[..., None]:
    """`emit` with its step events in the baseline's phase (sessions.series.BASELINE_PHASE)."""
    def emit_baseline(kind: str, **fields):
        return emit(kind, **({**fields, "phase": BASELINE_PHASE} if kind == "step" else fields))
    return emit_baseline


def damage_note(document: dict) -> str:
    """What an attack that lowered Df did instead of recovering it, '' otherwise. A relearn at a rate the small
    models cannot take in ten steps on a few units (the original's, the default) bends the whole embedding space,
    and the test headline falls with Df; a 4-bit quantisation can lower everything too. Rephrasing is left out:
    harder inputs, not a damaged model."""
    kind = document["attack"]["kind"]
    if kind == "rephrase" or document["recovery"]["points"] > -DAMAGE_POINTS:
        return ""
    before, after = flatten(document.get("unlearned_metrics") or {}), flatten(document.get("metrics") or {})
    relearn = kind == "relearn"
    at = f"at lr {document['record'].get('lr', 0):.2g} " if relearn else ""
    measured = [name for name in KEPT_HEADLINES if name in before and name in after]
    for name in measured:   # the first that fell names the damage
        if shown(name, before[name]) - shown(name, after[name]) >= DAMAGE_POINTS:
            return (f"; Df fell: {at}the attack damaged the model rather than recovering it "
                    f"({KEPT_HEADLINES[name]} {fmt(before[name], name)} -> {fmt(after[name], name)})"
                    + ("; a lower --lr asks the question better" if relearn else ""))
    # what was kept held: relearning on these units pushed the model further from them, which recovers nothing
    held = f" ({', '.join(KEPT_HEADLINES[name] for name in measured)} held)" if measured else ""
    what = "relearning these units did not bring them back" if relearn else "the attack brought nothing back"
    return f"; Df fell further: {at}{what}{held}"
