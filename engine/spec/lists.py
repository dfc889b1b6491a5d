"""The comma-separated lists a study is given (`--methods`, `--seeds`), read one way by `study` and the TUI's New-study
form: each entry named once, none empty, every method known, Retrain first."""
from __future__ import annotations

from engine.errors import SpecError
from engine.spec.validate import check_seed, method_info

PAPER_SEEDS = "42,87,21"  # the MultiDelete paper's three seeds
REFERENCE = "retrain"     # the method every other is scored against: it runs first for each seed


def comma_list(text: str, flag: str, what: str, example: str) -> list[str]:
    """The comma-separated entries of `flag`, stripped; SpecError (one line) on none or an empty entry (`42,,87`
    and `ft,,` were taken as if the typo were not there)."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise SpecError(f"{flag} needs at least one {what}, e.g. {flag} {example}")
    if not all(parts):
        raise SpecError(f"{flag} {text!r} has an empty entry between its commas; give e.g. {flag} {example}")
    return parts


def once_each(values: list, given: list[str], flag: str) -> None:
    """SpecError when two entries name one thing: `--seeds 42,42` ran one seed and said nothing."""
    for index, value in enumerate(values):
        if value in values[:index]:
            first = given[values.index(value)]
            same = f"{given[index]!r} is {first!r} again" if given[index] != first else f"{first!r} is given twice"
            raise SpecError(f"{flag}: {same}; each runs once, so give it once")


def parse_methods(text: str) -> list[str]:
    """Catalogue names, in the order given, each once, Retrain first; SpecError (one line) on an unknown name,
    an empty entry or a method named twice."""
    names = comma_list(text, "--methods", "method", "retrain,ft,multidelete (see `mmul-workbench methods`)")
    chosen: list[str] = []
    for name in names:
        try:
            chosen.append(method_info(name).name)
        except SpecError as error:
            raise SpecError(f"--methods: {error}") from None
    once_each(chosen, names, "--methods")
    return sorted(chosen, key=lambda m: m != REFERENCE)  # stable: Retrain first, the rest as given


def parse_seeds(text: str) -> list[int]:
    """Whole numbers, in the order given; SpecError (one line) on anything else, an empty entry or a seed given
    twice."""
    parts = comma_list(text, "--seeds", "seed", PAPER_SEEDS)
    seeds: list[int] = []
    for part in parts:
        try:
            number = int(part)
        except ValueError:
            raise SpecError(f"--seeds: {part!r} is not a whole number; give comma-separated seeds such as "
                            f"{PAPER_SEEDS}") from None
        seeds.append(check_seed(number, "--seeds"))
    once_each(seeds, parts, "--seeds")
    return seeds
