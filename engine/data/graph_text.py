"""The `graph-text` format: one JSON record per line, the way to bring one's own graph-text data in.

    {"id": "mol-17", "graph": {"nodes": [{"type": "carbon"}, {"type": "gene", "text": "TP53"}],
                               "edges": [[0, 1], [1, 2, "double"]]},
     "texts": ["a statement about the graph", "..."], "label": "1", "split": "train"}

- `id` (string, unique): the deletion unit's id (ID files name it);
- `graph.nodes`: a list of objects with `type` (string) and optional `text` (string);
- `graph.edges`: a list of `[i, j]` or `[i, j, type]`, node indices from 0, undirected;
- `texts`: one or more strings about the graph;
- `label` (optional string): the record's relation label, shared by its texts, or `labels`: a list with
  one label per text; classification needs them on every record, retrieval ignores them;
- `split` (optional): `train`, `val` or `test`; a file that names no split at all is split by id, a
  fifth of the records (by a CRC of the id) going to test.
A malformed record is refused with the file and its line.
"""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

from engine.data.files import jsonl_records, malformed, shown
from engine.data.graph_records import Edge, Graph, GraphTextWorld, GraphUnit, Node, attach_labels
from engine.errors import SpecError

SPLITS = ("train", "val", "test")
EXPECTED = "id, graph {nodes, edges}, texts"


def parse_graph(raw, bad) -> Graph:
    if not isinstance(raw, dict) or not isinstance(raw.get("nodes"), list) or not isinstance(raw.get("edges", []), list):
        raise bad("`graph` must be an object with a `nodes` list and an `edges` list")
    nodes = []
    for number, node in enumerate(raw["nodes"]):
        if not isinstance(node, dict) or not isinstance(node.get("type"), str) or not node["type"].strip():
            raise bad(f"node {number} must be an object with a non-empty string `type`")
        text = node.get("text")
        if text is not None and not isinstance(text, str):
            raise bad(f"node {number} has a `text` that is not a string")
        nodes.append(Node(node["type"], text or None))
    if not nodes:
        raise bad("`graph.nodes` is empty; a graph needs at least one node")
    edges = []
    for number, edge in enumerate(raw.get("edges", [])):
        ends_ok = isinstance(edge, list) and len(edge) in (2, 3) and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(nodes) for v in edge[:2])
        if not ends_ok or (len(edge) == 3 and edge[2] is not None and not isinstance(edge[2], str)):
            got = (f"got {shown(edge)}" if isinstance(edge, list) and len(edge) in (2, 3)
                   else f"got a {type(edge).__name__}" + (f" of {len(edge)}" if isinstance(edge, list) else ""))
            raise bad(f"edge {number} must be [i, j] or [i, j, type] with node indices 0..{len(nodes) - 1}, {got}")
        edges.append(Edge(edge[0], edge[1], edge[2] if len(edge) == 3 else None))
    return Graph(nodes, edges)


def parse_record(path: Path, where: str, record: dict) -> tuple[GraphUnit, str | None]:
    def bad(problem: str) -> SpecError:
        return malformed(path, where, problem)

    unit_id = record.get("id")
    if not isinstance(unit_id, str) or not unit_id.strip():
        raise bad(f"needs a non-empty string `id` (records have {EXPECTED})")
    texts = record.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise bad("`texts` must be a non-empty list of non-empty strings")
    text_labels = None
    if "label" in record and "labels" in record:
        raise bad("give `label` (one for all texts) or `labels` (one per text), not both")
    if record.get("label") is not None:
        text_labels = [label_name(record["label"], "`label`", bad)] * len(texts)
    elif record.get("labels") is not None:
        labels = record["labels"]
        if not isinstance(labels, list) or len(labels) != len(texts):
            raise bad(f"`labels` must be a list with one label per text ({len(texts)})")
        text_labels = [label_name(label, f"label {number}", bad) for number, label in enumerate(labels)]
    split = record.get("split")
    if split is not None and split not in SPLITS:
        raise bad(f"`split` must be one of {', '.join(SPLITS)}")
    return GraphUnit(unit_id, parse_graph(record.get("graph"), bad), list(texts), text_labels=text_labels), split


def label_name(label, what: str, bad) -> str:
    if isinstance(label, bool) or not isinstance(label, (str, int)):
        raise bad(f"{what} must be a string (or a whole number), got a {type(label).__name__}")
    return str(label)


def read_graph_text(location: str | Path, name: str | None = None) -> GraphTextWorld:
    path = Path(location).expanduser()
    if not path.is_file():
        raise SpecError(f"graph-text file {path} does not exist; give graph-text:FILE.jsonl", field="data")
    units, splits, seen = [], [], {}
    for where, record in jsonl_records(path, EXPECTED):
        unit, split = parse_record(path, where, record)
        if unit.unit_id in seen:
            raise malformed(path, where, f"id {unit.unit_id!r} repeats the record at {seen[unit.unit_id]}")
        seen[unit.unit_id] = where
        units.append(unit)
        splits.append(split)
    if not units:
        raise SpecError(f"{path} holds no records; expected one JSON object per line with {EXPECTED}")
    split_by_id = all(split is None for split in splits)
    if split_by_id:
        splits = ["test" if zlib.crc32(u.unit_id.encode()) % 5 == 0 else "train" for u in units]
    by_split = {s: [u for u, chosen in zip(units, splits) if (chosen or "train") == s] for s in SPLITS}
    labelled = [u.text_labels is not None for u in units]
    classes: tuple[str, ...] = ()
    if all(labelled):
        classes = tuple(sorted({name for u in units for name in u.text_labels}))
        if len(classes) < 2:  # it trained, learned nothing and failed as "no gradient reached the weights" (a review)
            raise SpecError(f"{path}: every record has the label {classes[0]!r}; classification needs two labels at "
                            "least (or leave `label` out of every record for retrieval)")
        attach_labels(units, classes)
    elif any(labelled):
        first = next(i for i, has in enumerate(labelled) if not has)
        raise SpecError(f"{path}: record {units[first].unit_id!r} has no `label` while others have one; label "
                        "every record (classification) or none (retrieval)")
    return GraphTextWorld(name=name or f"graph-text:{path.name}", train=by_split["train"], val=by_split["val"],
                          test=by_split["test"], classes=classes,
                          meta={"source": str(path), **({"split": "by id"} if split_by_id else {})})


def unit_record(unit: GraphUnit, split: str) -> dict:
    nodes = [{"type": n.type, **({"text": n.text} if n.text else {})} for n in unit.graph.nodes]
    edges = [[e.source, e.target] + ([e.type] if e.type else []) for e in unit.graph.edges]
    record = {"id": unit.unit_id, "graph": {"nodes": nodes, "edges": edges}, "texts": list(unit.texts)}
    if unit.text_labels is not None and len(set(unit.text_labels)) == 1:
        record["label"] = unit.text_labels[0]
    elif unit.text_labels is not None:
        record["labels"] = list(unit.text_labels)
    return {**record, "split": split}


def write_graph_text(world: GraphTextWorld, directory: str | Path) -> list[Path]:
    """Write the world as one `graph-text` JSONL file (every split, each record naming its own)."""
    root = Path(directory).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{world.name}.jsonl"
    partial = path.with_suffix(".jsonl.partial")
    with partial.open("w", encoding="utf-8") as stream:
        for split in SPLITS:
            for unit in world.split(split):
                stream.write(json.dumps(unit_record(unit, split)) + "\n")
    os.replace(partial, path)
    return [path]
