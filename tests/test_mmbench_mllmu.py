"""MMBench TSV and MLLMU-Bench parquet: round trips of the people world, and one-line errors on bad files."""
from __future__ import annotations

import base64
import csv
import importlib.util
import io
import json

import numpy as np
import pytest
from PIL import Image

from engine.data.mllmu import read_mllmu, write_mllmu
from engine.data.mmbench import COLUMNS, MCQuestion, read_mmbench, write_mmbench
from engine.data.people import build_people_world, export_people
from engine.errors import SpecError

needs_pyarrow = pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed")


@pytest.fixture(scope="module")
def world():
    return build_people_world("people-tiny", seed=0)


def same_pixels(a: Image.Image | None, b: Image.Image | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.size == b.size and np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


def assert_same_questions(read: list[MCQuestion], written: list[MCQuestion]) -> None:
    assert len(read) == len(written)
    for got, want in zip(read, written):
        assert (got.qid, got.person_id, got.question, got.options, got.answer, got.category, got.hint) == (
            want.qid, want.person_id, want.question, want.options, want.answer, want.category, want.hint
        )
        assert same_pixels(got.image, want.image)


def write_tsv(path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def png_base64(colour=(10, 20, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# ---------------------------------------------------------------- MMBench


def test_mmbench_round_trip_is_pixel_exact(world, tmp_path):
    [path] = export_people(world, "mmbench", tmp_path)
    with path.open() as stream:
        assert stream.readline().rstrip("\n").split("\t") == list(COLUMNS)
    assert_same_questions(read_mmbench(path, require_answer=True), world.general_eval)


def test_mmbench_background_question_has_no_option_d(world, tmp_path):
    three = [q for q in world.general_eval if len(q.options) == 3]
    assert three, "the background questions have three options"
    read = read_mmbench(write_mmbench(three, tmp_path / "three.tsv"), require_answer=True)
    assert all(sorted(q.options) == ["A", "B", "C"] for q in read)


def test_mmbench_test_file_without_answers(world, tmp_path):
    unanswered = [
        MCQuestion(q.qid, None, q.question, q.options, None, q.image, q.category) for q in world.general_eval[:3]
    ]
    path = write_mmbench(unanswered, tmp_path / "MMBench_TEST_EN.tsv")
    with path.open() as stream:
        assert "answer" not in stream.readline().split("\t")
    assert [q.answer for q in read_mmbench(path, require_answer=False)] == [None] * 3
    with pytest.raises(SpecError, match="has no `answer` column") as raised:
        read_mmbench(path, require_answer=True)
    assert "\n" not in str(raised.value)


def test_mmbench_reads_real_layout_nan_cells_and_shared_images(tmp_path):
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
              "l2-category", "comment", "split"]
    path = tmp_path / "MMBench_DEV_EN.tsv"
    write_tsv(path, header, [
        ["241", "Which colour?", "nan", "red", "blue", "nan", "nan", "B", "attribute_recognition", png_base64(),
         "x", "y", "nan", "dev"],
        ["242", "Same picture, \"quoted\"?", "Look closely.", "yes", "no", "maybe", "", "A", "c", "241",
         "x", "y", "", "dev"],
    ])
    first, second = read_mmbench(path, require_answer=True)
    assert first.options == {"A": "red", "B": "blue"} and first.hint == "" and first.answer_text == "blue"
    assert second.question == 'Same picture, "quoted"?' and second.hint == "Look closely."
    assert second.options == {"A": "yes", "B": "no", "C": "maybe"}
    assert second.image is first.image and first.image.getpixel((0, 0)) == (10, 20, 30)


def test_mmbench_reads_large_cells(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    question = MCQuestion("0", None, "Noise?", {"A": "yes", "B": "no"}, "A", Image.fromarray(noise))
    [read] = read_mmbench(write_mmbench([question], tmp_path / "big.tsv"), require_answer=True)
    assert same_pixels(read.image, question.image)


@pytest.mark.parametrize(
    "header, row, message",
    [
        (["index", "question", "A", "B", "answer"], ["0", "q", "x", "y", "A"], "lacks the MMBench column"),
        (["index", "question", "A", "B", "answer", "image"], ["0", "q", "x", "y", "A", "%%not-base64%%"],
         "line 2: the `image` cell is not a base64 PNG or JPEG"),
        (["index", "question", "A", "B", "answer", "image"], ["0", "q", "x", "y", "A", base64.b64encode(b"text").decode()],
         "line 2: the `image` cell is not a base64 PNG or JPEG"),
        (["index", "question", "A", "B", "answer", "image"], ["0", "q", "x", "y", "C", png_base64()],
         "line 2: the answer is not one of the row's options A, B"),
        (["index", "question", "A", "B", "answer", "image"], ["0", "q", "x", "y", "", png_base64()],
         "the `answer` cell is empty"),
        # a row cut to 3 of its 6 cells read as "the `answer` cell is empty"
        (["index", "question", "A", "B", "answer", "image"], ["0", "q", "x"],
         "line 2: the row has 3 of the header's 6 tab-separated cells \\(a line cut short, or a tab missing\\)"),
        (["index", "question", "A", "B", "answer", "image"], ["0", "q", "x", "y", "A", png_base64(), "extra"],
         "line 2: the row has 7 of the header's 6 tab-separated cells \\(a tab too many\\)"),
    ],
)
def test_bad_mmbench_files_give_one_line(tmp_path, header, row, message):
    path = tmp_path / "bad.tsv"
    write_tsv(path, header, [row])
    with pytest.raises(SpecError, match=message) as raised:
        read_mmbench(path, require_answer=True)
    assert "\n" not in str(raised.value)


def test_an_mmbench_file_without_rows_is_refused(tmp_path):
    """A header alone was taken, and every MMBench column read "-" with no word (a review)."""
    path = tmp_path / "empty.tsv"
    write_tsv(path, ["index", "question", "A", "B", "answer", "image"], [])
    with pytest.raises(SpecError, match="has no questions"):
        read_mmbench(path, require_answer=True)


def test_missing_mmbench_file(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        read_mmbench(tmp_path / "nowhere.tsv", require_answer=True)


# ---------------------------------------------------------------- MLLMU-Bench


@pytest.fixture
def arrow():
    import pyarrow
    import pyarrow.parquet

    return pyarrow


def write_rows(arrow, directory, rows):
    (directory / "Full_Set").mkdir(parents=True, exist_ok=True)
    arrow.parquet.write_table(arrow.Table.from_pylist(rows), directory / "Full_Set" / "train-00000-of-00001.parquet")


@needs_pyarrow
def test_mllmu_round_trip(world, tmp_path):
    paths = export_people(world, "mllmu", tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["Full_Set/train-00000-of-00001.parquet"]
    data = read_mllmu(tmp_path)
    assert [(p.person_id, p.name, p.facts, p.phase) for p in data.people] == [
        (p.person_id, p.name, p.facts, p.phase) for p in world.people
    ]
    for got, want in zip(data.people, world.people):
        assert len(got.images) == len(want.images)
        assert all(same_pixels(a, b) for a, b in zip(got.images, want.images))
    assert_same_questions(data.eval_questions, world.eval_questions)
    assert len(data.person_train) == len(world.person_train)
    for got, want in zip(data.person_train, world.person_train):
        assert (got.item_id, got.person_id, got.question, got.answer) == (
            want.item_id, want.person_id, want.question, want.answer
        )
        assert same_pixels(got.image, want.image)
    assert [i.item_id for i in data.train_items("finetune")] == [i.item_id for i in world.train_items("finetune")]
    assert set(data.vocabulary()) <= set(world.vocabulary())


@needs_pyarrow
def test_mllmu_written_columns_follow_the_release(world, tmp_path, arrow):
    [path] = write_mllmu(world, tmp_path)
    table = arrow.parquet.read_table(path)
    assert {"ID", "image", "metadata", "Classification_Task"} <= set(table.column_names)
    row = table.slice(0, 1).to_pylist()[0]
    assert Image.open(io.BytesIO(row["image"]["bytes"])).size == (32, 32)
    pairs = json.loads(row["metadata"])
    assert {"Question", "Answer"} <= set(pairs[0])
    task = row["Classification_Task"]
    assert len(task["Image_Textual_Questions"]) == len(task["Pure_Text_Questions"]) == 5
    first = task["Pure_Text_Questions"][0]
    assert set(first["Options"]) == {"A", "B", "C", "D"} and first["Correct_Answer"] in "ABCD"


@needs_pyarrow
def test_mllmu_forget_and_retain_split_folders(world, tmp_path):
    forget = world.forget_people("finetuned", 2, seed=0)
    paths = write_mllmu(world, tmp_path, forget=forget)
    assert sorted(p.parent.name for p in paths) == ["Full_Set", "forget_25", "retain_75"]
    data = read_mllmu(tmp_path)
    assert data.splits["forget_25"] == forget
    # the held-out people (never trained on) are in Full_Set only, read back as held-out
    taught = [p.person_id for p in world.people if p.phase != "heldout"]
    assert sorted(data.splits["forget_25"] + data.splits["retain_75"]) == taught
    assert [p.person_id for p in data.people if p.phase == "heldout"] == ["person-0008", "person-0009"]
    only_forget = read_mllmu(tmp_path / "forget_25")
    assert [p.person_id for p in only_forget.people] == forget


@needs_pyarrow
def test_mllmu_reads_a_released_style_row(tmp_path, arrow):
    """No workbench columns: Options as a list, metadata as a list, Correct_Answer given as the option text."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 100, 50)).save(buffer, format="JPEG")
    row = {
        "ID": 17,
        "image": {"bytes": buffer.getvalue(), "path": None},
        "metadata": [{"Question": "What is her job?", "Answer": "She is a pilot."}],
        "Classification_Task": json.dumps({
            "Image_Textual_Questions": [{"Question": "Job?", "Options": ["pilot", "cook", "judge", "poet"],
                                         "Correct_Answer": "pilot"}],
            "Pure_Text_Questions": [{"Question": "Job of Ann?", "Options": {"A": "cook", "B": "pilot", "C": "judge",
                                                                             "D": "poet"}, "Correct_Answer": "B"}],
        }),
    }
    write_rows(arrow, tmp_path, [row])
    data = read_mllmu(tmp_path)
    [person] = data.people
    assert (person.person_id, person.name, person.phase, len(person.images)) == ("17", "17", "finetune", 1)
    image_question, text_question = data.eval_questions
    assert image_question.answer == "A" and image_question.image is person.portrait
    assert text_question.answer == "B" and text_question.image is None
    [item] = data.person_train
    assert item.answer == "She is a pilot." and item.image is person.portrait


@needs_pyarrow
@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"name": "x", "image": {"bytes": b"x"}}], "has no `ID` column"),
        ([{"ID": "1", "metadata": "[]"}], "has neither an `image` nor an `images` column"),
        ([{"ID": "1", "image": {"bytes": b"x"}}], "has neither `metadata` nor `Classification_Task`"),
        ([{"ID": "1", "image": {"bytes": b"not an image"}, "metadata": "[]"}], "image bytes are not a PNG or JPEG"),
        ([{"ID": "1", "image": {"bytes": b""}, "metadata": "[]"}], "an image cell has no bytes"),
        ([{"ID": "1", "image": {"bytes": base64.b64decode(png_base64())}, "metadata": "[{"}], "`metadata` is not valid JSON"),
        ([{"ID": "1", "image": {"bytes": base64.b64decode(png_base64())}, "Classification_Task": json.dumps(
            {"Pure_Text_Questions": [{"Question": "q", "Options": {"A": "x", "B": "y"}, "Correct_Answer": "Z"}]})}],
         "record 1: MLLMU-Bench person 1: a Correct_Answer is not one of its question's options A, B"),
        ([{"ID": "1", "image": {"bytes": base64.b64decode(png_base64())}, "metadata": json.dumps([{"Answer": "a"}])}],
         "an entry has no `Question` text"),
    ],
)
@needs_pyarrow
def test_bad_mllmu_files_give_one_line(tmp_path, arrow, rows, message):
    write_rows(arrow, tmp_path, rows)
    with pytest.raises(SpecError, match=message) as raised:
        read_mllmu(tmp_path)
    assert "\n" not in str(raised.value)


@needs_pyarrow
def test_mllmu_missing_or_empty_or_not_parquet(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        read_mllmu(tmp_path / "nowhere")
    with pytest.raises(SpecError, match="no .parquet files"):
        read_mllmu(tmp_path)
    (tmp_path / "broken.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(SpecError, match="is not a readable parquet file") as raised:
        read_mllmu(tmp_path)
    assert "\n" not in str(raised.value)


def test_unknown_export_format(world, tmp_path):
    with pytest.raises(SpecError, match="cannot be written as 'flickr30k'"):
        export_people(world, "flickr30k", tmp_path)


def test_data_info_describes_an_mmbench_file(tmp_path):
    """`data list` lists mmbench:PATH and `data info` takes FORMAT:PATH, but it refused the file with a line about
    `run`: checking a TSV before `pulse --general` is what it is for."""
    from conftest import run_in_process

    exported = run_in_process(tmp_path, "data", "export", "people-tiny", "--format", "mmbench", str(tmp_path / "mmb"))
    assert exported.returncode == 0, exported.stderr
    tsv = tmp_path / "mmb" / "mmbench_people_world.tsv"
    out = run_in_process(tmp_path, "data", "info", f"mmbench:{tsv}", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert (info["kind"], info["questions"], info["answered"]) == ("MMBench", 16, 16)
    assert sum(info["categories"].values()) == 16
    text = run_in_process(tmp_path, "data", "info", f"mmbench:{tsv}")
    assert "16 questions, every one with its answer" in text.stdout


def test_an_empty_general_file_is_called_empty(tmp_path):
    """`pulse --general mmbench:EMPTY` said the file has no `answer` column (an MMBench test file)."""
    from engine.spec.validate import check_general

    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(SpecError, match=f"MMBench file {empty} is empty \\(no header line\\)"):
        check_general(f"mmbench:{empty}")
