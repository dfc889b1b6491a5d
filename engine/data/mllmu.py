"""MLLMU-Bench parquet files (ANCHORS.md, section 4), read and written.

Layout, as released on the hub (`MLLMMU/MLLMU-Bench`): one folder per split, each holding
`train-00000-of-00001.parquet`. The people world writes `Full_Set/` (every person) and, given forget ids,
`forget_<pct>/` and `retain_<100-pct>/` (pct = the forget share in percent, like `forget_5`/`retain_95`).

One row per person, with the released columns
- `ID`; `image` ({"bytes", "path"}): the profile image, which image+question evaluation shows;
- `metadata`: a JSON list of {"Question", "Answer"} training pairs, asked with `image`;
- `Classification_Task`: {"Image_Textual_Questions": [...], "Pure_Text_Questions": [...]}, each question
  {"Question", "Options": {"A".."D"}, "Correct_Answer": letter};
and optional columns this workbench adds (absent in released files, read when present):
- `name`; `images` (a list of {"bytes", "path"}, as the released Test_Set has), the profile image first;
- `phase` ("pretrain" | "finetune" | "heldout"; a released file's people count as "finetune": MLLMU-Bench
  teaches them by fine-tuning; "heldout" people have no training pairs and are in `Full_Set/` only, the
  membership attacks' held-out side); `facts` (a JSON object);
- in `metadata` entries, `"Image"`: the index in `images` the pair is asked with, or null for a
  text-only pair (a released entry has no "Image" and is asked with the profile image).

Reading a directory takes `Full_Set/` when it has one, else the parquet files directly inside it (so a
single split folder such as `forget_5/` works), and records the people of every `forget_*`/`retain_*` folder.
"""
from __future__ import annotations

import io
import json
import os
import re
import tempfile
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from engine.data.mmbench import LETTERS, MCQuestion
from engine.data.people_records import HELDOUT, PeopleData, Person, QAItem
from engine.errors import SpecError

FULL_SET = "Full_Set"
PARQUET_NAME = "train-00000-of-00001.parquet"
SPLIT_FOLDER = re.compile(r"(forget|retain)_\d+")
QUESTION_KINDS = {"Image_Textual_Questions": "image", "Pure_Text_Questions": "text"}
PROFILE_IMAGE = 0


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise SpecError("MLLMU-Bench parquet files need pyarrow; install it with `pip install pyarrow`") from None
    return pyarrow


# ---------------------------------------------------------------- writing

def write_mllmu(data: PeopleData, directory: str | Path, forget: list[str] = ()) -> list[Path]:
    """Write `data`'s people as `Full_Set/`, and as `forget_<pct>/` + `retain_<100-pct>/` when `forget` is given."""
    pa = _pyarrow()
    directory = Path(directory)
    rows = {person.person_id: _row(data, person) for person in data.people}
    unknown = sorted(set(forget) - set(rows))
    if unknown:
        raise SpecError(
            f"forget ids {', '.join(unknown)} are not people of this data; use ids such as {next(iter(rows))}"
        )
    splits = {FULL_SET: list(rows)}
    if forget:
        forget_ids = set(forget)
        # held-out people (phase "heldout": no training pairs) sit in Full_Set only; the shares are of the others
        taught = [person.person_id for person in data.people if person.phase != HELDOUT]
        percent = round(100 * len(forget_ids) / len(taught))
        splits[f"forget_{percent}"] = [pid for pid in taught if pid in forget_ids]
        splits[f"retain_{100 - percent}"] = [pid for pid in taught if pid not in forget_ids]
    schema = _schema(pa)
    tables = {split: pa.Table.from_pylist([rows[pid] for pid in ids], schema=schema) for split, ids in splits.items()}
    return [_write_table(pa, table, directory / split / PARQUET_NAME) for split, table in tables.items()]


def _schema(pa):
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    question = pa.struct([
        ("Question", pa.string()),
        ("Options", pa.struct([(letter, pa.string()) for letter in LETTERS])),
        ("Correct_Answer", pa.string()),
    ])
    return pa.schema([
        ("ID", pa.string()),
        ("name", pa.string()),
        ("phase", pa.string()),
        ("image", image),
        ("images", pa.list_(image)),
        ("facts", pa.string()),
        ("metadata", pa.string()),
        ("Classification_Task", pa.struct([(kind, pa.list_(question)) for kind in QUESTION_KINDS])),
    ])


def _row(data: PeopleData, person: Person) -> dict:
    images = [{"bytes": _png(image), "path": f"{person.person_id}-{k}.png"} for k, image in enumerate(person.images)]
    return {
        "ID": person.person_id,
        "name": person.name,
        "phase": person.phase,
        "image": images[PROFILE_IMAGE],
        "images": images,
        "facts": json.dumps(person.facts),
        "metadata": json.dumps(_metadata(data, person)),
        "Classification_Task": _classification_task(data, person),
    }


def _metadata(data: PeopleData, person: Person) -> list[dict]:
    index_of = {id(image): k for k, image in enumerate(person.images)}
    return [
        {"Question": item.question, "Answer": item.answer,
         "Image": None if item.image is None else index_of[id(item.image)]}
        for item in data.person_train if item.person_id == person.person_id
    ]


def _classification_task(data: PeopleData, person: Person) -> dict:
    task: dict[str, list] = {kind: [] for kind in QUESTION_KINDS}
    for question in data.eval_questions:
        if question.person_id == person.person_id:
            kind = "Image_Textual_Questions" if question.with_image else "Pure_Text_Questions"
            options = {letter: question.options.get(letter) for letter in LETTERS}
            task[kind].append({"Question": question.question, "Options": options, "Correct_Answer": question.answer})
    return task


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write_table(pa, table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        pa.parquet.write_table(table, temp)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    return path


# ---------------------------------------------------------------- reading

def read_mllmu(directory: str | Path) -> PeopleData:
    directory = Path(directory)
    if not directory.exists():
        raise SpecError(f"MLLMU-Bench path {directory} does not exist; give a folder holding Full_Set/*.parquet")
    files = _people_files(directory)
    rows: dict[str, tuple[str, dict]] = {}
    for path in files:
        for number, row in enumerate(_read_rows(path), start=1):
            rows.setdefault(str(row["ID"]), (f"{path} record {number}", row))
    people, questions, train = [], [], []
    for person_id, (where, row) in rows.items():
        try:
            person = _person(person_id, row)
            people.append(person)
            questions.extend(_questions(person, row))
            train.extend(_train_items(person, row))
        except SpecError as error:
            raise SpecError(f"{where}: {error}") from None
        except (TypeError, AttributeError, ValueError, KeyError, IndexError, RecursionError) as error:
            # a cell of the wrong shape (a list where an object belongs, ...): named by place, never quoted
            raise SpecError(f"{where}: MLLMU-Bench person {person_id} is malformed ({type(error).__name__}); "
                            "see the MLLMU-Bench row layout in the README") from None
    return PeopleData(people=people, eval_questions=questions, person_train=train, splits=_splits(directory))


def _people_files(directory: Path) -> list[Path]:
    if directory.is_file():
        return [directory]
    folder = directory / FULL_SET if (directory / FULL_SET).is_dir() else directory
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise SpecError(
            f"no .parquet files in {folder}; an MLLMU-Bench folder holds {FULL_SET}/*.parquet, "
            "or point at one split folder such as forget_5"
        )
    return files


def _splits(directory: Path) -> dict[str, list[str]]:
    if directory.is_file():
        return {}
    splits = {}
    for folder in sorted(p for p in directory.iterdir() if p.is_dir() and SPLIT_FOLDER.fullmatch(p.name)):
        ids = [str(row["ID"]) for path in sorted(folder.glob("*.parquet")) for row in _read_rows(path, ["ID"])]
        splits[folder.name] = list(dict.fromkeys(ids))
    return splits


def _read_rows(path: Path, columns: list[str] | None = None) -> list[dict]:
    """Rows as dicts; with `columns` only those (and only `ID` is required to exist)."""
    pa = _pyarrow()
    try:
        present = pa.parquet.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as error:
        raise SpecError(f"{path} is not a readable parquet file ({_first_line(error)})") from None
    _check_columns(path, present, whole_rows=columns is None)
    return pa.parquet.read_table(path, columns=columns).to_pylist()


def _check_columns(path: Path, present: list[str], whole_rows: bool) -> None:
    if "ID" not in present:
        raise SpecError(f"{path} has no `ID` column; MLLMU-Bench rows have ID, image, metadata, Classification_Task")
    if not whole_rows:
        return
    if "image" not in present and "images" not in present:
        raise SpecError(f"{path} has neither an `image` nor an `images` column; each MLLMU-Bench row needs its image")
    if "metadata" not in present and "Classification_Task" not in present:
        raise SpecError(f"{path} has neither `metadata` nor `Classification_Task`; it holds no questions to use")


def _person(person_id: str, row: dict) -> Person:
    return Person(
        person_id=person_id,
        name=row.get("name") or person_id,
        facts=_json(person_id, "facts", row.get("facts") or "{}"),
        images=[_decode(person_id, data) for data in _images_bytes(person_id, row)],
        phase=row.get("phase") or "finetune",
    )


def _images_bytes(person_id: str, row: dict) -> list[bytes]:
    """The profile `image` first, then the rest of `images` (which may or may not start with it)."""
    images = [_image_bytes(person_id, cell) for cell in row.get("images") or []]
    if row.get("image"):
        profile = _image_bytes(person_id, row["image"])
        if not images or images[0] != profile:
            images.insert(0, profile)
    if not images:
        raise SpecError(f"MLLMU-Bench person {person_id} has no image; each row needs `image` or `images`")
    return images


def _image_bytes(person_id: str, cell) -> bytes:
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if not data:
        raise SpecError(
            f"MLLMU-Bench person {person_id}: an image cell has no bytes; it needs {{\"bytes\": <PNG or JPEG>}}"
        )
    return data


def _decode(person_id: str, data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data)).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise SpecError(f"MLLMU-Bench person {person_id}: image bytes are not a PNG or JPEG") from None


def _json(person_id: str, column: str, cell):
    if not isinstance(cell, str):
        return cell
    try:
        return json.loads(cell)
    except json.JSONDecodeError as error:
        raise SpecError(f"MLLMU-Bench person {person_id}: `{column}` is not valid JSON ({error})") from None


def _questions(person: Person, row: dict) -> list[MCQuestion]:
    task = _json(person.person_id, "Classification_Task", row.get("Classification_Task") or {})
    questions = []
    for kind, mode in QUESTION_KINDS.items():
        for k, entry in enumerate(task.get(kind) or []):
            question = _text(person.person_id, entry, "Question")
            options, answer = _options(person.person_id, question, entry)
            questions.append(MCQuestion(
                qid=f"{person.person_id}/{mode}/{k}",
                person_id=person.person_id,
                question=question,
                options=options,
                answer=answer,
                image=person.portrait if mode == "image" else None,
            ))
    return questions


def _options(person_id: str, question: str, entry: dict) -> tuple[dict[str, str], str]:
    raw = entry.get("Options") or {}
    values = raw.items() if isinstance(raw, dict) else zip(LETTERS, raw)
    options = {letter: text for letter, text in values if text is not None}
    answer = str(entry.get("Correct_Answer", "")).strip()
    if answer not in options:
        by_text = {text: letter for letter, text in options.items()}
        if answer not in by_text:
            raise SpecError(
                f"MLLMU-Bench person {person_id}: a Correct_Answer is not one of its question's options "
                f"{', '.join(map(str, options))}"
            )
        answer = by_text[answer]
    return options, answer


def _train_items(person: Person, row: dict) -> list[QAItem]:
    pairs = _json(person.person_id, "metadata", row.get("metadata") or [])
    items = []
    for k, pair in enumerate(pairs):
        items.append(QAItem(
            item_id=f"{person.person_id}/train/{k:03d}",
            person_id=person.person_id,
            question=_text(person.person_id, pair, "Question"),
            answer=_text(person.person_id, pair, "Answer"),
            image=_pair_image(person, pair.get("Image", PROFILE_IMAGE)),
        ))
    return items


def _text(person_id: str, entry: dict, key: str) -> str:
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, str):
        raise SpecError(f"MLLMU-Bench person {person_id}: an entry has no `{key}` text")
    return value


def _pair_image(person: Person, index: int | None) -> Image.Image | None:
    if index is None:
        return None
    if not 0 <= index < len(person.images):
        raise SpecError(f"MLLMU-Bench person {person.person_id}: a metadata pair names image {index}, "
                        f"but the person has {len(person.images)} image(s)")
    return person.images[index]


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
