"""Bad input is caught before anything runs: one line on stderr, exit 2, no session (README: "one line, exit
2, nothing run"). Each case is a value an operator actually gave: a negative or huge seed, epochs 1e12, a
batch of 10**9, a device the machine lacks, malformed Flickr30K records, a non-UTF-8 MMBench TSV, a checkpoint
without its preprocessor config, a secret file given as the deletion ID list."""
from __future__ import annotations

import json
import subprocess

import pytest
import typer

from engine.errors import SpecError
from engine.spec import validate
from engine.spec.inputs import absolute_paths
from engine.spec.validate import check_device

from conftest import ROOT, cli, cli_env, run_in_process
from sessions_fixtures import run_cli as run_app

RUN = ["run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4"]
# The checks on a value, a path or a file's content call the typer app in-process (conftest.run_in_process); the
# real processes' one line and exit 2 are the checkpoint and late-check tests' below (and tests/test_cli.py's).


def run_cli(home, *args, cwd=ROOT, timeout=600):
    return subprocess.run(cli(*args), env=cli_env(home), cwd=cwd, capture_output=True, text=True, timeout=timeout)


def refused(out, *words) -> None:
    """One line on stderr, exit 2, nothing on stdout, no traceback."""
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr and out.stdout == "", out.stderr
    for word in words:
        assert word in lines[0], lines[0]


def no_session(home) -> None:
    root = home / "sessions"
    assert not root.exists() or not [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


BAD_VALUES = [
    (["--seed", "-1"], "--seed must be a whole number from 0 to 4294967295, got -1"),
    (["--seed", str(10**40)], "--seed must be a whole number from 0 to 4294967295"),
    (["--epochs", str(10**12)], "--epochs must be <= 10000"),
    (["--batch-size", str(10**9)], "--batch-size must be <= 65536"),
    (["--retain-batch-size", "0"], "--retain-batch-size must be >= 1"),
    (["--delete", str(10**9)], "at most 10000000"),
    (["--requests", "1001"], "--requests must be <= 1000"),
    (["--requests", "3", "--eval-sample", "0"], "--eval-sample must be >= 1"),
    # options the rest of the command makes a no-op: refused, not dropped
    (["--target-auc", "0.5"], "--target-auc applies to --keep best; add --keep best, or drop it"),
    (["--keep-tolerance", "3"], "--keep-tolerance applies to --keep best"),
    (["--eval-every-requests", "2"], "--eval-every-requests applies to --requests K > 1"),
    (["--eval-sample", "3"], "--eval-sample applies to --requests K > 1"),
    # requests 1-4 were sample evaluations and the run exited 0; an --eval-sample that no evaluation used was stored
    (["--requests", "3", "--eval-every-requests", "4"], "--eval-every-requests N=4 is more than the 3 requests"),
    (["--requests", "3", "--eval-sample", "2"], "--eval-sample applies between full evaluations"),
    (["--method", "d2d", "--epochs", "3"], "Descent-to-Delete takes 1 step(s) whatever --epochs says"),
    # Retrain trained in its recipe's batches whatever the flag said (a review)
    (["--method", "retrain", "--retain-batch-size", "8"], "--retain-batch-size sets the unlearning methods' Dr batch"),
    (["--device", "cuda:x"], "--device must be auto, cpu, cuda or cuda:N"),
    # a pipe read as "does not exist" (a review): the ids are read again later, by the run or the engine
    (["--delete-ids", "/dev/null"], "deletion ID file /dev/null is not a regular file (a pipe or"),
    # a cache the machine cannot make: the run made its session, then failed on the first write (a review)
    (["--cache-dir", "/proc/mmul-cache"], "--cache-dir /proc/mmul-cache cannot be made (No such file or directory)"),
    (["--name", "x" * 300], "--name must be one line"),
    (["--data", "mmbench:/etc/hosts"], "give it to `mmul-workbench pulse --general mmbench:FILE`"),
    (["--data", "mllmu:/tmp"], "give it to `mmul-workbench pulse --data mllmu:DIR`"),
]


@pytest.mark.parametrize("override,message", BAD_VALUES, ids=[" ".join(o)[:30] for o, _ in BAD_VALUES])
def test_each_bad_value_is_refused_before_anything_runs(tmp_path, override, message):
    argv = RUN + override
    refused(run_in_process(tmp_path, *argv), message)
    no_session(tmp_path)


def test_a_device_the_machine_lacks_is_refused_before_anything_runs(tmp_path):
    if _cuda():
        pytest.skip("this machine has CUDA (the device check runs on the device machine)")
    for device in ("cuda", "cuda:0", "cuda:7"):
        refused(run_in_process(tmp_path, *RUN, "--device", device), f"--device {device}", "no CUDA device")
    no_session(tmp_path)


def test_a_checkpoint_without_its_preprocessor_config(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "clip"}))
    (ckpt / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    (ckpt / "tokenizer.json").write_text("{}")
    out = run_cli(tmp_path, "run", "--method", "ft", "--model", "ckpt", "--data", "shapes-tiny", "--delete", "4",
                  cwd=tmp_path)   # a relative directory: resolved against where the operator stands
    refused(out, f"model directory {ckpt} is not a complete checkpoint", "no image processor file",
            "preprocessor_config.json")
    (ckpt / "model.safetensors").write_bytes(b"")
    refused(run_cli(tmp_path, *RUN[:4], str(ckpt), *RUN[5:]), "model.safetensors is empty")
    no_session(tmp_path)


EMPTY_SAFETENSORS = (2).to_bytes(8, "little") + b"{}"  # a sound header listing no tensors


def test_a_cut_or_damaged_weights_file_is_refused_before_a_session(tmp_path):
    """A deployed checkpoint whose model.safetensors was cut short (a copy that stopped) or overwritten is named
    from its header before a session exists (engine/spec/inputs.py `safetensors_problem`), not a failed session
    with safetensors' own error."""
    from engine.spec.inputs import safetensors_problem

    tensors = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
               "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}
    header = json.dumps(tensors).encode()
    whole = len(header).to_bytes(8, "little") + header + b"\0" * 24
    ckpt = tmp_path / "deployed"
    ckpt.mkdir()
    for name, text in (("config.json", json.dumps({"model_type": "clip"})), ("tokenizer.json", "{}"),
                       ("preprocessor_config.json", "{}")):
        (ckpt / name).write_text(text)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(whole)
    assert safetensors_problem(weights) is None
    for damaged, said in ((whole[:-5], "model.safetensors is cut short (19 bytes of tensors where its header lists 24)"),
                          (whole[:1000][:30], "model.safetensors is damaged (its safetensors header is unreadable"),
                          (b"x" * 100, "model.safetensors is damaged"),
                          (whole + b"\0", "model.safetensors is longer than its header says")):
        weights.write_bytes(damaged)
        assert safetensors_problem(weights).startswith(said)
    weights.write_bytes(whole[:-5])
    out = run_in_process(tmp_path, "run", "--method", "ft", "--model", "clip-tiny", "--original", str(ckpt),
                         "--data", "shapes-tiny", "--delete", "4")
    refused(out, f"--original directory {ckpt} is not a complete checkpoint", "cut short")
    no_session(tmp_path)


def test_an_input_that_cannot_be_read_is_one_line_on_every_path(tmp_path):
    """A symbolic link that loops (an image, a checkpoint's weights) raised OSError out of whichever reader met it
    first: a traceback headless, and "engine unavailable: could not validate the spec" through the engine."""
    from engine.api import data_info
    from engine.jobs import validate as engine_validate

    data = _flickr(tmp_path / "fl", json.dumps([{"image": "0.png", "caption": ["a red thing"]},
                                                 {"image": "1.png", "caption": ["a blue thing"]}]))
    (data / "1.png").symlink_to("1.png")
    said = f"{data / '1.png'} cannot be read: a symbolic link that loops; point the link at the real file"
    refused(run_in_process(tmp_path, "run", "--method", "ft", "--model", "clip-tiny", "--data", f"flickr30k:{data}",
                           "--delete", "1"), said)
    with pytest.raises(SpecError, match="a symbolic link that loops"):
        engine_validate({"method": "ft", "model": "clip-tiny", "data": f"flickr30k:{data}",
                         "deletion": {"strategy": "random", "n": 1, "seed": 0}})
    with pytest.raises(SpecError, match="a symbolic link that loops"):
        data_info(f"flickr30k:{data}")
    ckpt = tmp_path / "deployed"
    ckpt.mkdir()
    for name, text in (("config.json", json.dumps({"model_type": "clip"})), ("tokenizer.json", "{}"),
                       ("preprocessor_config.json", "{}")):
        (ckpt / name).write_text(text)
    (ckpt / "model.safetensors").symlink_to("model.safetensors")
    refused(run_in_process(tmp_path, "run", "--method", "ft", "--model", "clip-tiny", "--original", str(ckpt),
                           "--data", "shapes-tiny", "--delete", "4"),
            f"{ckpt / 'model.safetensors'} cannot be read: a symbolic link that loops")
    no_session(tmp_path)


def _flickr(root, train_json: str, extra=None):
    from PIL import Image

    root.mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(root / "0.png")
    (root / "flickr30k_train.json").write_text(train_json)
    for split in ("val", "test"):
        (root / f"flickr30k_{split}.json").write_text(json.dumps([{"image": "0.png", "caption": ["a thing"]}]))
    for name, text in (extra or {}).items():
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize("case", ["nested", "unhashable", "not an image", "escapes"])
def test_malformed_flickr30k_records_name_the_file_and_record(tmp_path, case):
    records = {
        "nested": "[" * 100_000 + "]" * 100_000,
        "unhashable": json.dumps([{"image": "0.png", "caption": "a"}, {"image": ["0.png"], "caption": "b"}]),
        "not an image": json.dumps([{"image": "0.png", "caption": "a"}, {"image": "notes.txt", "caption": "b"}]),
        "escapes": json.dumps([{"image": "../../../../etc/hostname", "caption": "a"}]),
    }[case]
    root = _flickr(tmp_path / "ds", records, {"notes.txt": "not a picture"})
    out = run_in_process(tmp_path, *RUN[:6], f"flickr30k:{root}", "--delete", "1")
    expected = {"nested": [f"{root}/flickr30k_train.json is nested too deeply"],
                "unhashable": [f"{root}/flickr30k_train.json record 2", "'image' (a path)"],
                "not an image": [f"{root}/notes.txt is not an image"],
                "escapes": ["leaves the data directory"]}[case]
    refused(out, *expected)
    no_session(tmp_path)


def test_a_non_utf8_mmbench_tsv_names_its_line(tmp_path):
    tsv = tmp_path / "general.tsv"
    tsv.write_bytes(b"index\tquestion\tA\tB\tanswer\timage\n0\tq\tx\ty\tA\t\n1\tq\xff\xfe\tx\ty\tA\t\n")
    out = run_in_process(tmp_path, "pulse", "--method", "ga", "--data", "people-tiny", "--model", "llava-tiny",
                         "--general", f"mmbench:{tsv}")
    refused(out, f"{tsv} line 3: not UTF-8 text")
    no_session(tmp_path)


def test_the_engine_side_refuses_relative_paths_and_wrong_types():
    base = {"method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "deletion": {"strategy": "random", "n": 4}}
    cases = [
        ({"deletion": [1, 2]}, "deletion"), ({"params": [1]}, "params"), ({"params": {"epochs": [1]}}, "epochs"),
        ({"params": {"md_on": ["both"]}}, "md_on"), ({"name": ["x"]}, "name"), ({"device": ["cpu"]}, "device"),
        ({"seed": 10**40}, "seed"), ({"seed": True}, "seed"), ({"method": ["ft"]}, "method"),
        ({"deletion": {"strategy": "ids", "file": "ids.txt"}}, "deletion"),
        ({"deletion": {"strategy": "query", "query": ["red"]}}, "deletion"),
        ({"data": "flickr30k:some/dir"}, "data"), ({"model": "./ckpt"}, "model"), ({"model": "ckpt"}, "model"),
    ]
    for change, field in cases:
        with pytest.raises(SpecError) as raised:
            validate({**base, **change})
        assert raised.value.field == field, (change, raised.value)
        assert "\n" not in str(raised.value)
    assert check_device("cuda:01") == "cuda:1"   # one device, one queue, however it is written


def test_paths_are_made_absolute_against_the_callers_directory(tmp_path):
    (tmp_path / "ckpt").mkdir()
    raw = {"model": "ckpt", "data": "flickr30k:ds", "general": "mmbench:g.tsv",
           "deletion": {"strategy": "ids", "file": "~/ids.txt"}}
    out = absolute_paths(raw, cwd=str(tmp_path))
    assert out["model"] == str(tmp_path / "ckpt") and out["data"] == f"flickr30k:{tmp_path / 'ds'}"
    assert out["general"] == f"mmbench:{tmp_path / 'g.tsv'}" and out["deletion"]["file"].endswith("/ids.txt")
    assert not out["deletion"]["file"].startswith("~")
    hub = absolute_paths({"model": "Salesforce/blip-itm-base-flickr"}, cwd=str(tmp_path))
    assert hub["model"] == "Salesforce/blip-itm-base-flickr"   # a hub id stays a hub id
    assert absolute_paths({"model": "clip-tiny"}, cwd=str(tmp_path))["model"] == "clip-tiny"


def test_a_secret_given_as_the_id_file_never_reaches_a_message_or_the_store(home, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s3cr3tSALT$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    out = run_in_process(home, *RUN[:-2], "--delete-ids", str(secret))
    assert out.returncode == 2 and "s3cr3t" not in out.stderr + out.stdout and "daemon" not in out.stderr
    assert f"{secret} line 1, 2: not a training unit id" in out.stderr
    for path in (home / "sessions").rglob("*.json"):
        assert "s3cr3t" not in path.read_text(errors="replace"), path



def test_bounds_are_declared_once_and_reach_the_flags_and_the_form():
    from engine.spec import COMMON_PARAMS, REQUESTS
    from workbench.param_options import option_help

    epochs = next(p for p in COMMON_PARAMS if p.name == "epochs")
    assert epochs.maximum == 10000 and epochs.bounds == ">= 1, <= 10000"
    assert option_help(epochs, "run").endswith("; >= 1, <= 10000")   # `run --help`
    with pytest.raises(SpecError, match="<= 10000") as raised:        # the New-run form checks as you type
        epochs.coerce("1000000000000", "ft")
    assert raised.value.field == "epochs"
    assert REQUESTS.maximum == 1000  # 100-request sequences (issue 26) with room to spare


LATE = [(["--lr", "1e300"], "--lr must be <= 10, got 1e+300"),
        (["--delete", "5000"], "--delete 5000 leaves no remaining data: the training set has 160 units"),
        ("ids", "line 1, 2: not a training unit id"),
        (["--delete-query", "no-such-shape-anywhere"], "no training unit has a text matching")]


@pytest.mark.parametrize("engine", [False, True], ids=["headless", "engine"])
def test_checks_that_need_the_data_come_before_a_session_or_a_queue(tmp_path, engine):
    """`--lr 1e300`, `--delete 5000` on a 160-unit world, an ID file with no valid id: exit 2, one line, the same
    line headless and with --engine (refused by the daemon's preflight: nothing queued), no session."""
    (tmp_path / "ids.txt").write_text("nope\nzzz\n")
    home = tmp_path / "home"
    try:
        for override, message in LATE:
            extra = ["--delete-ids", str(tmp_path / "ids.txt")] if override == "ids" else list(override)
            argv = [*RUN[:-2], *extra] if override == "ids" or override[0].startswith("--delete") else [*RUN, *extra]
            out = run_cli(home, *argv, *(["--engine", "--device", "cpu"] if engine else []))
            refused(out, message)
            no_session(home)
    finally:
        if engine:
            from sessions_fixtures import kill_daemon

            kill_daemon(home)


def test_every_float_parameter_has_a_stated_range_float32_holds():
    from engine.spec.params import FLOAT_MAX, FLOAT_TINY
    from engine.spec.validate import option_params

    for param in [p for kind in ("run", "pulse") for p in option_params(kind) if p.kind is float]:
        assert param.upper is not None and param.upper <= FLOAT_MAX < 3.4e38, param.name
        assert "<=" in param.bounds, param.name
        with pytest.raises(SpecError, match=f"{param.flag} must be"):
            param.coerce(1e300, "m")
        if param.minimum is None or param.minimum <= 0:
            with pytest.raises(SpecError, match="float32 holds nothing smaller"):
                param.coerce(FLOAT_TINY / 10, "m")


def test_a_hub_id_not_in_the_local_cache_is_refused_before_a_session(tmp_path, monkeypatch):
    """Nothing downloads (engine/offline.py: importing the engine sets HF_HUB_OFFLINE=1 unless it is set): a hub id
    the local cache lacks, as --model or --original, is one line and exit 2 before a session exists, not a
    failed session after five network retries. One the cache holds passes the check."""
    from engine.offline import hold_offline, hub_id_problem

    assert hold_offline({}) is True and hold_offline({"HF_HUB_OFFLINE": "0"}) is False  # the operator's is kept
    environ = {"HF_HUB_OFFLINE": ""}  # `export HF_HUB_OFFLINE=` reads as online to the hub: held like unset
    assert hold_offline(environ) is True and environ["HF_HUB_OFFLINE"] == "1"
    base = ["run", "--method", "ft", "--data", "shapes-tiny", "--delete", "4"]
    for args, said in ((["--model", "some-org/not-cached"], "model 'some-org/not-cached' is not in the local"),
                       (["--model", "clip-tiny", "--original", "some-org/not-cached"],
                        "--original 'some-org/not-cached' is not in the local")):
        refused(run_in_process(tmp_path, *base, *args), said, "downloads nothing")
        no_session(tmp_path)
    snapshot = tmp_path / "hub" / "models--some-org--cached" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abcd")
    assert hub_id_problem("some-org/cached", "model", cache_dir=str(tmp_path / "hub")) is None
    assert hub_id_problem("some-org/other", "model", cache_dir=str(tmp_path / "hub")) is not None
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # downloads allowed: the operator's choice, nothing checked
    assert hub_id_problem("some-org/other", "model", cache_dir=str(tmp_path / "hub")) is None


def test_a_time_budget_without_its_source_is_refused_before_a_session(tmp_path):
    """`--budget matched-time` with no MultiDelete session of the protocol (and no --budget-seconds) is bad input
    found before a session exists (engine.preflight), not a failed session; a study's cells are checked without
    it, since the study's own MultiDelete cell runs first and is the source."""
    from engine.preflight import preflight
    from engine.spec import validate as validate_spec

    out = run_in_process(tmp_path, *RUN, "--budget", "matched-time")
    refused(out, "--budget matched-time needs MultiDelete's seconds")
    no_session(tmp_path)
    spec = validate_spec({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "deletion": {"strategy": "random", "n": 4, "seed": 42},
                          "device": "cpu", "params": {"budget": "matched-time"}})
    preflight(spec, alone=False)  # as a study's cell: no complaint


@pytest.mark.parametrize("args, said", [
    (["run", "--model", "clip-tiny"], "error: Missing option '--method'. (see `mmul-workbench run --help`)"),
    (["run", "--method", "ft", "--lr", "abc"], "error: Invalid value for '--lr'"),
    ([*RUN[:7], "--delete-query", "purple", "unicorn"], "quote a value of several words"),
    (["nosuch"], "error: No such command 'nosuch'."),
    (["sessions", "list", "-n", "-1"], "error: Invalid value for '--limit' / '-n'"),
    (["sessions", "list", "--state", "bogus"], "error: --state bogus: a session is queued, running, finished"),
    # not offered on people data, and why (it said "No such option: --keep (Possible options: --help, --seed)")
    (["pulse", "--method", "ga", "--keep", "best"], "error: --keep is not a pulse option: people data has no validation split"),
    # a Path reads '' as '.': an unset shell variable put the model cache in the current directory
    ([*RUN, "--cache-dir", ""], "error: Invalid value for '--cache-dir' / '--artifacts': an empty path names nothing"),
    (["sessions", "import", ""], "error: Invalid value for 'FILE.json': an empty path names nothing"),
], ids=["missing", "not a number", "extra", "command", "negative", "state", "pulse keep option", "empty cache dir",
        "empty file"])
def test_what_the_parser_refuses_is_one_line_too(tmp_path, args, said):
    """The option parser's refusals (typer would draw a boxed panel of five lines) end as every bad input does:
    one line naming the option and where the options are listed, exit 2 (workbench/cli.py `main`)."""
    out = run_cli(tmp_path, *args)
    refused(out, said)


def test_a_command_group_alone_prints_its_help_and_succeeds(tmp_path):
    """`mmul-workbench sessions` asks what the group offers: its help on stdout, exit 0 (it was exit 2, the code
    of bad input, with a blank line on stderr)."""
    out = run_cli(tmp_path, "sessions")
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert "Usage: mmul-workbench sessions" in out.stdout and out.stdout.count("Usage:") == 1


def test_a_home_that_cannot_be_a_directory_is_one_line(tmp_path):
    """MMUL_HOME, a folder under it, MMUL_CACHE or --cache-dir that is (or lies under) a file: one line, exit 2,
    no session (each was a traceback, or a failed session)."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")   # read "it is a file" (a review)
    for home, said in ((tmp_path / "file", "it is a file"), (tmp_path / "file" / "sub", f"{tmp_path / 'file'} is a file"),
                       (tmp_path / "dangling", f"it is a symbolic link to {tmp_path / 'nowhere'}, which is no directory")):
        out = subprocess.run(cli("sessions", "list"), env={**cli_env(home)}, cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
        refused(out, f"the workbench's home {home} (MMUL_HOME) cannot be a directory", said)
    home = tmp_path / "home"
    home.mkdir()
    (home / "sessions").write_text("x")
    out = subprocess.run(cli("sessions", "list"), env=cli_env(home), cwd=ROOT, capture_output=True, text=True, timeout=60)
    refused(out, f"{home / 'sessions'}, the home's sessions folder, cannot be a directory")
    (home / "sessions").unlink()
    out = subprocess.run(cli("sessions", "list"), env={**cli_env(home), "MMUL_CACHE": str(tmp_path / "file")}, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    refused(out, "(MMUL_CACHE) cannot be a directory", "set MMUL_CACHE to a directory")
    refused(run_in_process(home, *RUN, "--cache-dir", str(tmp_path / "file" / "x")), "--cache-dir", "is a file")
    no_session(home)


@pytest.mark.parametrize("args, said", [
    (["--eval-sample", "2"], "--eval-sample applies to --requests K > 1"),
    (["--update", "full", "--lora-r", "8"], "--lora-r shapes the LoRA adapter of --update llm or proj+llm"),
    (["--budget", "matched-time"], "--budget matched-time needs MultiDelete's seconds"),
], ids=["eval-sample", "lora-under-full", "time-budget"])
def test_pulse_refuses_what_run_refuses_before_a_session(tmp_path, args, said):
    """The no-op options and a time budget without its source are refused on `pulse` as on `run`: one line,
    exit 2, no session (pulse used to take the first three silently, and fail the last inside a session)."""
    refused(run_in_process(tmp_path, "pulse", "--method", "ga", "--data", "people-tiny", *args), said)
    no_session(tmp_path)


def test_export_under_a_file_and_a_demo_of_no_method_are_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    refused(run_in_process(tmp_path, "data", "export", "shapes-tiny", str(tmp_path / "afile" / "sub"), "--format",
                           "coco"), "cannot be a directory", "afile is a file")
    refused(run_in_process(tmp_path, "demo", "--methods", ",", "--data", "shapes-tiny"), "--methods ',' names no method")


def test_a_run_for_another_cluster_than_the_engines_is_named_before_a_session(monkeypatch):
    """The daemon asks the bridge before a session exists (engine/daemon/ops.py): the cluster the engine is on
    against the one the run names, read with the engine's $RAY_ADDRESS. No Ray needed: the bridge's status is
    what its driver process would answer."""
    from engine.execution.cluster import RayBridge
    from engine.spec.placement import LOCAL, already_on

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    bridge = RayBridge()
    assert bridge.conflict("ray://h:1") is None  # no cluster run yet: the first one picks the cluster
    monkeypatch.setattr(bridge, "status", lambda: {"address": LOCAL})
    assert bridge.conflict("ray") is None
    assert bridge.conflict("ray://h:1") == already_on(LOCAL, "ray://h:1")
    assert already_on(LOCAL, "ray://h:1").startswith("this engine already sends runs to a local Ray instance; stop it")
    monkeypatch.setenv("RAY_ADDRESS", "ray://h:1")  # the engine's own $RAY_ADDRESS decides what "ray" means
    assert bridge.conflict("ray") == already_on(LOCAL, "ray://h:1")


def test_engine_status_names_the_runs_on_the_cluster(monkeypatch):
    """`engine status` listed the cluster's nodes but not what ran there: a cluster run is no device's job."""
    import queue

    from engine.execution.cluster import RayBridge
    import workbench.cli_engine as cli_engine

    class Driver:  # answers a status request as the driver process does
        def __init__(self, bridge):
            self.bridge = bridge

        def alive(self):
            return True

        def send(self, message):
            self.bridge._statuses.put({"address": "local", "nodes": [], "free": {"cpus": 2.0, "gpus": 0.0}})

    bridge = RayBridge()
    bridge._child = Driver(bridge)
    bridge._inboxes = {"20261207-101010-bbbb": queue.Queue(), "20261207-101010-aaaa": queue.Queue()}
    status = bridge.status()
    assert status["runs"] == ["20261207-101010-aaaa", "20261207-101010-bbbb"] and status["free"]["cpus"] == 2.0
    info = {"running": True, "answering": True, "pid": 1, "uptime": 5, "socket": "s", "log": "l", "devices": {},
            "cluster": {**status, "address": "127.0.0.1:6379",
                        "nodes": [{"address": "127.0.0.1", "alive": True, "cpus": 2.0, "gpus": 0.0}]}}
    monkeypatch.setattr(cli_engine, "engine_status", lambda: info)
    app = typer.Typer()
    app.add_typer(cli_engine.engine_app, name="engine")
    shown = run_app(app, ["engine", "status"])
    assert shown.exit_code == 0
    assert "Ray cluster 127.0.0.1:6379: 1 node(s) alive; free 2 CPU, 0 GPU; running 20261207-101010-aaaa, " \
           "20261207-101010-bbbb" in shown.stdout


def test_a_path_of_the_wrong_kind_is_named_for_what_it_is(tmp_path):
    """A checkpoint's config.json given for its folder, and a folder given for the MMBench file, read "does not
    exist"; so did a symbolic link that loops."""
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    base = ("run", "--method", "ft", "--data", "shapes-tiny", "--delete", "4")
    refused(run_in_process(tmp_path, *base, "--model", str(tmp_path / "ckpt" / "config.json")),
            f"model directory {tmp_path / 'ckpt' / 'config.json'} is a file;")
    refused(run_in_process(tmp_path, *base, "--model", "clip-tiny", "--original", str(tmp_path / "loop")),
            f"--original directory {tmp_path / 'loop'} is a symbolic link that loops;")
    refused(run_in_process(tmp_path, "pulse", "--method", "ga", "--data", "people-tiny", "--general",
                           f"mmbench:{tmp_path / 'ckpt'}"), f"MMBench file {tmp_path / 'ckpt'} is a folder;")


def test_an_unreadable_annotation_file_is_not_called_bad_json(tmp_path, monkeypatch):
    """A flickr30k_train.json this user may not read was refused as "is not valid JSON ([Errno 13] Permission
    denied ...)": it is named for what it is. (The suite may run as root, whom chmod does not stop: the read is
    refused by hand.)"""
    import errno
    from pathlib import Path

    from engine.api import data_info

    data = _flickr(tmp_path / "fl", json.dumps([{"image": "0.png", "caption": ["a red thing"]}]))
    locked = data / "flickr30k_train.json"
    read_text, open_file = Path.read_text, Path.open

    def refuse(path, *args, **kwargs):
        if path == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)

    def refuse_open(path, *args, **kwargs):
        if path == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return open_file(path, *args, **kwargs)
    monkeypatch.setattr(Path, "read_text", refuse)
    monkeypatch.setattr(Path, "open", refuse_open)
    with pytest.raises(SpecError) as refused_read:
        data_info(f"flickr30k:{data}")
    assert str(refused_read.value) == f"{locked} cannot be read: permission denied; make it readable by this user"


def test_a_data_folder_that_is_a_looping_link_is_named_so(tmp_path):
    """`data info flickr30k:LOOP` ended in a traceback (RuntimeError: Symlink loop) and `run` said it did not exist;
    `data info mmbench:FOLDER` said the folder did not exist."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "folder").mkdir()
    said = f"{tmp_path / 'loop'} is a symbolic link that loops"
    refused(run_in_process(tmp_path, "data", "info", f"flickr30k:{tmp_path / 'loop'}"), said)
    refused(run_in_process(tmp_path, "run", "--method", "ft", "--model", "clip-tiny", "--data",
                           f"flickr30k:{tmp_path / 'loop'}", "--delete", "2"), said)
    refused(run_in_process(tmp_path, "data", "info", f"mmbench:{tmp_path / 'folder'}"),
            f"MMBench file {tmp_path / 'folder'} is a folder")


def test_an_attack_on_a_run_whose_data_went_is_refused_before_a_session_exists(tmp_path):
    """It was refused only once the attack's session had begun, leaving a failed attack session each try."""
    from sessions.store import SessionStore

    gone = tmp_path / "flickr-gone"
    writer = SessionStore(tmp_path).create({"kind": "run", "method": "ft", "model": "clip-tiny", "task": "retrieval",
                                            "data": f"flickr30k:{gone}", "seed": 42, "device": "cpu",
                                            "deletion": {"strategy": "random", "n": 4, "seed": 42}})
    writer.finish("finished", summary={"metrics": {"df": {"r_mean": 50.0}}, "deletion": {"units": 4}})
    before = {row["id"] for row in SessionStore(tmp_path).list()}
    for kind in ("quantize", "relearn"):
        out = run_in_process(tmp_path, "attack", kind, writer.session_id, "--json")
        refused(out, f"session {writer.session_id}'s data {gone} does not exist")
    assert {row["id"] for row in SessionStore(tmp_path).list()} == before


def test_demo_and_study_under_json_print_a_document_when_a_run_ends_them(tmp_path, monkeypatch):
    """`run --json` printed {session, state, error} for a run that failed; `demo --json` and `study --json` printed
    nothing on stdout (a review). A run that finds bad input while running ends both."""
    import engine.api

    def image_that_does_not_decode(spec, emitter, should_stop, original_metrics=None):
        raise SpecError("flickr30k-images/1.jpg does not decode")

    monkeypatch.setattr(engine.api, "run_job", image_that_does_not_decode)
    demo = run_in_process(tmp_path, "demo", "--data", "shapes-tiny", "--delete", "4", "--methods", "ft", "--json")
    assert demo.returncode == 1 and json.loads(demo.stdout)["state"] == "failed"
    assert json.loads(demo.stdout)["error"] == "flickr30k-images/1.jpg does not decode"
    study = run_in_process(tmp_path, "study", "--methods", "ft", "--seeds", "1", "--model", "clip-tiny", "--data",
                           "shapes-tiny", "--delete", "4", "--json")
    document = json.loads(study.stdout)
    assert study.returncode == 1 and document["state"] == "failed"
    assert [(cell["method"], cell["state"]) for cell in document["cells"]] == [("ft", "failed")]


def test_engine_timeouts_out_of_range_or_nan_say_so(tmp_path):
    """`engine start --timeout nan` said "Input should be less than or equal to 3600" (a review)."""
    for args, message in ((["engine", "start", "--timeout", "nan"], "give a number of seconds from 0.1 to 3600, got nan"),
                          (["engine", "stop", "--timeout", "5000"], "give a number of seconds from 0 to 3600")):
        out = subprocess.run(cli(*args), env=cli_env(tmp_path), capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


def test_a_pulse_method_that_needs_retain_people_and_has_none_is_refused_up_front():
    """`pulse --method npo --forget 4` on people-tiny (4 pretrained people) failed after the original's evaluation
    with exit 1 and a failed session (a review); GA, and NPO without its retain term, need none."""
    from engine.preflight import check_retain_people
    from engine.spec import validate_pulse

    def spec(method, **params):
        return validate_pulse({"method": method, "model": "llava-tiny", "data": "people-tiny", "forget": 4,
                               "params": params})

    with pytest.raises(SpecError, match=r"pulse --method npo trains on the retain people \(Dr\), and --forget 4 "
                                        r"leaves none of people-tiny's 4 pretrained people; choose --forget 3 or fewer"):
        check_retain_people(spec("npo"))
    check_retain_people(spec("ga"))
    check_retain_people(spec("npo", retain_weight=0.0))
    check_retain_people({**spec("npo"), "forget": 3})


def test_run_on_people_data_names_its_own_options(tmp_path):
    """`run --data people-tiny --delete 9` said "choose --forget 1..4", an option `run` does not have (a review)."""
    base = ("run", "--method", "ga", "--model", "llava-tiny", "--data", "people-tiny")
    refused(run_in_process(tmp_path, *base, "--delete", "9"),
            "cannot forget 9 people: people-tiny has 4 pretrained people; choose --delete 1..4")
    refused(run_in_process(tmp_path, *base, "--granularity", "fact", "--delete", "25"),
            "cannot forget 25 facts in 1 request: the pretrained people of people-tiny have 20 facts; choose --delete")
    out = run_in_process(tmp_path, "run", "--method", "retrain", "--model", "llava-tiny", "--data", "people-tiny",
                         "--delete", "2")
    refused(out, "run on people data takes one of: ")
    assert "--forget" not in out.stderr and "pulse runs" not in out.stderr


def test_run_engine_exits_as_a_headless_run_when_the_engine_cancels_or_loses_its_session(monkeypatch, capsys):
    """A run the engine cancelled exited 1 where a cancelled headless run exits 130; a session folder deleted while
    the client followed it was a traceback (a review)."""
    import workbench.client.follow as follow
    from sessions.errors import UnknownSession
    from sessions.store import SessionStore
    from workbench.cli_run import follow_engine

    spec = {"method": "ft", "requests": 1}
    monkeypatch.setattr(follow, "submit_and_follow", lambda *a, **k: ("20261207-101010-abcd", "cancelled"))
    monkeypatch.setattr(SessionStore, "get", lambda self, sid: {"message": "cancelled by `engine cancel`"})
    with pytest.raises(typer.Exit) as ended:
        follow_engine(spec, detach=False, as_json=False)
    assert ended.value.exit_code == 130 and "run cancelled: cancelled by `engine cancel`" in capsys.readouterr().err

    def gone(*args, on_submitted, **kwargs):
        on_submitted("20261207-101010-abcd")
        raise UnknownSession("no session '20261207-101010-abcd'")

    monkeypatch.setattr(follow, "submit_and_follow", gone)
    with pytest.raises(typer.Exit) as ended:
        follow_engine(spec, detach=False, as_json=False, accepted_line="resume: in the engine")
    assert ended.value.exit_code == 1
    said = capsys.readouterr().err
    assert "session 20261207-101010-abcd is gone from the store while it ran" in said
    # `resume --engine`'s line is said once the engine accepts the run: before, a refusal came after it
    assert said.startswith("resume: in the engine\n")


def test_study_engine_says_the_study_goes_on_when_its_following_stops(tmp_path, monkeypatch):
    """Ctrl-C under `study --engine` exited 130 with no word, and SIGTERM 143 (a review); the study goes on in the
    engine, and the line says so and how to stop it."""
    import workbench.client.follow as follow

    def interrupted(study_id, spec, cells, on_event, accepted):
        accepted({"to_go": len(cells)})
        raise KeyboardInterrupt

    monkeypatch.setattr(follow, "submit_study_and_follow", interrupted)
    out = run_in_process(tmp_path, "study", "--engine", "--methods", "ft", "--seeds", "1", "--model", "clip-tiny",
                         "--data", "shapes-tiny", "--delete", "4")
    assert out.returncode == 130, out.stderr
    assert "stopped following; study study-" in out.stderr and "goes on in the engine" in out.stderr
    assert "`mmul-workbench engine stop` stops it" in out.stderr


def test_engine_cancel_against_an_engine_that_does_not_answer_is_exit_1(monkeypatch):
    """It printed "the engine did not answer (TimeoutError)" with exit 2, the bad-input code (a review)."""
    import workbench.client.process as process
    import workbench.cli_engine as cli_engine
    from workbench.client.errors import EngineDisconnected

    def silent(session):
        raise EngineDisconnected("the engine did not answer (TimeoutError)", "disconnected")

    monkeypatch.setattr(process, "cancel_run", silent)
    app = typer.Typer()
    app.add_typer(cli_engine.engine_app, name="engine")
    out = run_app(app, ["engine", "cancel", "20261207-101010-abcd"])
    assert out.exit_code == 1 and "the engine did not answer (stopped with SIGSTOP, or stuck)" in out.stderr


def test_runs_words_leave_other_forget_options_alone():
    """`--forget\\b` also matched `--forget-rows` (a word boundary sits before the hyphen): a review of the change."""
    from workbench.cli_pulse import as_run_says

    assert as_run_says("choose --forget 1..4, not --forget-rows all or --forget-weight 2") == \
        "choose --delete 1..4, not --forget-rows all or --forget-weight 2"


def test_a_looping_id_file_link_is_named_as_a_loop(tmp_path):
    """A --delete-ids link that loops read as "does not exist", where `data info` named the loop (a review)."""
    from engine.spec import validate

    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(SpecError, match=f"deletion ID file {tmp_path / 'a'} is a symbolic link that loops"):
        validate({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "device": "cpu", "seed": 1,
                  "deletion": {"strategy": "ids", "file": str(tmp_path / "a")}, "params": {}})
