"""The headless CLI as a user runs it: a real subprocess, a temp $MMUL_HOME, real tiny models. Tests about what a
run prints and records beyond the first (the demo table, a NaN run, export and read back) call the same typer app
in-process (conftest.run_in_process): a fresh interpreter importing torch costs seconds a call."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT, cli, cli_env, run_in_process

HEAVY = ("torch", "transformers", "torch_geometric", "peft", "textual", "plotext")


def run_cli(home, *args, timeout=600):
    return subprocess.run(cli(*args), env=cli_env(home), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["pulse", "--help"], ["methods"], ["models"],
                                  ["data", "list"], ["sessions", "list"],
                                  # a plan refused for its path, before transformers loads
                                  ["plan", "--model", "/no/such/model-dir", "--method", "ft"]])
def test_start_is_torch_free(tmp_path, argv):
    code = (
        "import sys; sys.argv = ['mmul-workbench', *%r]\n"
        "from workbench.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY=' + ','.join(m for m in %r if m in sys.modules))" % (argv, HEAVY)
    )
    out = subprocess.run([sys.executable, "-c", code], env=cli_env(tmp_path), cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY=", out.stdout + out.stderr


def test_methods_json_lists_every_method(tmp_path):
    out = run_cli(tmp_path, "methods", "--json")
    names = [m["name"] for m in json.loads(out.stdout)["methods"]]
    assert {"multidelete", "retrain", "ft", "neggrad", "ga_klr", "npo", "d2d"} <= set(names)


BAD = [
    (["--method", "nope"], "unknown method 'nope'"),
    (["--model", "nope"], "unknown model 'nope'"),
    (["--data", "nope"], "unknown data 'nope'"),
    (["--delete", "0"], "--delete N must be a positive"),
    (["--delete", "-3"], "--delete N must be a positive"),
    (["--delete", "100000"], "choose N <"),
    (["--lr", "0"], "--lr must be > 0"),
    (["--lr", "-1e-4"], "--lr must be > 0"),
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--delete-ids", "/no/such/file"], "does not exist"),
    (["--kl-weight", "1"], "has no parameter --kl-weight"),
    (["--device", "tpu"], "--device must be"),
]


@pytest.mark.parametrize("override,message", BAD)
def test_bad_input_is_one_line_exit_2(home, override, message):
    args = {"--method": "multidelete", "--model": "clip-tiny", "--data": "shapes-tiny", "--delete": "4"}
    for flag, value in zip(override[::2], override[1::2]):
        args[flag] = value
    argv = ["run"] + [x for pair in args.items() for x in pair]
    out = run_cli(home, *argv)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_malformed_id_file(home, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("shapes-images/000001.png\nnot-a-unit\n")
    out = run_cli(home, "run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete-ids", str(ids))
    assert out.returncode == 2 and "unknown unit id not-a-unit" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


COST_FIELDS = {"original_seconds", "unlearning_seconds", "evaluation_seconds", "wall_seconds", "steps", "examples",
               "examples_per_second", "peak_memory_mb", "memory", "device", "device_count", "torch_threads",
               "cpu_kernels"}


def assert_cost(cost: dict, steps: int) -> None:
    """A run's (or a request's) `cost` on the CPU: every field, seconds split by what they were spent on."""
    assert set(cost) == COST_FIELDS, cost
    assert cost["steps"] == steps and cost["device_count"] == 1 and cost["memory"] == "rss"
    assert cost["unlearning_seconds"] > 0 and cost["evaluation_seconds"] > 0 and cost["original_seconds"] >= 0
    assert cost["wall_seconds"] >= cost["unlearning_seconds"] + cost["evaluation_seconds"]
    # both stored to 3 decimals: the seconds' rounding (up to 0.0005 s) bounds how far the shown rate may differ
    seconds = cost["unlearning_seconds"]
    assert cost["examples_per_second"] == pytest.approx(cost["examples"] / seconds, rel=1e-3 + 0.0005 / seconds)
    assert cost["peak_memory_mb"] > 50 and cost["torch_threads"] >= 1 and cost["device"]
    import torch

    # the kernels this test process holds (conftest imports engine first: engine/cpu_kernels.py), which the runs
    # it starts inherit
    assert cost["cpu_kernels"] == torch.backends.cpu.get_cpu_capability()


def test_end_to_end_run_json(home):
    # in this process: what the run prints and stores is the point (test_requests runs the real process)
    out = run_in_process(home, "run", "--method", "multidelete", "--model", "clip-tiny", "--data", "shapes-tiny",
                         "--delete", "8", "--epochs", "2", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["method"] == "multidelete" and result["deletion"] == {"units": 8, "pairs": 40, "retain_units": 152}
    metrics = result["metrics"]
    assert 0.0 <= metrics["df_dr_auc"] <= 1.0
    assert {"r_mean", "txt_r1", "img_r1", "txt_r5", "img_r5", "txt_r10", "img_r10"} <= set(metrics["test"])
    assert {"df_member_rate", "auc"} <= set(metrics["mia"])
    assert result["seconds"] > 0 and result["steps"] == 2 * 3  # 40 Df pairs / batch 16 = 3 steps per epoch
    assert_cost(result["cost"], steps=6)
    assert result["cost"]["unlearning_seconds"] == result["seconds"]  # `seconds` is the training time, as before
    # multidelete iterates Df (40 pairs, batches of 16: 16 + 16 + 8 a pass) and draws Dr batches of 64 beside it
    assert result["cost"]["examples"] == 2 * (40 + 3 * 64)
    assert len(result["requests"]) == 1 and result["requests"][0]["cost"]["steps"] == 6
    assert_cost(result["requests"][0]["cost"], steps=6)
    # the original was trained once and really learned the task
    assert result["original_metrics"]["test"]["r_mean"] > 30
    # the session holds the spec, every loss term, and the final summary
    shown = json.loads(run_in_process(home, "sessions", "show", result["session"], "--json").stdout)
    steps = [e for e in shown["events"] if e["kind"] == "step" and e["phase"] == "unlearn"]
    assert len(steps) == 6 and {"total", "md", "mkr", "ukr"} <= set(steps[0]["losses"])
    assert all(step["memory_mb"] > 0 for step in steps)  # the monitor's device-memory readout
    devices = [(i, e["devices"]) for i, e in enumerate(shown["events"]) if e["kind"] == "device"]
    assert [d for _, d in devices] == [[{"name": "cpu", "util": None, "mem_used_mb": None, "mem_total_mb": None}]]
    assert devices[0][0] < shown["events"].index(steps[0])  # the resolved device, once at the start (no CPU samples)
    assert shown["state"] == "finished"


def test_demo_subset_table(home):
    out = run_in_process(home, "demo", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "8",
                         "--methods", "ft,neggrad,d2d")
    assert out.returncode == 0, out.stderr
    for title in ("original", "FT", "NegGrad", "Descent-to-Delete", "Df/Dr AUC"):
        assert title in out.stdout
    # the way to the 3-seed table: the same grid as a fair study (matched steps, lr tuned on validation data)
    assert ("the 3-seed table scored against Retrain: mmul-workbench study --methods retrain,ft,neggrad,d2d "
            "--model clip-tiny --data shapes-tiny --delete 8 --budget matched-steps --tune") in " ".join(out.stdout.split())


def test_the_demo_says_which_methods_run_away_from_their_defaults():
    """The demo's MultiDelete ran 10 epochs with L_UKR on Dr while `methods` lists 5 and Df, and its table did
    not say so: the study it suggests (the defaults) read another AUC for the same seed."""
    from workbench.cli_run import DEMO_PARAMS, demo_settings

    lines = demo_settings(DEMO_PARAMS["retrieval"], ("retrain", "ft", "multidelete"))
    assert lines == ["MultiDelete here: --ukr-on dr --epochs 10 (the demo's settings, not its defaults: the study "
                     "below runs every method at its defaults)"]
    assert demo_settings(DEMO_PARAMS["retrieval"], ("ft", "neggrad")) == []


def test_nan_loss_fails_the_run_and_keeps_the_session(home, monkeypatch):
    # the loss turns NaN at the third step: --lr 10 made it diverge on one CPU and not on another, so the
    # divergence is injected where it shows, in the method's loss
    from engine.methods.neggrad import NegGrad

    ascend, calls = NegGrad.losses, []

    def diverging(self, forget, retain):
        calls.append(1)
        terms = ascend(self, forget, retain)
        return {**terms, "total": terms["total"] * float("nan")} if len(calls) >= 3 else terms

    monkeypatch.setattr(NegGrad, "losses", diverging)
    out = run_in_process(home, "run", "--method", "neggrad", "--model", "clip-tiny", "--data", "shapes-tiny",
                         "--delete", "16", "--lr", "10", "--max-grad-norm", "0", "--epochs", "3", "--json")
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: loss became nan") and "lower --lr" in last and "Traceback" not in out.stderr
    session = last.rsplit("session ", 1)[1].split()[0]
    ended = json.loads(out.stdout)  # --json: one document even for a run that failed, naming its session
    assert ended["session"] == session and ended["state"] == "failed" and ended["error"].startswith("loss became nan")
    shown = json.loads(run_in_process(home, "sessions", "show", session, "--json").stdout)
    assert shown["state"] == "failed" and "loss became nan" in shown["message"]
    assert any(e["kind"] == "step" for e in shown["events"])  # what ran before the failure is kept


def test_data_export_then_read_back_through_run(home, tmp_path):
    target = tmp_path / "flickr"
    out = run_in_process(home, "data", "export", "shapes-tiny", str(target), "--format", "flickr30k", "--json")
    assert out.returncode == 0, out.stderr
    assert sorted(p.rsplit("/", 1)[1] for p in json.loads(out.stdout)["files"]) == [
        "flickr30k_test.json", "flickr30k_train.json", "flickr30k_val.json"]
    ids = tmp_path / "ids.txt"
    ids.write_text("shapes-images/000003.png\nshapes-images/999999.png\n")
    out = run_in_process(home, "run", "--method", "ft", "--model", "clip-tiny", "--data", f"flickr30k:{target}",
                         "--delete-ids", str(ids))
    assert out.returncode == 2 and "unknown unit id shapes-images/999999.png" in out.stderr
    bad = run_in_process(home, "data", "export", "shapes-tiny", str(target), "--format", "mmbench")
    assert bad.returncode == 2 and "unknown export format" in bad.stderr
    # a directory with files in it is written over only on --force (a real data set's files could be lost)
    before = (target / "flickr30k_train.json").read_bytes()
    again = run_in_process(home, "data", "export", "shapes-tiny", str(target), "--format", "coco")
    assert again.returncode == 2 and len(again.stderr.splitlines()) == 1
    assert f"{target} is not empty (it holds flickr30k_test.json and " in again.stderr and "--force" in again.stderr
    assert not (target / "dataset_coco.json").exists() and (target / "flickr30k_train.json").read_bytes() == before
    forced = run_in_process(home, "data", "export", "shapes-tiny", str(target), "--format", "coco", "--force")
    assert forced.returncode == 0 and (target / "dataset_coco.json").exists()
    missing = run_in_process(home, "run", "--method", "ft", "--model", "clip-tiny", "--data", "flickr30k:/no/such",
                             "--delete", "2")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_a_nested_engine_errors_passes_an_exit_through(capsys):
    """`engine stop` under `study --engine` printed a stray `error: engine unavailable: 1`: the outer
    engine_errors caught the inner one's typer.Exit (a RuntimeError). Now one line, the inner one's."""
    import typer

    from workbench.cli_study import engine_errors

    with pytest.raises(typer.Exit) as raised:
        with engine_errors():
            with engine_errors():
                raise ConnectionError("the engine went away")
    assert raised.value.exit_code == 1
    assert capsys.readouterr().err.strip().splitlines() == ["error: engine unavailable: the engine went away"]


def test_data_ids_lists_what_delete_ids_takes(tmp_path, monkeypatch):
    """A newcomer had no way to learn the ids `--delete-ids FILE` takes (`data info` prints none)."""
    from typer.testing import CliRunner

    from workbench.cli import app

    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    listed = CliRunner().invoke(app, ["data", "ids", "shapes-tiny", "--limit", "3"])
    assert listed.exit_code == 0 and listed.output.splitlines() == [
        "shapes-images/000000.png", "shapes-images/000001.png", "shapes-images/000002.png"]
    people = CliRunner().invoke(app, ["data", "ids", "people-tiny"])
    assert people.exit_code == 2 and "a PULSE run forgets people (--forget N)" in people.output
    # the facts' ids, which `--granularity fact --delete-ids FILE` takes (there was no way to list them; a review)
    facts = CliRunner().invoke(app, ["data", "ids", "shapes-tiny", "--granularity", "fact", "--limit", "4"])
    assert facts.exit_code == 0 and all("#" in line for line in facts.output.splitlines())
    from engine.api import preview_deletion

    (tmp_path / "facts.txt").write_text(facts.output)
    chosen = preview_deletion("shapes-tiny", {"strategy": "ids", "file": str(tmp_path / "facts.txt"), "seed": 0,
                                              "granularity": "fact"})
    assert chosen.selected == 4 and chosen.kind == "facts"


def test_a_home_or_disk_that_fails_a_write_is_one_line(tmp_path, monkeypatch):
    """A home that cannot be made (under /proc, a name too long) and a full disk printed a 60-line traceback; a
    loop of symbolic links given as a path printed pathlib's RuntimeError (a review)."""
    import errno

    from workbench.output import os_error_line

    nowhere = cli_env(tmp_path) | {"MMUL_HOME": "/proc/mmul-workbench-home"}
    started = subprocess.run(cli("engine", "start"), env=nowhere, capture_output=True, text=True, timeout=120)
    assert started.returncode == 2 and started.stderr.count("\n") == 1 and "Traceback" not in started.stderr
    assert "(MMUL_HOME) cannot be made or used there; set MMUL_HOME to a directory you can write" in started.stderr
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "elsewhere" / "x"))
    line, code = os_error_line(full)
    assert code == 1 and line.startswith(f"{tmp_path / 'elsewhere' / 'x'}: No space left on device; free some space")
    assert os_error_line(OSError(errno.ENAMETOOLONG, "File name too long", "/tmp/x"))[1] == 2
    # a file where the home keeps a folder is named (`engine start` blamed the home); a path given that cannot be
    # written says what to do
    home = tmp_path / "home"
    (home / "engine").mkdir(parents=True)
    (home / "engine" / "run").write_text("")
    monkeypatch.setenv("MMUL_HOME", str(home))
    line, code = os_error_line(OSError(errno.ENOTDIR, "Not a directory", str(home / "engine" / "run" / "engine.sock")))
    assert code == 2 and line.endswith(f"{home / 'engine' / 'run'} is a file where the workbench keeps a folder; move "
                                       "it aside (or set MMUL_HOME to another directory)")
    line, _ = os_error_line(OSError(errno.EACCES, "Permission denied", str(tmp_path / "ro" / "x")))
    assert line == f"{tmp_path / 'ro' / 'x'}: Permission denied; choose a path you can write (MMUL_DEBUG=1 for a traceback)"
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    looped = subprocess.run(cli("run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete",
                                "4", "--cache-dir", str(loop)), env=cli_env(tmp_path), capture_output=True, text=True,
                            timeout=300)
    assert looped.returncode == 2 and looped.stderr.count("\n") == 1, looped.stderr
    assert "loops through symbolic links" in looped.stderr


def test_an_export_that_fails_half_way_leaves_nothing_in_the_way(tmp_path, monkeypatch):
    """A full disk (or Ctrl-C) left a partial export, and the retry was refused as `not empty` (a review): a new
    folder is written beside it and renamed into place once whole."""
    import errno

    import engine.api as api

    written = api.write_world

    def disk_fills(world, fmt, directory):
        (directory / "flickr30k-images").mkdir()
        (directory / "flickr30k-images" / "1.jpg").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(directory / "flickr30k-images" / "2.jpg"))

    target = tmp_path / "out" / "flickr"
    monkeypatch.setattr(api, "write_world", disk_fills)
    with pytest.raises(OSError):
        api.export_world("shapes-tiny", "flickr30k", target, False)
    assert not target.exists() and list((tmp_path / "out").iterdir()) == []   # no partial folder, no staging
    monkeypatch.setattr(api, "write_world", written)
    files = api.export_world("shapes-tiny", "flickr30k", target, False)        # the retry goes through
    assert files and all(path.is_relative_to(target) and path.exists() for path in files)


def test_help_shows_a_flag_without_a_type(tmp_path):
    """`run --help` listed `--json <bool>`, which reads as an option that takes a value; `--seed <int>` keeps its."""
    shown = subprocess.run(cli("run", "--help"), env={**cli_env(tmp_path), "COLUMNS": "160"}, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "<bool>" not in shown.stdout
    assert any("--seed" in line and "<int>" in line for line in shown.stdout.splitlines())


def test_help_lists_each_command_on_whole_lines_and_lists_align(tmp_path):
    """`--help` broke a command's summary where its docstring had a line break ("report per method / mean +/- std"),
    `sessions report` read `[[SESSION]...]...`, and `models` pushed qwen2-vl-tiny's row out of its columns."""
    def run(*args):
        out = subprocess.run(cli(*args), env={**cli_env(tmp_path), "COLUMNS": "200"}, capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "report per method mean +/- std of every metric" in run("--help")
    assert "its own id, events and times, so replay" in run("sessions", "--help")
    assert "[SESSION]..." in run("sessions", "report", "--help") and "[[SESSION]" not in run("sessions", "report", "--help")
    rows = run("models").splitlines()
    starts = {row.index(row.split()[2]) for row in rows}   # where each row's summary begins
    assert len(starts) == 1, rows


def test_the_demos_study_command_includes_retrain_whatever_methods_ran():
    """`demo --methods ga,multidelete` suggested a study "scored against Retrain" without Retrain in it (a review)."""
    from workbench.cli_run import study_command

    run = {"model": "clip-tiny", "data": "shapes-tiny", "deletion": {"n": 8}}
    assert "--methods retrain,ga,multidelete " in study_command([{**run, "method": "ga"}, {**run, "method": "multidelete"}])
    assert "--methods retrain,ft " in study_command([{**run, "method": "retrain"}, {**run, "method": "ft"}])
