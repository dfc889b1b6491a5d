"""The model caches key on content and tolerate concurrent producers (engine/cache.py).

As the operator met it: two Flickr30K folders both called `ds` with different content shared one original
(the second run silently used the first's model); two cold runs started together in a fresh home trained
the original twice and the slower one failed renaming into the cache.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from engine.cache import FINGERPRINT_FILE, entry_matches
from engine.data.fingerprint import data_fingerprint
from engine.protocols.originals import original_dir

from conftest import ROOT, cli, cli_env, run_in_process
from sessions_fixtures import small_flickr


class FakeModel:
    def __init__(self, trained: list):
        self.trained = trained

    def save(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "config.json").write_text(json.dumps({"trained": len(self.trained)}))


class FakeTask:
    """What `original_dir` needs of a task; training blocks until the test lets it finish."""

    name = "retrieval"
    data_name = "shapes-tiny"

    def __init__(self, fingerprint="abc", gate: threading.Event | None = None):
        self.data_fingerprint = fingerprint
        self.trained: list[int] = []
        self.started = threading.Event()
        self.gate = gate

    def original_recipe(self) -> dict:
        return {"lr": 1e-3, "epochs": 1}

    def load(self, source, device):
        return FakeModel(self.trained)

    def train_original(self, model, trainer) -> None:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        self.trained.append(1)


SPEC = {"model": "clip-tiny", "data": "shapes-tiny", "seed": 3}


def test_concurrent_producers_train_once_and_neither_fails(tmp_path):
    gate, waiting = threading.Event(), threading.Event()
    first, second = FakeTask(gate=gate), FakeTask()
    results: dict[str, Path] = {}

    def emit_for(name):
        def emit(kind, **fields):
            if kind == "log" and "waiting for another run" in fields["message"]:
                waiting.set()
        return emit

    a = threading.Thread(target=lambda: results.update(a=original_dir(first, SPEC, "cpu", emit_for("a"), lambda: False, tmp_path)))
    a.start()
    assert first.started.wait(30)                       # the first producer is training
    b = threading.Thread(target=lambda: results.update(b=original_dir(second, SPEC, "cpu", emit_for("b"), lambda: False, tmp_path)))
    b.start()
    assert waiting.wait(30)                             # the second waits for it instead of training too
    gate.set()
    a.join(30)
    b.join(30)
    assert results["a"] == results["b"] and first.trained == [1] and second.trained == []
    entries = [p for p in (tmp_path / "originals").iterdir() if not p.name.startswith(".")]
    assert entries == [results["a"]] and (results["a"] / FINGERPRINT_FILE).exists()


def test_a_waiting_run_can_be_cancelled(tmp_path):
    from engine.errors import Cancelled

    gate, waiting, stop = threading.Event(), threading.Event(), threading.Event()
    first = FakeTask(gate=gate)
    a = threading.Thread(target=lambda: original_dir(first, SPEC, "cpu", lambda *a, **k: None, lambda: False, tmp_path))
    a.start()
    assert first.started.wait(30)

    def emit(kind, **fields):
        if "waiting for another run" in fields.get("message", ""):
            waiting.set()
            stop.set()

    with pytest.raises(Cancelled):
        original_dir(FakeTask(), SPEC, "cpu", emit, stop.is_set, tmp_path)
    gate.set()
    a.join(30)


def test_an_entry_made_from_other_inputs_is_never_reused(tmp_path):
    path = original_dir(FakeTask("data-one"), SPEC, "cpu", lambda *a, **k: None, lambda: False, tmp_path)
    other = FakeTask("data-two")                        # same name, same model, other content
    assert original_dir(other, SPEC, "cpu", lambda *a, **k: None, lambda: False, tmp_path) != path
    assert other.trained == [1]
    (path / FINGERPRINT_FILE).write_text('{"data": "tampered"}')   # an entry that does not say what it is
    again = FakeTask("data-one")
    assert original_dir(again, SPEC, "cpu", lambda *a, **k: None, lambda: False, tmp_path) == path
    assert again.trained == [1] and json.loads((path / FINGERPRINT_FILE).read_text())["data"] == "data-one"


def test_a_cached_original_with_damaged_weights_is_trained_again_with_a_warning(tmp_path):
    """A cut model.safetensors in the cache failed every later run on it with `SafetensorError: ... incomplete
    metadata`, naming neither the file nor a fix (a review); the entry is no entry now, and is made again."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    path = original_dir(FakeTask("data-one"), SPEC, "cpu", lambda *a, **k: None, lambda: False, tmp_path)
    weights = path / "model.safetensors"
    weights.write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
    assert entry_matches(path, json.loads((path / FINGERPRINT_FILE).read_text()))  # whole: reused
    weights.write_bytes(weights.read_bytes()[:-2])                                  # cut short
    said, again = [], FakeTask("data-one")
    assert original_dir(again, SPEC, "cpu", lambda kind, **event: said.append(event), lambda: False, tmp_path) == path
    assert again.trained == [1] and not weights.exists()    # trained again; the new entry's save wrote no weights
    assert any(event.get("level") == "warning" and "is damaged (model.safetensors is cut short" in event["message"]
               and event["message"].endswith("training it again") for event in said)


def test_an_original_trained_at_another_cpu_thread_count_is_another_entry(tmp_path):
    """An original trained at 1 thread and one at 2 differ in their last bits; both were cached under one key, so
    a run at 2 threads gave other numbers from the one cached at 1 than from one it trained itself."""
    import torch

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = original_dir(FakeTask("data-one"), {**SPEC, "device": "cpu"}, "cpu", lambda *a, **k: None,
                           lambda: False, tmp_path)
        torch.set_num_threads(2)
        task = FakeTask("data-one")
        two = original_dir(task, {**SPEC, "device": "cpu"}, "cpu", lambda *a, **k: None, lambda: False, tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert one != two and task.trained == [1]
    assert json.loads((two / FINGERPRINT_FILE).read_text())["cpu"]["threads"] == 2


def _flickr(directory: Path, units: int = 6) -> Path:
    from PIL import Image

    directory.mkdir(parents=True)
    for split, first in (("train", 0), ("val", units), ("test", units + 2)):
        count = units if split == "train" else 2
        records = []
        for i in range(first, first + count):
            Image.new("RGB", (16, 16), (i * 20 % 255, 0, 0)).save(directory / f"{i}.png")
            records += [{"image": f"{i}.png", "caption": f"a red thing number {i}"}]
        (directory / f"flickr30k_{split}.json").write_text(json.dumps(records))
    return directory


def test_data_fingerprint_follows_content_not_name(tmp_path):
    one, two = _flickr(tmp_path / "a" / "ds"), _flickr(tmp_path / "b" / "ds")
    assert data_fingerprint("shapes-tiny") == data_fingerprint("shapes-tiny") != data_fingerprint("shapes")
    ref = f"flickr30k:{one}"
    before = data_fingerprint(ref)
    assert before == data_fingerprint(ref)
    text = (two / "flickr30k_train.json").read_text().replace("red", "blue")
    (two / "flickr30k_train.json").write_text(text)     # same name, other captions
    assert data_fingerprint(f"flickr30k:{two}") != before
    stat = (one / "flickr30k_test.json").stat()
    (one / "flickr30k_test.json").write_text((one / "flickr30k_test.json").read_text().replace("red", "tan"))
    os.utime(one / "flickr30k_test.json", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert data_fingerprint(ref) != before              # edited in place, even with the old mtime
    before = data_fingerprint(ref)
    from PIL import Image

    Image.new("RGB", (16, 16), (1, 2, 3)).save(one / "3.png")   # an image replaced
    assert data_fingerprint(ref) != before


def test_tiny_models_key_on_the_vocabulary(tmp_path, monkeypatch):
    import engine.models.registry as registry

    built = []

    class Builder:
        @staticmethod
        def build_tiny(vocabulary, image_size, seed, directory, **options):
            built.append(list(vocabulary))
            (Path(directory) / "config.json").write_text("{}")

    monkeypatch.setattr(registry, "adapter_class", lambda family, task: Builder)

    class World:
        name, image_size = "flickr30k:ds", 16

        def __init__(self, words):
            self.words = words

        def vocabulary(self):
            return self.words

    a = registry.tiny_model_dir("clip-tiny", World(["a", "red", "thing"]), 1, tmp_path, "retrieval")
    b = registry.tiny_model_dir("clip-tiny", World(["a", "blue", "thing"]), 1, tmp_path, "retrieval")
    assert a != b and entry_matches(a, json.loads((a / FINGERPRINT_FILE).read_text()))
    assert registry.tiny_model_dir("clip-tiny", World(["a", "red", "thing"]), 1, tmp_path, "retrieval") == a
    assert len(built) == 2


def _run(home, *args, cwd=ROOT):
    return subprocess.Popen(cli(*args), env=cli_env(home), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_two_same_named_datasets_get_their_own_original(home, tmp_path):
    one, two = small_flickr(tmp_path / "a" / "ds"), small_flickr(tmp_path / "b" / "ds", shuffle=True)
    docs = []
    for folder in (one, two):  # in this process: what is cached is the point, not the process
        done = run_in_process(home, "run", "--method", "ft", "--model", "clip-tiny", "--data", f"flickr30k:{folder}",
                              "--delete", "4", "--epochs", "1", "--json")
        assert done.returncode == 0, done.stderr
        docs.append(json.loads(done.stdout))
    assert docs[0]["original_checkpoint"] != docs[1]["original_checkpoint"]
    assert docs[0]["fingerprints"]["data"] != docs[1]["fingerprints"]["data"]
    assert docs[0]["original_metrics"] != docs[1]["original_metrics"]


def test_two_cold_runs_at_once_in_a_fresh_home(tmp_path):
    data = small_flickr(tmp_path / "ds")
    args = ("run", "--method", "ft", "--model", "clip-tiny", "--data", f"flickr30k:{data}", "--delete", "4",
            "--epochs", "1", "--seed", "5", "--json")
    procs = [_run(tmp_path, *args) for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    docs = [json.loads(out) for out, _ in outputs]
    assert docs[0]["original_checkpoint"] == docs[1]["original_checkpoint"]
    assert docs[0]["metrics"] == docs[1]["metrics"]
    originals = [p for p in (tmp_path / "cache" / "originals").iterdir() if not p.name.startswith(".")]
    assert len(originals) == 1
    from sessions.store import SessionStore

    logs = [[e["message"] for e in SessionStore(tmp_path).events(doc["session"]) if e["kind"] == "log"] for doc in docs]
    trained = [any(m.startswith("original model trained in") for m in log) for log in logs]
    assert sum(trained) == 1, logs                      # one trained it, the other waited and reused it
    assert any("reusing" in m for m in logs[trained.index(False)])
    for path in [tmp_path / "sessions", tmp_path / "cache", *(tmp_path / "sessions").rglob("*"),
                 *(tmp_path / "cache").rglob("*"), *(tmp_path / "engine").rglob("*")]:
        assert path.stat().st_mode & 0o077 == 0, path   # the CLI's umask: the operator's alone
