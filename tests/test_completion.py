"""Shell completion (workbench/completion.py): the callbacks offer the catalogue's names and the store's session
ids, cheaply and without torch; and one TAB end to end, through typer's completion variables in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT, cli, cli_env
from engine import spec as specs
from sessions.store import SessionStore
from workbench import completion


def values(completions) -> list[str]:
    return [value for value, _ in completions]


def test_catalogue_names():
    assert values(completion.complete_method("mu")) == ["multidelete"]
    assert set(values(completion.complete_method(""))) >= set(specs.METHODS) | {"kl_min"}  # names and aliases
    assert "kl_min" in dict(completion.complete_method("kl"))  # its own method, no longer an alias of ga_klr
    assert set(values(completion.complete_pulse_method(""))) == set(specs.PULSE_METHODS) | {"kl_min"}
    assert values(completion.complete_model("cl")) == ["clip-tiny"]
    assert values(completion.complete_data("shapes-ve")) == ["shapes-ve", "shapes-ve-tiny"]
    assert values(completion.complete_data("fl")) == ["flickr30k:"]  # a format, then the shell completes the path
    assert values(completion.complete_task("")) == ["retrieval", "classification"]
    assert values(completion.complete_device("cu")) == ["cuda", "cuda:"]
    # every help fits on one line of a completion menu
    assert all(len(text) <= completion.HELP_WIDTH for _, text in completion.complete_data(""))
    assert completion.brief("built-in coloured shapes, 1500/100/300 images x 5 captions and then some more") \
        == "built-in coloured shapes, 1500/100/300 images x…"


def test_a_method_list_completes_its_last_name():
    assert values(completion.complete_method_list("retrain,ft,mu")) == ["retrain,ft,multidelete"]
    assert values(completion.complete_method_list("retrain,f")) == ["retrain,ft"]
    assert values(completion.complete_method_list("ft,retrain,f")) == []  # no method twice
    assert values(completion.complete_method_list("ret")) == ["retrain"]


def test_session_ids_newest_first_by_prefix_or_part(tmp_path, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    assert completion.complete_session("") == []  # no store yet: nothing, no error
    store = SessionStore(tmp_path)
    ids = []
    for method in ("ft", "npo"):
        writer = store.create({"method": method, "model": "clip-tiny", "data": "shapes-tiny"})
        writer.finish("finished")
        ids.append(writer.session_id)
    newest_first = sorted(ids, reverse=True)
    assert values(completion.complete_session("")) == newest_first
    assert dict(completion.complete_session(""))[ids[1]] == "finished npo clip-tiny shapes-tiny"
    assert values(completion.complete_session(os.path.commonprefix(ids))) == newest_first
    assert values(completion.complete_session(ids[1][-4:])) == [ids[1]]  # a suffix, as the CLI accepts
    assert completion.complete_session("nothing-like-it") == []
    # a damaged catalog: the session directories still complete, and the catalog is left as it is
    store.catalog_path.write_text("{not json")
    assert sorted(values(completion.complete_session(""))) == sorted(ids)
    assert store.catalog_path.read_text() == "{not json"


def test_study_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    assert completion.complete_study("") == []
    (tmp_path / "studies").mkdir()
    for name in ("study-0123456789ab", "study-fedcba987654"):
        (tmp_path / "studies" / f"{name}.json").write_text(json.dumps({"schema": 1}))
    assert values(completion.complete_study("study-f")) == ["study-fedcba987654"]


def test_bash_completion_end_to_end_without_torch(tmp_path):
    """What bash runs on TAB after `mmul-workbench replay <id prefix>` and `run --method mu`."""
    writer = SessionStore(tmp_path).create({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny"})
    writer.finish("finished")
    probe = ("import runpy, sys; sys.argv = ['mmul-workbench']\n"
             "try:\n    runpy.run_module('workbench.cli', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print('torch loaded' if 'torch' in sys.modules else 'no torch', file=sys.stderr)")
    for line, cword, expected in ((f"mmul-workbench replay {writer.session_id[:9]}", 2, [writer.session_id]),
                                  ("mmul-workbench run --method mu", 3, ["multidelete"])):
        env = dict(cli_env(tmp_path), _MMUL_WORKBENCH_COMPLETE="complete_bash", COMP_WORDS=line, COMP_CWORD=str(cword))
        out = subprocess.run([cli()[0], "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == expected and out.stderr.strip() == "no torch", (line, out.stdout, out.stderr)


def test_install_and_show_completion_are_offered():
    from typer.testing import CliRunner

    from workbench.cli import app

    shown = CliRunner().invoke(app, ["--help"], prog_name="mmul-workbench")
    assert "--install-completion" in shown.stdout and "--show-completion" in shown.stdout
    # the script as a user gets it, from the command itself typed at a bash prompt (in-process, under a loaded full
    # suite, typer once answered this with exit 1 and no output after other tests had driven the app): typer names
    # the shell from the process's parents, not from an argument, so the parent is bash as at a user's prompt (the
    # trailing `exit` keeps bash from exec'ing the command in its own place; an orphaned pytest has no shell above it)
    script = subprocess.run(["bash", "-c", '"$0" -m workbench.cli --show-completion; exit $?', sys.executable], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert script.returncode == 0, script.stderr[-2000:]
    assert "_MMUL_WORKBENCH_COMPLETE=complete_bash" in script.stdout and "complete -o default" in script.stdout
