"""Results tables are generated from the JSON they came from (workbench/results.py): every record under
docs/results/ has its block in the results page (docs/pages/results.md), and the block is exactly what the record renders."""
from __future__ import annotations

import json

import pytest

from workbench import results

RECORDS = sorted(results.RESULTS.glob("*.json"))


def test_there_are_records():
    assert RECORDS, "docs/results/ holds the JSON the results page's tables are generated from"


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: p.stem)
def test_a_table_matches_its_json(path):
    record = json.loads(path.read_text())
    page = results.TARGET.read_text()
    assert results.block(record["name"]).search(page), f"{results.TARGET.name} has no block for {path.name}"
    assert results.refreshed(page, record) == page, (
        f"the results page's {record['name']} table differs from {path.name}: run python -m workbench.results {path}")


def test_a_changed_number_is_caught():
    record = json.loads(RECORDS[0].read_text())
    page = results.TARGET.read_text()
    first = record["document"]["runs"][0]["metrics"]
    first["df_dr_auc"] = (first.get("df_dr_auc") or 0) + 0.123
    assert results.refreshed(page, record) != page
