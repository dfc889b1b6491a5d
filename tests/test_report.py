"""`sessions report`: one self-contained HTML file of stored sessions or of a study (sessions written with the
store's writer and a hand-made study record: no training), and bad input refused with nothing written."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from conftest import ROOT, cli_env
from sessions.store import SessionStore

STUDY = "study-0123456789ab"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    return tmp_path


def invoke(*args):
    from workbench.cli import app

    return CliRunner().invoke(app, ["sessions", "report", *args])


def make(home, method: str, auc: float, r_mean: float, seed: int = 42, steps: int = 60, df_unit_scores=None,
         cost=None, requests=None) -> str:
    spec = {"method": method, "model": "clip-tiny", "data": "shapes-tiny", "seed": seed,
            "deletion": {"strategy": "random", "n": 4, "seed": seed}, "params": {"lr": 1e-4}}
    writer = SessionStore(home).create(spec, name=f"{method} s{seed}")
    writer.emit("eval", step=0, phase="original", split="before",
                metrics={"df_dr_auc": 0.91, "test.r_mean": 52.0, "mia.df_member_rate": 0.8})
    for i in range(steps):
        writer.emit("step", step=i, phase="unlearn", lr=1e-3, losses={"total": 2.0 / (i + 1), "kl": 0.1})
        if i % 20 == 19:
            writer.emit("eval", step=i, phase="unlearn", split="step",
                        metrics={"df_dr_auc": 0.9 - i / 200, "test.r_mean": 51.0})
    metrics = {"df_dr_auc": auc, "test.r_mean": r_mean, "mia.df_member_rate": 0.1}
    writer.emit("eval", step=steps, phase="eval", split="after", metrics=metrics)
    summary = {"session": writer.session_id, "method": method, "seconds": 200.0, "steps": steps,
               "metrics": {"df_dr_auc": auc, "test": {"r_mean": r_mean}, "mia": {"df_member_rate": 0.1}},
               "original_metrics": {"df_dr_auc": 0.91, "test": {"r_mean": 52.0}}}
    if df_unit_scores is not None:
        summary["df_unit_scores"] = df_unit_scores
    if cost is not None:
        summary["cost"], summary["requests"] = cost, requests or []
    writer.finish("finished", summary=summary)
    return writer.session_id


def test_report_of_two_sessions(home, tmp_path):
    a, b = make(home, "multidelete", 0.7032, 50.23), make(home, "ft", 0.8512, 51.0)
    out = tmp_path / "report.html"
    result = invoke(a, b[-4:], "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count("<svg") >= 4  # loss and eval curves, each session
    for sid, method in ((a, "multidelete"), (b, "ft")):
        assert f'<section id="{sid}">' in text and f"&quot;method&quot;: &quot;{method}&quot;" in text  # the spec
    # the final metric tables in the one number format: AUC in percent, recall as stored, deltas signed
    assert "<td>df_dr_auc</td><td>91.0</td><td>70.3</td><td>-20.7</td>" in text
    assert "<td>test.r_mean</td><td>52.0</td><td>50.2</td><td>-1.8</td>" in text
    assert "<td>df_dr_auc</td><td>91.0</td><td>85.1</td><td>-5.9</td>" in text
    # no raw fractions in what the report says (the plots' SVG coordinates are numbers of their own: one read
    # "150.703278" once); the run's time humanised
    words = re.sub(r"<svg.*?</svg>", "", text, flags=re.S)
    assert "0.7032" not in words and "took 3 m 20 s" in words
    # each section opens with its verdict, before its first plot
    for sid, verdict in ((a, "forget: Df/Dr AUC 91.0 -&gt; 70.3; keep: test r_mean 52.0 -&gt; 50.2; cost 3 m 20 s, 60 steps"),
                         (b, "forget: Df/Dr AUC 91.0 -&gt; 85.1; keep: test r_mean 52.0 -&gt; 51.0; cost 3 m 20 s, 60 steps")):
        section = text[text.index(f'<section id="{sid}">'):]
        assert f'<p class="verdict"><b>verdict</b>: {verdict}</p>' in section
        assert section.index("verdict") < section.index("<svg") and section.index("verdict") < section.index("<table")
    # self-contained: no script, nothing fetched
    assert "<script" not in text and not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert "<link" not in text and "@import" not in text
    assert not list(tmp_path.glob("*.partial"))

    as_json = invoke(a, "--out", str(tmp_path / "one.html"), "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["sessions"] == [a]


def write_study(home, cells: list[dict], methods=("retrain", "ft", "multidelete")) -> None:
    spec = {"model": "clip-tiny", "data": "shapes-tiny", "task": "retrieval", "device": "cpu",
            "deletion": {"strategy": "random", "n": 4}, "requests": 1, "params": {}, "methods": list(methods),
            "seeds": [42, 7]}
    (home / "studies").mkdir(mode=0o700, exist_ok=True)
    (home / "studies" / f"{STUDY}.json").write_text(json.dumps(
        {"schema": 1, "study": STUDY, "spec": spec, "created": 1.0, "updated": 2.0, "cells": cells}))


def test_report_holds_a_run_against_a_retrain_of_its_deletion_set(home, tmp_path):
    run, retrain = make(home, "multidelete", 0.7032, 50.23), make(home, "retrain", 0.6504, 51.0)
    out = tmp_path / "report.html"
    assert invoke("multidelete s42", "--out", str(out)).exit_code == 0   # a name
    assert "forget: Df/Dr AUC 91.0 -&gt; 70.3 (Retrain 65.0, +5.3);" in out.read_text()
    assert invoke(retrain, "--out", str(out)).exit_code == 0             # Retrain: no reference but itself
    assert "(Retrain" not in out.read_text() and "forget: Df/Dr AUC 91.0 -&gt; 65.0;" in out.read_text()


def test_report_of_a_study(home, tmp_path):
    values = {"retrain": (0.50, 48.0), "ft": (0.80, 50.0), "multidelete": (0.55, 47.0)}
    cells = []
    for seed, shift in ((42, 0.0), (7, 0.02)):
        for method, (auc, r_mean) in values.items():
            sid = make(home, method, auc + shift, r_mean + 100 * shift, seed=seed, steps=40 if method == "ft" else 80,
                       df_unit_scores=[0.1, 0.5, 0.9, 1.3] if method == "retrain" else [0.2 + shift, 0.6, 1.0, 1.4])
            cells.append({"method": method, "seed": seed, "session": sid, "state": "finished"})
    write_study(home, cells)
    out = tmp_path / "study.html"
    result = invoke("--study", STUDY, "--out", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert STUDY in text and "<script" not in text
    rows = {m: re.search(rf"<tr><td>{title}</td>(.*?)</tr>", text).group(1)
            for m, title in (("retrain", "Retrain"), ("ft", "FT"), ("multidelete", "MultiDelete"))}
    # mean ± std over the two seeds, n, in the one number format; then AUC gap, test gap, forget quality, rank
    assert rows["retrain"].startswith("<td>2</td><td>51.0 ± 1.4</td><td>49.0 ± 1.4</td>")
    assert rows["ft"].startswith("<td>2</td><td>81.0 ± 1.4</td><td>51.0 ± 1.4</td>")
    assert "<td>30.0 ± 0.0</td><td>2.0 ± 0.0</td>" in rows["ft"] and rows["ft"].endswith("<td>2</td>")
    assert "<td>5.0 ± 0.0</td><td>1.0 ± 0.0</td>" in rows["multidelete"] and rows["multidelete"].endswith("<td>1</td>")
    assert rows["retrain"].endswith("<td>ref</td>")
    assert "Ranked by closeness to Retrain" in text and "within 5 points" in text
    # one overlaid plot per headline metric the runs report (three of the retrieval task's six here): over the
    # run, each method a colour, where the cells evaluated during it; else the final values, each seed a point
    assert text.count("<svg") == 3 and text.count("during the run</text>") == 2 and "at the end" in text
    # every method is in every plot of the run's curves (FT too: each curve ends at its final evaluation)
    during = [svg for svg in re.findall(r"<svg.*?</svg>", text, re.S) if "during the run</text>" in svg]
    assert all(f">{title}</text>" in svg for svg in during for title in ("Retrain", "FT", "MultiDelete"))
    assert all(c["session"] in text for c in cells)


def test_study_report_of_a_study_without_retrain_or_curves(home, tmp_path):
    sid = make(home, "ft", 0.8, 50.0, steps=0)
    write_study(home, [{"method": "ft", "seed": 42, "session": sid, "state": "finished"},
                       {"method": "ft", "seed": 7, "session": None, "state": "failed"}], methods=("ft",))
    out = tmp_path / "s.html"
    result = invoke("--study", STUDY, "--out", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "No Retrain in --methods" in text and "<td>FT</td><td>1</td><td>80.0</td>" in text  # one seed: no ±
    assert "at the end" in text and "<svg" in text  # no step evaluation of test.r_mean: the final values


@pytest.mark.parametrize("case", ["unknown session", "damaged session", "unknown study", "bad study id",
                                  "damaged study", "directory", "missing directory", "unwritable", "neither",
                                  "both"])
def test_bad_input_is_one_line_exit_2_nothing_written(home, tmp_path, case):
    sid = make(home, "ft", 0.8, 50.0, steps=3)
    out = tmp_path / "out" / "r.html"
    out.parent.mkdir()
    args = [sid, "--out", str(out)]
    if case == "unknown session":
        args = [sid, "20200101-000000-zzzz", "--out", str(out)]
    elif case == "damaged session":
        damaged = make(home, "npo", 0.7, 49.0, steps=3)
        for path in (home / "sessions").glob(f"{damaged}*"):
            target = path / "session.json" if path.is_dir() else path
            if target.is_file():
                target.write_text("{ not json")
        args = [damaged, "--out", str(out)]
    elif case == "unknown study":
        args = ["--study", "study-aaaaaaaaaaaa", "--out", str(out)]
    elif case == "bad study id":
        args = ["--study", "../../etc/passwd", "--out", str(out)]
    elif case == "damaged study":
        (home / "studies").mkdir()
        (home / "studies" / f"{STUDY}.json").write_text("{ not json")
        args = ["--study", STUDY, "--out", str(out)]
    elif case == "directory":
        args = [sid, "--out", str(out.parent)]
    elif case == "missing directory":
        args = [sid, "--out", str(tmp_path / "nowhere" / "r.html")]
    elif case == "unwritable":
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        out.parent.chmod(0o500)
    elif case == "neither":
        args = ["--out", str(out)]
    elif case == "both":
        args = [sid, "--study", STUDY, "--out", str(out)]
    result = invoke(*args)
    if case == "unwritable":
        out.parent.chmod(0o700)
    assert result.exit_code == 2, (case, result.output)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), (case, result.stderr)
    assert "Traceback" not in result.output and result.stdout == ""
    assert list(out.parent.iterdir()) == [] and not (tmp_path / "nowhere").exists()


def test_unwritable_target_is_one_line_exit_2(home, tmp_path, monkeypatch):
    """A write that fails midway (e.g. the disk fills) leaves neither the report nor its .partial."""
    import sessions.files

    sid = make(home, "ft", 0.8, 50.0, steps=3)
    out = tmp_path / "r.html"

    def full(path, text, *, sync_dir=True):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(sessions.files, "atomic_write_text", full)
    import sessions.report

    monkeypatch.setattr(sessions.report, "atomic_write_text", full)
    result = invoke(sid, "--out", str(out))
    assert result.exit_code == 2 and "No space left on device" in result.stderr and result.stderr.count("\n") == 1
    assert list(tmp_path.glob("r.html*")) == []


def test_help_and_sessions_commands_import_neither_torch_nor_matplotlib(tmp_path):
    heavy = ("torch", "matplotlib", "transformers", "textual", "plotext")
    for argv in (["--help"], ["sessions", "report", "--help"], ["sessions", "list"]):
        code = ("import sys; sys.argv = ['mmul-workbench', *%r]\nfrom workbench.cli import app\n"
                "try:\n    app()\nexcept SystemExit:\n    pass\n"
                "print('HEAVY=' + ','.join(m for m in %r if m in sys.modules))" % (argv, heavy))
        out = subprocess.run([sys.executable, "-c", code], env=cli_env(tmp_path), cwd=ROOT, capture_output=True,
                             text=True)
        assert out.stdout.strip().splitlines()[-1] == "HEAVY=", (argv, out.stdout + out.stderr)


def cost_of(unlearning: float, peak: float, original: float = 0.0) -> dict:
    return {"original_seconds": original, "unlearning_seconds": unlearning, "evaluation_seconds": 3.0,
            "wall_seconds": 30.0, "steps": 12, "examples": 960, "examples_per_second": 960 / unlearning,
            "peak_memory_mb": peak, "memory": "rss", "device": "AMD EPYC", "device_count": 1, "torch_threads": 2}


def test_cost_in_the_session_and_study_reports(home, tmp_path):
    """A session's cost table (the run's and each request's, in the one number format) and the study grid's cost
    columns, mean ± std over the seeds: unlearning 10 s and 14 s give 12 s ± sqrt(8) = 2.8 s; peaks 500 and
    2548 MB give 1.5 GB ± 1448 MB = 1.4 GB."""
    first = cost_of(10.0, 500.0, original=75.0)
    requests = [{"request": 1, "cost": cost_of(4.0, 480.0, original=75.0)}, {"request": 2, "cost": cost_of(6.0, 500.0)}]
    a = make(home, "ft", 0.8, 50.0, seed=42, cost=first, requests=requests)
    b = make(home, "ft", 0.82, 52.0, seed=7, cost=cost_of(14.0, 2548.0))
    out = tmp_path / "cost.html"
    assert invoke(a, "--out", str(out)).exit_code == 0
    text = out.read_text()
    assert "<h3>cost</h3>" in text and "<th>request 2</th>" in text
    assert "<tr><td>original training</td><td>1 m 15 s</td><td>1 m 15 s</td><td>0 s</td></tr>" in text
    assert "<tr><td>unlearning (training)</td><td>10 s</td><td>4 s</td><td>6 s</td></tr>" in text
    assert "<tr><td>peak memory</td><td>500 MB</td><td>480 MB</td><td>500 MB</td></tr>" in text
    assert "<tr><td>device</td><td>AMD EPYC</td>" in text and "<td>measured as</td><td>rss</td>" in text

    write_study(home, [{"method": "ft", "seed": 42, "session": a, "state": "finished"},
                       {"method": "ft", "seed": 7, "session": b, "state": "finished"}], methods=("ft",))
    result = invoke("--study", STUDY, "--out", str(tmp_path / "study.html"))
    assert result.exit_code == 0, result.output
    text = (tmp_path / "study.html").read_text()
    assert "<th>train time</th><th>eval time</th><th>peak mem</th>" in text
    assert "<td>12 s ± 2.8 s</td><td>3 s ± 0 s</td><td>1.5 GB ± 1.4 GB</td>" in text


def trained_original(home) -> str:
    """A finished run that trained its original (300 steps) before 12 unlearning steps, with a holdout set."""
    spec = {"method": "multidelete", "model": "clip-tiny", "data": "shapes-tiny", "seed": 1,
            "deletion": {"strategy": "random", "n": 4, "seed": 1}, "device": "cpu"}
    writer = SessionStore(home).create(spec, name="trained here")
    writer.emit("phase", name="original")
    for i in range(300):
        writer.emit("step", step=i, phase="original", lr=1e-3, losses={"total": 3.0 - i / 150})
    writer.emit("eval", step=0, phase="original", split="before",
                metrics={"df_dr_auc": 0.91, "test.r_mean": 52.0, "holdout_identity.r_mean": 45.0, "dr.r_mean": 60.0,
                         "test.txt_r1": 30.0})
    for i in range(12):
        writer.emit("step", step=i, phase="unlearn", lr=1e-3, losses={"total": 1.0, "kl": 0.1})
    after = {"df_dr_auc": 0.5, "test.r_mean": 50.0, "holdout_identity.r_mean": 44.0, "dr.r_mean": 59.0, "test.txt_r1": 29.0}
    writer.emit("eval", step=12, phase="eval", split="after", metrics=after)
    writer.finish("finished", summary={"metrics": after, "original_metrics": {"df_dr_auc": 0.91}, "seconds": 3.0,
                                       "steps": 12, "cost": {"device": "AMD EPYC", "torch_threads": 4}})
    return writer.session_id


def test_report_tells_the_story_verdict_panels_table_then_folded_details(home, tmp_path):
    sid = trained_original(home)
    out = tmp_path / "r.html"
    assert invoke(sid, "--out", str(out)).exit_code == 0
    text = out.read_text()
    order = [text.index(mark) for mark in ('class="verdict"', "<svg", "<h3>final metrics</h3>",
                                           "<summary>the original's training: 300 steps",
                                           "<summary>spec and environment</summary>")]
    assert order == sorted(order)   # verdict, panels, table, then the original's training and the spec, folded
    # 300 + 12 would be the phases counted together (the id, a timestamp, may hold the digits 312)
    assert "12 unlearning steps" in text and not re.search(r"\b312\b", text.replace(sid, ""))
    svgs = re.findall(r"<svg.*?</svg>", text, re.S)
    assert len(svgs) == 3 + 1 and all('id="legend_1"' in svg for svg in svgs)  # forget, keep, loss + training
    for title in ("forget", "keep", "loss terms"):
        assert f">{title}</text>" in text
    assert "original df_dr_auc (91.0)" in text          # the original's reference line, named in the legend
    table = re.search(r"<h3>final metrics</h3>(.*?)</table>", text, re.S).group(1)
    names = re.findall(r"<tr><td>([^<]+)</td>", table)
    assert names == ["df_dr_auc", "test.r_mean", "dr.r_mean", "holdout_identity.r_mean", "test.txt_r1"]  # headline first
    assert "<td>AMD EPYC</td>" in text.split("<summary>spec and environment</summary>")[1]


def test_report_of_several_sessions_compares_them_side_by_side(home, tmp_path):
    a, b = make(home, "multidelete", 0.7032, 50.23), make(home, "ft", 0.851, 51.0, seed=7)
    out = tmp_path / "r.html"
    assert invoke(a, b, "--out", str(out)).exit_code == 0
    text = out.read_text()
    order = [text.index(mark) for mark in ("<h2>verdicts</h2>", "<h2>curves</h2>", "<h2>side by side</h2>",
                                           "<details><summary>multidelete s42")]
    assert order == sorted(order)
    side = re.search(r"<h2>side by side</h2>(.*?)</table>", text, re.S).group(1)
    assert f"<th>multidelete s42 ({a})</th><th>ft s7 ({b})</th>" in side
    assert "<tr><td>df_dr_auc</td><td>70.3</td><td>85.1</td></tr>" in side
    curves = text[text.index("<h2>curves</h2>"):text.index("<h2>side by side</h2>")]
    assert curves.count("<svg") == 4 and curves.count(f"multidelete s42 ({a})") == 4  # a panel per question


def test_study_plots_keep_a_method_that_did_not_evaluate_during_the_run(home, tmp_path):
    cells = [{"method": "retrain", "seed": 42, "session": make(home, "retrain", 0.5, 48.0, steps=80), "state": "finished"},
             {"method": "ft", "seed": 42, "session": make(home, "ft", 0.8, 50.0, steps=10), "state": "finished"}]
    write_study(home, cells, methods=("retrain", "ft"))   # FT's 10 steps hold no step evaluation
    out = tmp_path / "s.html"
    assert invoke("--study", STUDY, "--out", str(out)).exit_code == 0
    during = [svg for svg in re.findall(r"<svg.*?</svg>", out.read_text(), re.S) if "during the run</text>" in svg]
    assert during and all(">FT</text>" in svg and ">Retrain</text>" in svg for svg in during)


def test_the_final_metrics_table_has_its_delta_for_runs_and_beside_an_attacks_own_after():
    """A run's final column is `after r1`, and the tables looked for `after`: no delta for any run or pulse session;
    an attack's delta came after Retrain's columns, where it read as theirs (a review)."""
    from sessions.report import metrics_rows

    def evals(*splits):
        return [{"kind": "eval", "split": split, "request": request, "metrics": {"df_dr_auc": value}}
                for split, request, value in splits]

    headers, rows = metrics_rows(evals(("before", None, 0.5), ("after", 1, 0.62)), None)
    assert headers == ["metric", "before", "after r1", "delta"] and rows[0] == ["df_dr_auc", "50.0", "62.0", "+12.0"]
    headers, rows = metrics_rows(evals(("before", None, 0.5), ("after", 1, 0.6), ("after", 2, 0.7)), None)
    assert headers[-1] == "delta" and rows[0][-1] == "+20.0"   # the last request's against the original
    headers, rows = metrics_rows(evals(("before", None, 0.6), ("after", None, 0.55), ("retrain before", None, 0.8),
                                       ("retrain after", None, 0.79)), None)
    assert headers == ["metric", "before", "after", "delta", "retrain before", "retrain after"]
    assert rows[0][3] == "-5.0"
