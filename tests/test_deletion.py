"""Deletion-set selection: random by seed, ID files, caption queries, and their errors."""
import pytest

from engine.data.deletion import select_units
from engine.data.shapes import build_shapes_world
from engine.errors import SpecError


@pytest.fixture(scope="module")
def units():
    return build_shapes_world("shapes-tiny").train


def test_random_is_deterministic_by_seed(units):
    a = select_units(units, {"strategy": "random", "n": 10, "seed": 42})
    assert a == select_units(units, {"strategy": "random", "n": 10, "seed": 42})
    assert a != select_units(units, {"strategy": "random", "n": 10, "seed": 87})
    assert len(set(a)) == 10 and a == sorted(a)


@pytest.mark.parametrize("n", [len(build_shapes_world("shapes-tiny").train), 10_000])
def test_random_too_many(units, n):
    with pytest.raises(SpecError, match="choose N <"):
        select_units(units, {"strategy": "random", "n": n, "seed": 1})


def test_id_file_first_n_and_order(units, tmp_path):
    path = tmp_path / "ids.txt"
    wanted = [units[7].unit_id, units[3].unit_id, units[11].unit_id]
    path.write_text("\n".join(wanted) + "\n\n")
    assert select_units(units, {"strategy": "ids", "file": str(path), "seed": 0}) == [3, 7, 11]
    assert select_units(units, {"strategy": "ids", "file": str(path), "n": 2, "seed": 0}) == [3, 7]
    with pytest.raises(SpecError, match="more ids than the 3"):
        select_units(units, {"strategy": "ids", "file": str(path), "n": 4, "seed": 0})


def test_id_file_takes_a_byte_order_mark_and_comments(units, tmp_path):
    """A BOM (some editors write one) was read into the first id, and a `# note` line was an unknown id."""
    path = tmp_path / "ids.txt"
    path.write_text(f"# forget these two\n{units[5].unit_id}\n  # and this one\n{units[2].unit_id}\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert select_units(units, {"strategy": "ids", "file": str(path), "seed": 0}) == [2, 5]


def test_an_id_listed_twice_is_refused_with_both_lines(units, tmp_path):
    """A repeat was merged silently, so `--delete 2` on [a, a, b] took a and b where the file's first two lines
    name one unit."""
    path = tmp_path / "ids.txt"
    path.write_text(f"{units[4].unit_id}\n{units[4].unit_id}\n{units[9].unit_id}\n")
    with pytest.raises(SpecError, match=rf"lists id {units[4].unit_id} twice \(lines 1 and 2\); list each unit once"):
        select_units(units, {"strategy": "ids", "file": str(path), "n": 2, "seed": 0})
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2\nhunter2\n")
    with pytest.raises(SpecError, match=r"lists a line twice \(lines 1 and 2\)") as refused:
        select_units(units, {"strategy": "ids", "file": str(secret), "seed": 0})
    assert "hunter2" not in str(refused.value)


def test_id_file_errors(units, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{units[0].unit_id}\nshapes-images/nope.png\n")
    with pytest.raises(SpecError, match=r"unknown unit id shapes-images/nope.png \(line 2\)"):
        select_units(units, {"strategy": "ids", "file": str(bad), "seed": 0})
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(SpecError, match="lists no ids"):
        select_units(units, {"strategy": "ids", "file": str(empty), "seed": 0})
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(SpecError, match="not UTF-8"):
        select_units(units, {"strategy": "ids", "file": str(binary), "seed": 0})
    with pytest.raises(SpecError, match="does not exist"):
        select_units(units, {"strategy": "ids", "file": str(tmp_path / "missing"), "seed": 0})


def test_query_matches_caption_words(units):
    chosen = select_units(units, {"strategy": "query", "query": "Red diamond", "seed": 0})
    assert chosen
    for index in chosen:
        assert any({"red", "diamond"} <= set(c.split()) for c in units[index].captions)
    assert len(select_units(units, {"strategy": "query", "query": "red", "n": 2, "seed": 0})) == 2
    with pytest.raises(SpecError, match="no training unit"):
        select_units(units, {"strategy": "query", "query": "zebra", "seed": 0})


def test_a_query_asked_for_more_units_than_it_matches_is_refused(units):
    """`--delete-query Q --delete 10` where 4 units match ran with 4 and recorded n 10, while the same N above an ID
    file's ids is refused."""
    matching = len(select_units(units, {"strategy": "query", "query": "Red diamond", "seed": 0}))
    assert len(select_units(units, {"strategy": "query", "query": "Red diamond", "n": matching, "seed": 0})) == matching
    with pytest.raises(SpecError, match=f"--delete {matching + 1} asks for more units than the {matching} whose texts "
                                        "match 'Red diamond'"):
        select_units(units, {"strategy": "query", "query": "Red diamond", "n": matching + 1, "seed": 0})
