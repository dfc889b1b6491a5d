"""What a data set read from files (FORMAT:PATH) must hold before anything runs on it, checked once as it is
read (engine/data/registry.py), so `data info`, the preflight and the job refuse the same folder in one line:

- the train and test splits each hold a unit: an empty test split was read, and the run failed inside its
  evaluation after the original had trained (val may be empty: only --tune, --keep best and --stop-if read
  it, and the preflight refuses them on such data before a session exists);
- no unit is in two splits: an image in train and in test (a test record pointing at a training image, a
  SNLI-VE line copied across) leaves a deleted unit in the test set, so test no longer measures unseen data;
- no text is empty or blank: a caption of spaces would train and score as if it said something;
- no text id twice in a unit (an NLVR2 or SNLI-VE record given twice was merged into one more text).

Built-in worlds are generated to hold all of these (tests/test_worlds*.py); people data (`mllmu:`) is
questions per person and has checks of its own (engine/data/mllmu.py).
"""
from __future__ import annotations

from engine.data.labelled import unit_texts
from engine.errors import SpecError

SPLITS = ("train", "val", "test")
NEEDED = {"train": "there is nothing to train on or delete from",
          "test": "a run reports test performance on it, so it needs at least one unit (val may be empty)"}


def check_splits(ref: str, world) -> None:
    """SpecError (field ``data``), naming the split and the unit, when `world` breaks one of the rules above."""
    for split, why in NEEDED.items():
        if not world.split(split):
            by_id = (" (no record names a `split`, so its records were split by id: give them a `split`)"
                     if getattr(world, "meta", {}).get("split") == "by id" else "")
            raise SpecError(f"{ref}: its {split} split has no units{by_id}; {why}", field="data")
    first_seen: dict[str, str] = {}
    for split in SPLITS:
        for unit in world.split(split):
            earlier = first_seen.setdefault(unit.unit_id, split)
            if earlier != split:
                raise SpecError(f"{ref}: unit {unit.unit_id!r} is in both the {earlier} and the {split} split; a unit "
                                "(an image, an image pair, a graph) belongs to one split, so remove it from one",
                                field="data")
            if any(not text.strip() for text in unit_texts(unit)):
                raise SpecError(f"{ref}: {split} unit {unit.unit_id!r} has an empty text; give every caption or "
                                "sentence its words, or leave the empty one out", field="data")
            ids = getattr(unit, "text_ids", None) or []
            if len(set(ids)) < len(ids):
                twice = next(text_id for text_id in ids if ids.count(text_id) > 1)
                raise SpecError(f"{ref}: {split} unit {unit.unit_id!r} holds the text {twice!r} twice (a record given "
                                "twice); keep one", field="data")
