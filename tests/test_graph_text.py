"""The graph-text JSONL format: the built-in world written and read back, a file written by hand (by someone
else) accepted, malformed records refused with the file and line; and the graph world through the CLI."""
import json

import pytest

from conftest import run_in_process
from engine.data.graph_text import read_graph_text, write_graph_text
from engine.data.graph_world import build_graph_world
from engine.errors import SpecError


def test_world_round_trip(tmp_path):
    world = build_graph_world("graph-tiny")
    [path] = write_graph_text(world, tmp_path)
    back = read_graph_text(path)
    assert back.classes == world.classes
    for split in ("train", "val", "test"):
        ours, theirs = world.split(split), back.split(split)
        assert [u.unit_id for u in theirs] == [u.unit_id for u in ours]
        for a, b in zip(ours, theirs):
            assert (b.texts, b.labels, b.text_labels) == (a.texts, a.labels, a.text_labels)
            assert b.graph == a.graph
    assert not list(tmp_path.glob("*.partial"))


FOREIGN = [
    {"id": "PGR-1", "graph": {"nodes": [{"type": "gene", "text": "TP53"}, {"type": "phenotype", "text": "tumour"}],
                              "edges": [[0, 1, "associated with"]]},
     "texts": ["TP53 mutations are linked to tumour growth", "tumour suppression fails without TP53"], "label": "1"},
    {"id": "PGR-2", "graph": {"nodes": [{"type": "gene", "text": "BRCA1"}, {"type": "phenotype"}], "edges": [[1, 0]]},
     "texts": ["BRCA1 is not related to hearing loss", "BRCA1 causes hearing loss"], "labels": ["1", 0]},
    {"id": "PGR-3", "graph": {"nodes": [{"type": "gene"}], "edges": []}, "texts": ["a lone gene"], "label": "0"},
]


def write_lines(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_a_foreign_file_is_read(tmp_path):
    path = write_lines(tmp_path / "pgr.jsonl", [FOREIGN[0], "", FOREIGN[1], FOREIGN[2]])  # a blank line is fine
    world = read_graph_text(path)
    units = {u.unit_id: u for u in world.train + world.val + world.test}
    assert set(units) == {"PGR-1", "PGR-2", "PGR-3"} and world.classes == ("0", "1")
    first = units["PGR-1"]
    assert first.graph.nodes[0].text == "TP53" and first.graph.edges[0].type == "associated with"
    assert first.labels == [1, 1] and units["PGR-2"].graph.edges[0].type is None
    assert units["PGR-2"].labels == [1, 0]  # `labels`: one per text
    # no record names a split: a fifth of the ids (by CRC) are test, the same on every read
    assert [u.unit_id for u in read_graph_text(path).test] == [u.unit_id for u in world.test]
    assert "tp53" in world.vocabulary() and "associated" in world.vocabulary()

    unlabelled = write_lines(tmp_path / "retrieval.jsonl", [{k: v for k, v in r.items() if k not in ("label", "labels")} for r in FOREIGN])
    assert read_graph_text(unlabelled).classes == ()


BAD = [
    ("not json", "not JSON"),
    ('["a list"]', "expected an object"),
    ({"graph": {"nodes": [{"type": "a"}], "edges": []}, "texts": ["t"]}, "non-empty string `id`"),
    ({"id": "x", "graph": {"nodes": [{"type": "a"}], "edges": []}, "texts": []}, "`texts` must be a non-empty list"),
    ({"id": "x", "graph": {"nodes": [], "edges": []}, "texts": ["t"]}, "`graph.nodes` is empty"),
    ({"id": "x", "graph": {"nodes": [{"text": "no type"}], "edges": []}, "texts": ["t"]}, "node 0 must be"),
    ({"id": "x", "graph": {"nodes": [{"type": "a"}], "edges": [[0, 5]]}, "texts": ["t"]},
     "edge 0 must be [i, j] or [i, j, type] with node indices 0..0, got [0, 5]"),  # it said "got a list"
    ({"id": "x", "graph": {"nodes": [{"type": "a"}], "edges": [[0]]}, "texts": ["t"]}, "got a list of 1"),
    ({"id": "x", "graph": {"nodes": [{"type": "a"}], "edges": []}, "texts": ["t"], "split": "dev"}, "`split` must be"),
    ({"id": "PGR-1", "graph": {"nodes": [{"type": "a"}], "edges": []}, "texts": ["t"], "label": "0"}, "repeats the record at line 1"),
    ({"id": "x", "graph": {"nodes": [{"type": "a"}], "edges": []}, "texts": ["t", "u"], "labels": ["0"]}, "one label per text (2)"),
    ({"id": "x", "graph": {"nodes": [{"type": "a"}], "edges": []}, "texts": ["t"], "labels": [None]}, "label 0 must be a string"),
]


@pytest.mark.parametrize("record,message", BAD)
def test_malformed_records_name_the_file_and_line(tmp_path, record, message):
    path = write_lines(tmp_path / "bad.jsonl", [FOREIGN[0], record])
    with pytest.raises(SpecError) as caught:
        read_graph_text(path)
    text = str(caught.value)
    assert text.startswith(f"{path} line 2: ") and message in text and "\n" not in text


def test_half_labelled_file_is_refused(tmp_path):
    path = write_lines(tmp_path / "half.jsonl", [FOREIGN[0], {k: v for k, v in FOREIGN[1].items() if k != "labels"}])
    with pytest.raises(SpecError, match="'PGR-2' has no `label` while others have one"):
        read_graph_text(path)


def test_a_file_with_one_label_is_refused(tmp_path):
    """Every record labelled `same`: the run trained on one class and failed as "no gradient reached the 74 trainable
    weights", keeping a failed session (a review)."""
    graph = {"nodes": [{"type": "a"}], "edges": []}
    path = write_lines(tmp_path / "one.jsonl", [{"id": f"g{i}", "graph": graph, "texts": ["t"], "label": "same"}
                                               for i in range(3)])
    with pytest.raises(SpecError, match="every record has the label 'same'; classification needs two labels at least"):
        read_graph_text(path)


def run_cli(home, *args):
    return run_in_process(home, *args)


def test_graph_world_end_to_end(home, tmp_path):
    """Classification on graph-tiny (the world's default task), two requests; then the world exported as
    graph-text and read back by a run deleting an ID file's units from the first run's original, given as the
    deployed model; a model that reads images is refused with one line. (Retrieval on graphs runs through the
    same pipeline; tests/test_gcn_bert.py checks its adapter: its original costs minutes on a loaded 2-core
    machine.)"""
    out = run_cli(home, "run", "--method", "multidelete", "--model", "gcn-bert-tiny", "--data", "graph-tiny",
                  "--delete", "6", "--requests", "2", "--epochs", "1", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert 0.0 <= result["metrics"]["df_dr_auc"] <= 1.0 and "accuracy" in result["metrics"]["test"]
    assert set(result["metrics"]["mia"]) >= {"df_member_rate", "auc"} and len(result["requests"]) == 2

    export = run_cli(home, "data", "export", "graph-tiny", str(tmp_path), "--format", "graph-text", "--json")
    assert export.returncode == 0, export.stderr
    [path] = json.loads(export.stdout)["files"]
    ids = tmp_path / "ids.txt"
    ids.write_text("graphs/000003\ngraphs/000010\ngraphs/000011\n")
    # the model to unlearn is the one trained on graph-tiny above, deployed: the file holds the same graphs
    deployed = result["original"]["model"]
    out = run_cli(home, "run", "--method", "ft", "--model", "gcn-bert-tiny", "--original", deployed, "--data",
                  f"graph-text:{path}", "--task", "classification", "--delete-ids", str(ids), "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["deletion"]["units"] == 3 and "accuracy" in result["metrics"]["test"]
    assert result["original"] == {**result["original"], "model": deployed, "given": True}
    wrong = run_cli(home, "run", "--method", "ft", "--model", "gcn-bert-tiny", "--data", "graph-tiny",
                    "--task", "multiple_choice", "--delete", "3")
    assert wrong.returncode == 2 and "--task multiple_choice does not fit graph-tiny" in wrong.stderr

    refused = run_cli(home, "run", "--method", "ft", "--model", "clip-tiny", "--data", "graph-tiny", "--delete", "3")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "reads images and text, but graph-tiny holds graphs" in refused.stderr


def test_a_line_that_is_not_utf8_is_named_by_its_line(tmp_path):
    """It said "can't decode byte 0xe9 in position 117202": no line to look at (a review)."""
    import json

    graph = {"nodes": [{"type": "a"}], "edges": []}
    good = json.dumps({"id": "g1", "graph": graph, "texts": ["t"]}).encode()
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(good + b"\n" + good.replace(b'"t"', b'"caf\xe9"') + b"\n")
    with pytest.raises(SpecError, match=r"latin1.jsonl line 2: byte 0xe9 is not UTF-8 text; save the file as UTF-8"):
        read_graph_text(path)
