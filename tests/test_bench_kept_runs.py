"""bench/kept_runs.py: a grid re-run reuses a kept document only while the engine's source is the same."""
import json
import os

from bench import kept_runs


def test_a_kept_document_is_reused_until_the_engine_changes(tmp_path, monkeypatch):
    env = {**os.environ, "MMUL_HOME": str(tmp_path)}
    first = kept_runs.run_kept(["methods", "--json"], env, "keep")
    assert any(m["name"] == "multidelete" for m in first["methods"])
    (kept,) = (tmp_path / "keep").iterdir()
    kept.write_text(json.dumps({"marker": "reused"}))  # what a re-run must hand back unchanged
    assert kept_runs.run_kept(["methods", "--json"], env, "keep") == {"marker": "reused"}

    monkeypatch.setattr(kept_runs, "engine_source_digest", lambda: "another engine")
    again = kept_runs.run_kept(["methods", "--json"], env, "keep")
    assert "marker" not in again and len(list((tmp_path / "keep").iterdir())) == 2


def test_the_engine_digest_follows_the_source():
    assert kept_runs.engine_source_digest() == kept_runs.engine_source_digest()
    assert len(kept_runs.engine_source_digest()) == 40
