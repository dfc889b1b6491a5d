"""The history of K sequential requests (sessions/history.py, engine/protocols/history.py): the matrix and its
summary metrics by hand, the evaluation schedule, a real 3-request run, and where the matrix is drawn."""
from __future__ import annotations

import math

import pytest

from conftest import run_in_memory

from sessions.history import (binned, history_from_events, history_matrix, history_summary, preservation,
                              rebound, retain_area, stability)

# before: each request's Df headline on the original; row i: after request i (requests 1..i)
BEFORE = [80.0, 60.0, 90.0]
ROWS = [[20.0], [30.0, 10.0], [25.0, 40.0, 30.0]]
UTILITY, ORIGINAL_UTILITY = [70.0, 64.0, 58.0], 72.0


def test_matrix_is_lower_triangular():
    assert history_matrix(ROWS) == [[20.0, None, None], [30.0, 10.0, None], [25.0, 40.0, 30.0]]


def test_summary_by_hand():
    matrix = history_matrix(ROWS)
    # request 1 forgot 80 - 20 = 60 and keeps 80 - 25 = 55 of it; request 2 forgot 50 and keeps 60 - 40 = 20;
    # request 3 is the last: nothing after it to lose
    assert preservation(BEFORE, matrix) == pytest.approx((55 / 60 + 20 / 50) / 2)
    # rises above the own request's value: r1 +10 at r2, +5 at r3; r2 +30 at r3
    assert rebound(matrix) == (30.0, (2, 3))
    # population std of 70, 64, 58 around 64: sqrt((36 + 0 + 36) / 3)
    assert stability(UTILITY) == pytest.approx(math.sqrt(24))
    # trapezoids over 72, 70, 64, 58: (71 + 67 + 61) / 3
    assert retain_area(ORIGINAL_UTILITY, UTILITY) == pytest.approx(199 / 3)
    summary = history_summary(BEFORE, matrix, ORIGINAL_UTILITY, UTILITY)
    assert summary["rebound_at"] == [2, 3] and summary["retain_area"] == pytest.approx(199 / 3)


def test_summary_edges():
    one = history_matrix([[20.0]])
    assert preservation([80.0], one) is None and rebound(one) == (None, None)
    assert stability([5.0]) == 0.0 and retain_area(7.0, [5.0]) == 6.0
    # a request that forgot nothing (or got better) has no share to keep: left out of the mean
    flat = history_matrix([[80.0], [70.0, 10.0], [60.0, 40.0, 5.0]])
    assert preservation(BEFORE, flat) == pytest.approx(20 / 50)
    # an unchanged score that float32 rounding moved by 2.5e-7 is not forgetting (its share would be ~1e8)
    rounded = history_matrix([[80.0 - 2.5e-7], [70.0, 10.0], [60.0, 40.0, 5.0]])
    assert preservation(BEFORE, rounded) == pytest.approx(20 / 50)
    # never above the own value: no rebound, and no place
    assert rebound(history_matrix([[20.0], [10.0, 5.0]])) == (0.0, None)


def test_matrix_from_events_and_blocks():
    events = [{"kind": "eval", "split": "history", "request": 0, "metrics": {"r1": 80.0, "r2": 60.0, "r3": 90.0}},
              {"kind": "eval", "split": "after", "request": 1, "metrics": {"df.r_mean": 1.0}}]
    events += [{"kind": "eval", "split": "history", "request": i + 1,
                "metrics": {f"r{j + 1}": v for j, v in enumerate(row)}} for i, row in enumerate(ROWS)]
    assert history_from_events(events) == (BEFORE, history_matrix(ROWS))
    labels, before, blocks = binned(BEFORE, history_matrix(ROWS), 2)
    # blocks of two requests: r1-2 x r1-2 holds 20, 30, 10 (the None above the diagonal skipped)
    assert labels == ["r1-2", "r3"] and before == [70.0, 90.0]
    assert blocks == [[20.0, None], [32.5, 30.0]]


class FakeTask:
    HISTORY_METRIC, UTILITY_METRIC = "df.r_mean", "dr.r_mean"

    def __init__(self):
        self.calls = []

    def request_headlines(self, model, requests):
        self.calls.append([list(r) for r in requests])
        return [float(len(self.calls) * 10 + j) for j in range(len(requests))]

    def utility(self, metrics):
        return metrics.get("dr.r_mean")


def test_schedule_full_every_n_and_after_the_last_sample_fixed_between():
    from engine.protocols.history import History

    requests = [[2 * k, 2 * k + 1] for k in range(7)]
    history = History(FakeTask(), requests, lambda *a, **k: None, seed=3, every=3, sample=3)
    assert [history.kind(i) for i in range(1, 8)] == ["sample", "sample", "full", "sample", "sample", "full", "full"]
    forgotten = lambda i: [u for r in requests[:i] for u in r]
    assert history.evaluated(1, forgotten(1)) == [0, 1]       # fewer than M forgotten: all of them
    panel = history.evaluated(2, forgotten(2))
    assert len(panel) == 3 and set(panel) <= set(forgotten(2))
    assert history.evaluated(4, forgotten(4)) == panel == history.evaluated(5, forgotten(5))  # the same units
    assert history.evaluated(3, forgotten(3)) == forgotten(3)  # a full evaluation: every unit forgotten so far
    again = History(FakeTask(), requests, lambda *a, **k: None, seed=3, every=3, sample=3)
    assert again.evaluated(2, forgotten(2)) == panel           # seeded


def test_history_rows_score_every_request_each_time_and_keep_the_asked_ones():
    from engine.protocols.history import History

    events, task = [], FakeTask()
    history = History(task, [[1], [2], [3]], lambda kind, **f: events.append({"kind": kind, **f}), seed=0)
    history.score(None, 0, 0, {"dr.r_mean": 72.0})
    history.score(None, 1, 5, {"dr.r_mean": 70.0})
    history.score(None, 2, 9, {"dr.r_mean": 64.0})
    assert task.calls == [[[1], [2], [3]]] * 3                # the same work at every request: a flat cost
    assert [e["metrics"] for e in events] == [{"r1": 10.0, "r2": 11.0, "r3": 12.0}, {"r1": 20.0},
                                              {"r1": 30.0, "r2": 31.0}]
    document = history.document()
    assert document["matrix"] == [[20.0, None], [30.0, 31.0]] and document["before"] == [10.0, 11.0, 12.0]
    assert document["summary"]["retain_area"] == pytest.approx((71 + 67) / 2)


def test_a_validated_request_spec_validates_again_as_it_is():
    """The engine checks the spec a client has checked: a K > 1 spec carries --eval-sample's default, and a check of
    the schedule that took it for given refused every `run --requests K --engine` (exit 2)."""
    from engine.spec import validate, validate_pulse

    for check, raw in ((validate, {"method": "ga", "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu",
                                   "deletion": {"strategy": "random", "n": 4, "seed": 0}, "requests": 2}),
                       (validate_pulse, {"kind": "pulse", "method": "ga", "model": "llava-tiny", "data": "people-tiny",
                                         "requests": 2, "device": "cpu"}),
                       (validate, {"method": "ga", "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu",
                                   "deletion": {"strategy": "random", "n": 4, "seed": 0}, "requests": 4,
                                   "eval_every_requests": 2, "eval_sample": 2})):
        once = check(raw)
        assert check(once) == once


def test_three_requests_on_clip_record_the_schedule_and_the_history(home):
    from engine.spec import validate

    spec = validate({"method": "ga", "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu", "seed": 7,
                     "deletion": {"strategy": "random", "n": 6, "seed": 7}, "requests": 3,
                     "eval_every_requests": 2, "eval_sample": 1, "params": {"epochs": 1}})
    assert (spec["eval_every_requests"], spec["eval_sample"]) == (2, 1)
    document, events = run_in_memory(spec)
    entries = document["requests"]
    assert [e["evaluation"] for e in entries] == ["sample", "full", "full"]
    assert [e["evaluated_units"] for e in entries] == [1, 4, 6]
    # the document and the stored events (the monitor's and replay's source) say the same of each evaluation
    after = [e for e in events if e["kind"] == "eval" and e.get("split") == "after"]
    assert [e.get("evaluation", "full") for e in after] == [e["evaluation"] for e in entries]
    history = document["history"]
    matrix = history["matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert all((value is None) == (j > i) for i, row in enumerate(matrix) for j, value in enumerate(row))
    assert history["metric"] == "df.r_mean" and len(history["before"]) == 3
    assert all(0.0 <= v <= 100.0 for row in matrix for v in row if v is not None)
    # the rows as the monitor and replay read them from the events, and the summary from its definition
    assert history_from_events(events) == (history["before"], matrix)
    utility = [e["metrics"]["dr"]["r_mean"] for e in entries]
    assert history["utility"] == utility
    assert history["summary"] == history_summary(history["before"], matrix,
                                                 document["original_metrics"]["dr"]["r_mean"], utility)


def test_bad_schedule_is_one_line_exit_2(tmp_path):
    import subprocess

    from conftest import cli, cli_env

    result = subprocess.run(cli("run", "--method", "ga", "--model", "clip-tiny", "--data", "shapes-tiny",
                                "--delete", "6", "--requests", "3", "--eval-every-requests", "0"),
                            env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "--eval-every-requests must be >= 1" in result.stderr


def test_pulse_sequence_keeps_a_history_of_its_people(home):
    from engine.protocols.requests import run_requests
    from engine.spec import validate_pulse

    normal = validate_pulse({"method": "ga", "model": "llava-tiny", "data": "people-tiny", "requests": 3,
                             "forget": 3, "knowledge": "finetuned", "device": "cpu", "eval_every_requests": 3,
                             "eval_sample": 1, "params": {"epochs": 1}})
    document = run_requests(normal, lambda kind, **fields: None, lambda: False)
    # request 1's sample of 1 is everyone forgotten by then: a full evaluation, and said to be one
    assert [e["evaluation"] for e in document["requests"]] == ["full", "sample", "full"]
    assert [e["evaluated_units"] for e in document["requests"]] == [1, 1, 3]
    history = document["history"]
    assert history["metric"] == "forget" and len(history["matrix"]) == 3 and len(history["before"]) == 3
    assert all((v is None) == (j > i) for i, row in enumerate(history["matrix"]) for j, v in enumerate(row))
    assert all(0.0 <= v <= 1.0 for row in history["matrix"] for v in row if v is not None)
    # utility: the retain person's accuracy (the fourth fine-tuned person), image and text-only averaged
    assert history["utility"] == [(e["retain"]["image"] + e["retain"]["text"]) / 2 for e in document["requests"]]
