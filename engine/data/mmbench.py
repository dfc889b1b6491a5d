"""Four-option questions and the MMBench TSV that carries them (ANCHORS.md, section 4).

Columns `index, question, hint, A, B, C, D, answer, category, l2-category, source, comment, image[, split]`,
tab-separated, `image` a base64 PNG or JPEG. An empty or "nan" hint or option is absent, and test files
have no `answer` column. As in the released MMBench files, an `image` cell may instead hold the `index` of
an earlier row whose image it shares.
"""
from __future__ import annotations

import base64
import binascii
import csv
import io
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from engine.errors import SpecError

LETTERS = ("A", "B", "C", "D")
COLUMNS = ("index", "question", "hint", *LETTERS, "answer", "category", "l2-category", "source", "comment", "image")
REQUIRED_COLUMNS = ("index", "question", "A", "B", "image")
SOURCE = "mmul-workbench"
ABSENT = ("", "nan")

# Real MMBench rows hold whole base64 images in one cell, beyond csv's 128 KiB default.
csv.field_size_limit(sys.maxsize)


@dataclass
class MCQuestion:
    """A question with two to four lettered options; `answer` is None where a test file withholds it."""

    qid: str
    person_id: str | None
    question: str
    options: dict[str, str]
    answer: str | None
    image: Image.Image | None = None
    category: str = ""
    hint: str = ""

    @property
    def with_image(self) -> bool:
        return self.image is not None

    @property
    def answer_text(self) -> str | None:
        return None if self.answer is None else self.options[self.answer]


def encode_image(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_mmbench(questions: list[MCQuestion], path: str | Path) -> Path:
    """Write atomically; the `answer` column is left out when no question has an answer (a test file)."""
    path = Path(path)
    has_answers = any(q.answer is not None for q in questions)
    columns = [c for c in COLUMNS if c != "answer" or has_answers]
    rows = [_row(index, question) for index, question in enumerate(questions)]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, columns, delimiter="\t", lineterminator="\n", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    return path


def _row(index: int, question: MCQuestion) -> dict[str, str]:
    row = {letter: question.options.get(letter, "") for letter in LETTERS}
    row.update(
        index=str(index),
        question=question.question,
        hint=question.hint,
        answer=question.answer or "",
        category=question.category,
        source=SOURCE,
        image="" if question.image is None else encode_image(question.image),
    )
    return row


def read_mmbench(path: str | Path, require_answer: bool = True) -> list[MCQuestion]:
    path = Path(path)
    if not path.is_file():
        from engine.spec.catalog import not_there

        raise SpecError(f"MMBench file {path} {not_there(path, folder=False)}; give the path of an MMBench .tsv file")
    reader = csv.DictReader(io.StringIO(_text(path), newline=""), delimiter="\t")
    try:
        _check_columns(path, reader.fieldnames or [], require_answer)
        rows = list(reader)
    except csv.Error as error:
        raise SpecError(f"{path} line {reader.line_num}: not tab-separated text ({error})") from None
    images_by_index: dict[str, Image.Image | None] = {}
    questions = []
    columns = reader.fieldnames or []
    for line, row in enumerate(rows, start=2):
        _check_row_length(path, line, row, columns)
        image = _image(path, line, row["image"] or "", images_by_index)
        images_by_index[row["index"]] = image
        questions.append(_question(path, line, row, image, require_answer))
    if not questions:  # a header alone was taken, and every MMBench column then read "-" with no word
        raise SpecError(f"MMBench file {path} has no questions (a header and no rows); give an MMBench .tsv file")
    return questions


def _text(path: Path) -> str:
    """The file as UTF-8 text; SpecError naming the line of the first byte that is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SpecError(f"MMBench file {path} cannot be read ({error.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise SpecError(f"{path} line {line}: not UTF-8 text; MMBench files are UTF-8 TSV") from None


def _check_columns(path: Path, columns: list[str], require_answer: bool) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise SpecError(
            f"{path} lacks the MMBench column(s) {', '.join(missing)}; an MMBench TSV has the tab-separated "
            f"columns {', '.join(COLUMNS)}"
        )
    if require_answer and "answer" not in columns:
        raise SpecError(
            f"{path} has no `answer` column (an MMBench test file); accuracy needs a file with answers, "
            "such as the DEV split (MMBench_DEV_EN.tsv)"
        )


def _check_row_length(path: Path, line: int, row: dict, columns: list[str]) -> None:
    """A row with fewer or more cells than the header has columns (a tab lost, a line cut short): named as such, where
    it read as an empty `answer` or `question` cell."""
    cells = len(columns) - sum(row.get(column) is None for column in columns) + len(row.get(None) or [])
    if cells != len(columns):
        raise SpecError(f"{path} line {line}: the row has {cells} of the header's {len(columns)} tab-separated cells "
                        f"({'a line cut short, or a tab missing' if cells < len(columns) else 'a tab too many'}); "
                        "every row has one cell for each column")


def _image(path: Path, line: int, cell: str, earlier: dict[str, Image.Image | None]) -> Image.Image | None:
    cell = cell.strip()
    if cell in ABSENT:
        return None
    if cell in earlier:
        return earlier[cell]
    try:
        data = base64.b64decode(cell, validate=True)
        image = Image.open(io.BytesIO(data))
        return image.convert("RGB")
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise SpecError(
            f"{path} line {line}: the `image` cell is not a base64 PNG or JPEG (nor the index of an earlier row)"
        ) from None


def _question(path: Path, line: int, row: dict, image: Image.Image | None, require_answer: bool) -> MCQuestion:
    if not isinstance(row.get("question"), str) or not row["question"].strip():
        raise SpecError(f"{path} line {line}: the `question` cell is empty (a short row?); every row needs one")
    options = {letter: row[letter] for letter in LETTERS if not _absent(row.get(letter))}
    answer = None if _absent(row.get("answer")) else row["answer"].strip()
    if answer is None and require_answer:
        raise SpecError(f"{path} line {line}: the `answer` cell is empty; every row needs one of {', '.join(options)}")
    if answer is not None and answer not in options:
        raise SpecError(
            f"{path} line {line}: the answer is not one of the row's options {', '.join(options)}"
        )
    return MCQuestion(
        qid=row["index"],
        person_id=None,
        question=row["question"],
        options=options,
        answer=answer,
        image=image,
        category=row.get("category") or "",
        hint="" if _absent(row.get("hint")) else row["hint"],
    )


def _absent(cell: str | None) -> bool:
    return cell is None or cell.strip().lower() in ABSENT
