"""Studies: a grid of runs (methods x seeds, one protocol), each cell its own session, tied together by
a study record; and what a study reports: per method, the mean, sample std and n of every metric, with
the Retrain-relative scores beside the raw ones.

On disk, ``$MMUL_HOME/studies/<id>.json``, one small file per study::

    {"schema": 1, "study": id, "spec": {...}, "created": t, "updated": t,
     "cells": [{"method": m, "seed": s, "session": id or null, "state": "finished" | "failed" | ...}]}

written like every session file (``sessions.files.atomic_write_text``: ``.partial`` + fsync + replace,
0600 in a 0700 directory). A process running a study holds ``<id>.lock`` (flock), so the same study
never runs twice at once. The id is a digest of the study's identity (its protocol, methods and seeds),
so the same command finds the same record again: cells whose session finished are skipped, the others
run. The numbers are read from the cells' sessions, never copied into the record.

Pure Python (the KS test behind forget quality is handed in by the caller).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from sessions.files import describe_error, dumps, private_dir, read_json, atomic_write_text, try_lock
from sessions.metric_names import flatten
from sessions.numbers import P_VALUE_NAMES, fmt, fmt_mean_std, fmt_over
from sessions.paths import mmul_home
from sessions.summary import test_headline_name

STUDY_SCHEMA = 1
STUDY_ID = re.compile(r"^study-[0-9a-f]{12}$")
CELL_NAME_PREFIX = re.compile(r"^study-[0-9a-f]{12}\s+")  # a cell is named "study-<id> METHOD sSEED" (cli_study)
CELL_NAME = re.compile(r"^(study-[0-9a-f]{12}) \S+ s-?\d+$")
# how a stopped study goes on (its cells' lines say it: "cancelled (session S kept)" left it unsaid)
STUDY_GOES_ON = "the same `study` command again reads the finished cells back and runs the rest"
REFERENCE = "retrain"  # the gold standard every other method is scored against
ORIGINAL_GAP = "original_auc_gap_to_retrain"  # each run's bar: its seed's untouched original's AUC gap (rank)
ORIGINAL_TITLE = "original (untouched)"  # the grid's row of the model before unlearning (original_stats)
RELATIVE = ("auc_gap_to_retrain", "test_gap_to_retrain", "forget_quality", "privleak")
PRIVLEAK_ATTACK = "mia.mink_auc"  # the attack OpenUnlearning's privleak reads (Min-K%, k = 0.4)
STUDY_SPEC_KEYS = ("methods", "seeds", "task", "model", "data", "deletion")  # what a study's report reads
# points of the test headline (test r_mean, test accuracy) within which methods are ranked; a study's spec keeps
# the --tolerance it was last run with (not part of its id), which the TUI's grid ranks by
DEFAULT_TOLERANCE = 5.0


def without_study_id(name):
    """A study cell's name without the study id it starts with (``study-… ft s42`` reads ``ft s42``): where
    the study is named already (its screens, Compare's status line); None when nothing is left; other names as
    they are."""
    if not isinstance(name, str) or not CELL_NAME_PREFIX.match(name):
        return name
    return CELL_NAME_PREFIX.sub("", name).strip() or None


def cell_name(study: str, method: str, seed: int) -> str:
    """The name of a study cell's session: ``study-0123456789ab ft s42``."""
    return f"{study} {method} s{seed}"


def study_of(name: object) -> str | None:
    """The study a session is a cell of, read from its name (cell_name), else None."""
    match = CELL_NAME.match(name) if isinstance(name, str) else None
    return match.group(1) if match else None


class StudyError(RuntimeError):
    """A study record that cannot be used (damaged, of another schema, busy); the message is one line."""


def studies_dir(home: str | os.PathLike | None = None) -> Path:
    return (Path(home).expanduser() if home is not None else mmul_home()) / "studies"


def study_id(identity: dict) -> str:
    """``study-<12 hex>``: a digest of the study's identity (canonical JSON), the same for the same arguments."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return "study-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class StudyRecord:
    """The record of study ``study_id`` under ``<home>/studies``: its spec and its cells."""

    def __init__(self, study_id: str, spec: dict, home: str | os.PathLike | None = None):
        self.id, self.spec = study_id, spec
        self.root = studies_dir(home)
        self.path = self.root / f"{study_id}.json"
        self.created = time.time()
        self.cells: list[dict] = []

    def load(self) -> "StudyRecord":
        """Read the stored cells (none for a new study); StudyError when the file cannot be used."""
        try:
            document = read_json(self.path)
        except FileNotFoundError:
            return self
        except (OSError, ValueError, RecursionError) as exc:
            raise StudyError(f"study record {self.path} cannot be read ({describe_error(exc, self.path)}); "
                             "remove it to start the study afresh (its sessions stay)") from None
        if not isinstance(document, dict) or not isinstance(document.get("cells"), list):
            raise StudyError(f"study record {self.path} is not a study file; remove it to start the study afresh")
        if document.get("schema") != STUDY_SCHEMA:
            raise StudyError(f"study record {self.path} has schema {document.get('schema')!r}; this mmul-workbench "
                             f"reads {STUDY_SCHEMA}")
        self.created = float(document.get("created") or self.created)
        self.cells = [c for c in document["cells"] if isinstance(c, dict) and "method" in c and "seed" in c]
        return self

    @classmethod
    def stored(cls, study_id: str, home: str | os.PathLike | None = None) -> "StudyRecord":
        """The stored record of ``study_id``, spec and cells; StudyError (one line) when there is none or it
        cannot be used."""
        if not STUDY_ID.fullmatch(study_id):
            raise StudyError(f"{study_id!r} is not a study id; study ids look like study-0123456789ab "
                             "(`mmul-workbench study ...` prints its id)")
        record = cls(study_id, {}, home)
        if not record.path.is_file():
            raise StudyError(f"no study {study_id} under {record.root}; `mmul-workbench study ...` makes one")
        record.load()
        try:
            spec = read_json(record.path).get("spec")
        except (OSError, ValueError, AttributeError) as exc:
            raise StudyError(f"study record {record.path} cannot be read ({exc})") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("methods"), list) or \
                any(key not in spec for key in STUDY_SPEC_KEYS):
            raise StudyError(f"study record {record.path} has no usable spec; run the study's command again")
        record.spec = spec
        return record

    def cell(self, method: str, seed: int) -> dict | None:
        return next((c for c in self.cells if c["method"] == method and c["seed"] == seed), None)

    def set_cell(self, method: str, seed: int, session: str | None, state: str) -> None:
        """Record a cell's session and state, and write the record (atomically)."""
        cell = self.cell(method, seed)
        if cell is None:
            cell = {"method": method, "seed": seed}
            self.cells.append(cell)
        if cell.get("session") != session:  # another run of the cell: the old one's attacks are not its
            cell.pop("attacks", None)
        cell.update(session=session, state=state)
        self.save()

    def set_attacks(self, attacks: dict[str, dict[str, str]]) -> None:
        """Record the attack sessions `study --attacks` made or read back on each cell (``{cell session: {kind:
        attack session}}``; the TUI's grid reads their recovery) and write the record."""
        for cell in self.cells:
            if cell.get("session") in attacks:
                cell["attacks"] = attacks[cell["session"]]
        self.save()

    def save(self) -> None:
        private_dir(self.root)
        document = {"schema": STUDY_SCHEMA, "study": self.id, "spec": self.spec, "created": self.created,
                    "updated": time.time(), "cells": self.cells}
        atomic_write_text(self.path, dumps(document))

    @contextmanager
    def running(self) -> Iterator[None]:
        """Hold the study's lock for the ``with`` block; StudyError when another process runs it."""
        private_dir(self.root)
        fd = try_lock(self.root / f"{self.id}.lock")
        if fd is None:
            raise StudyError(f"study {self.id} is already running in another process; wait for it to end")
        try:
            yield
        finally:
            os.close(fd)


def cells_of_session(session_id: str, home: str | os.PathLike | None = None) -> list[str]:
    """Where the studies in the home count `session_id` as a cell: ``"<method> s<seed> of <study id>"`` each
    (records that cannot be read are passed over: `sessions delete` asks, it does not judge them)."""
    found = []
    for path in sorted(studies_dir(home).glob("study-*.json")):
        try:
            cells = read_json(path).get("cells") or []
        except (OSError, ValueError, RecursionError, AttributeError):
            continue
        found += [f"{cell.get('method')} s{cell.get('seed')} of {path.stem}" for cell in
                  (cells if isinstance(cells, list) else []) if isinstance(cell, dict) and cell.get("session") == session_id]
    return found


# --- what a study reports ---------------------------------------------------------------------------
def mean_std(values: Iterable[float]) -> dict | None:
    """``{"mean", "std", "n"}`` of the finite values: the sample std (ddof = 1; 0.0 for one value); None if none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(finite)
    if n == 0:
        return None
    mean = sum(finite) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def median_per_seed(per_seed: dict[str, float]) -> dict | None:
    """``{"median", "per_seed", "n"}`` of p-values, one per seed (``{"42": p, ...}``): a p-value is reported
    per seed and summarised by its median, never averaged (a mean of p-values is no p-value); for an even number
    of seeds the lower of the middle two (the usual median averages them: of two seeds, their mean). None if none."""
    finite = {seed: float(v) for seed, v in per_seed.items() if v is not None and math.isfinite(float(v))}
    if not finite:
        return None
    ordered, n = sorted(finite.values()), len(finite)
    return {"median": ordered[(n - 1) // 2], "per_seed": finite, "n": n}


def run_metrics(summary: dict) -> dict[str, float]:
    """A finished run's numbers, flat: its metrics (``test.r_mean``, ``mia.df_member_rate``, ...), seconds and
    the numbers of its cost (``cost.unlearning_seconds``, ``cost.peak_memory_mb``, ...; engine/cost.py)."""
    flat = flatten(summary.get("metrics") or {})
    if isinstance(summary.get("seconds"), (int, float)):
        flat["seconds"] = float(summary["seconds"])
    cost = summary.get("cost") if isinstance(summary.get("cost"), dict) else {}
    flat.update({f"cost.{name}": float(value) for name, value in cost.items()
                 if isinstance(value, (int, float)) and not isinstance(value, bool)})
    return flat


def privleak(auc: float, retrain_auc: float) -> float | None:
    """MUSE's PrivLeak as OpenUnlearning computes it (``src/evals/metrics/privacy.py``), in percent: with
    ``auc`` the attack's AUC of Df (members) against held-out data, 1 = Df stands out as remembered (the
    engine's convention, engine/metrics/attacks.py), MUSE's AUC is ``1 - auc`` and PrivLeak =
    ``(AUC_MUSE - AUC_MUSE_Retrain) / AUC_MUSE_Retrain x 100``. 0 = as member-like as under Retrain;
    negative = Df still looks remembered (under-unlearning); positive = it looks less member-like than data
    never seen (over-unlearning). None when Retrain's AUC is 1 (MUSE's 0: undefined)."""
    reference = 1.0 - retrain_auc
    if reference <= 0.0:
        return None
    return ((1.0 - auc) - reference) / reference * 100.0


def relative_scores(run: dict, retrain: dict, ks: Callable[[list, list], float | None] | None) -> dict[str, float]:
    """A run's scores against Retrain's run with the same seed and deletion set (both run result documents):
    ``auc_gap_to_retrain`` = |Df/Dr AUC - Retrain's|, ``privleak`` = PrivLeak of the Min-K% attack against
    Retrain's (``privleak``), ``test_gap_to_retrain`` = |test headline - Retrain's| (in the headline's
    units), ``forget_quality`` = ks(run's per-unit Df scores, Retrain's): the KS p-value
    (engine/metrics/forget_quality.py). Sessions from before forget quality went per unit hold only per-pair
    ``df_scores``: they get no forget quality (a KS test on correlated pairs is no p-value to report)."""
    mine, theirs = run_metrics(run), run_metrics(retrain)
    out: dict[str, float] = {}
    if "df_dr_auc" in mine and "df_dr_auc" in theirs:
        out["auc_gap_to_retrain"] = abs(mine["df_dr_auc"] - theirs["df_dr_auc"])
    if PRIVLEAK_ATTACK in mine and PRIVLEAK_ATTACK in theirs:
        leak = privleak(mine[PRIVLEAK_ATTACK], theirs[PRIVLEAK_ATTACK])
        if leak is not None:
            out["privleak"] = leak
    headline = test_headline_name(mine)
    if headline is not None and headline in theirs:
        out["test_gap_to_retrain"] = abs(mine[headline] - theirs[headline])
    scores, reference = run.get("df_unit_scores"), retrain.get("df_unit_scores")
    if ks is not None and scores and reference:
        quality = ks(scores, reference)
        if quality is not None:
            out["forget_quality"] = float(quality)
    return out


def aggregate(runs: list[tuple[str, int, dict]], ks: Callable[[list, list], float | None] | None = None,
              order: Iterable[str] = ()) -> dict[str, dict[str, dict]]:
    """Per method, ``{metric: {"mean", "std", "n"}}`` over its finished runs ``(method, seed, result)``:
    every numeric metric (dotted names) and, where Retrain ran with the same seed, the Retrain-relative
    scores; a p-value (forget quality) as ``{"median", "per_seed", "n"}`` instead (``median_per_seed``).
    Methods come in ``order`` (then any others in the order met)."""
    retrain = {seed: result for method, seed, result in runs if method == REFERENCE}
    values: dict[str, dict[str, list[tuple[int, float]]]] = {method: {} for method in order}
    for method, seed, result in runs:
        flat = run_metrics(result)
        if seed in retrain:
            flat.update(relative_scores(result, retrain[seed], ks))
            if (bar := original_gap(retrain[seed])) is not None:   # the same seeds' bar as the method's own gap
                flat[ORIGINAL_GAP] = bar
        for name, value in flat.items():
            values.setdefault(method, {}).setdefault(name, []).append((seed, value))
    out: dict[str, dict[str, dict]] = {}
    for method, metrics in values.items():
        out[method] = {}
        for name, series in metrics.items():
            if name in P_VALUE_NAMES:
                stats = median_per_seed({str(seed): value for seed, value in series})
            else:
                stats = mean_std(value for _, value in series)
            if stats is not None:
                out[method][name] = stats
    return out


def original_gap(retrain: dict) -> float | None:
    """|the original's Df/Dr AUC - Retrain's| of one seed, from Retrain's result (its `original_metrics`)."""
    original = flatten(retrain.get("original_metrics") or {}).get("df_dr_auc")
    own = run_metrics(retrain).get("df_dr_auc")
    return abs(original - own) if isinstance(original, (int, float)) and own is not None else None


def original_stats(runs: list[tuple[str, int, dict]]) -> dict[str, dict]:
    """The untouched original's numbers, ``{metric: {"mean", "std", "n"}}`` over the seeds Retrain ran: each
    seed's original as its runs evaluated it before unlearning (Retrain's `original_metrics`), with its AUC and
    test gaps to that seed's Retrain. What doing nothing scores: the bar a method must pass to have forgotten
    anything the AUC sees. {} where no Retrain run holds them."""
    values: dict[str, list[float]] = {}
    for method, _, retrain in runs:
        if method != REFERENCE or not isinstance(retrain.get("original_metrics"), dict):
            continue
        original = {"metrics": retrain["original_metrics"]}
        flat = {**flatten(original["metrics"]), **relative_scores(original, retrain, None)}
        for name, value in flat.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values.setdefault(name, []).append(float(value))
    return {name: stats for name, series in values.items() if (stats := mean_std(series)) is not None}


def with_attacks(summary: dict, found: dict[str, dict] | None) -> dict:
    """A cell's result document with its attacks' numbers among its metrics (`attack.<kind>.recovery`, `.points`),
    for the study's mean ± std; the stored document is not changed. `found`: {kind: {recovery, points, ...}}."""
    if not found:
        return summary
    numbers = {kind: {name: entry.get(name) for name in ("recovery", "points") if entry.get(name) is not None}
               for kind, entry in found.items()}
    return {**summary, "metrics": {**(summary.get("metrics") or {}), "attack": numbers}}


def test_column(columns, stats: dict):
    """The task's test headline among `columns` (engine.spec's task columns: `metric`, `scale`), the metric the
    runs of `stats` report (test r_mean or test accuracy); None when they report none. Its scale puts the
    ranking's tolerance in points."""
    names = {name for per_method in stats.values() for name in per_method}
    metric = test_headline_name(dict.fromkeys(names, 0.0))
    return next((c for c in columns if c.metric == metric), None)


def rank_label(ranking: dict, method: str) -> str:
    """A method's place in a `rank` result: ``ref`` (Retrain), 1, 2, ... within the tolerance, ``as orig.`` within
    it but no closer to Retrain than the untouched original, ``over tol.`` outside it, ``-`` unranked (no AUC gap
    yet; the original's own row)."""
    if method == REFERENCE:
        return "ref"
    if method in ranking["within"]:
        return str(ranking["within"].index(method) + 1)
    if method in ranking.get("as_original", ()):
        return "as orig."
    return "over tol." if method in ranking["outside"] else "-"


def rank(methods: dict[str, dict[str, dict]], tolerance: float, scale: float = 1.0) -> dict:
    """Methods ranked by closeness to Retrain: mean ``auc_gap_to_retrain``, smallest first, among those whose
    mean ``test_gap_to_retrain`` x ``scale`` (in points) is within ``tolerance`` and, where the untouched
    original's gap over the same seeds is known (``ORIGINAL_GAP``, from Retrain's runs), smaller than it; the
    others after, apart. Doing nothing scores the original's gap, so a method no closer to Retrain's AUC has
    forgotten nothing the AUC sees, or overshot Retrain by as much: ranked first among the methods that kept
    test, FT (AUC gap 35.0, Df as the original's) won a study whose original's gap was 31.5."""
    scored = [m for m, stats in methods.items() if m != REFERENCE and "auc_gap_to_retrain" in stats]

    def gap(m: str) -> float:
        return methods[m]["auc_gap_to_retrain"]["mean"]

    def within(m: str) -> bool:
        test = methods[m].get("test_gap_to_retrain")
        return test is not None and test["mean"] * scale <= tolerance

    def as_original(m: str) -> bool:
        bar = methods[m].get(ORIGINAL_GAP)
        return bar is not None and gap(m) >= bar["mean"]

    kept = sorted((m for m in scored if within(m)), key=gap)
    return {"by": "auc_gap_to_retrain", "tolerance": tolerance,
            "within": [m for m in kept if not as_original(m)], "as_original": [m for m in kept if as_original(m)],
            "outside": sorted((m for m in scored if not within(m)), key=gap)}


def study_ranking(stats: dict[str, dict[str, dict]], tolerance: float, columns,
                  original: dict[str, dict] | None = None) -> dict:
    """A study's ranking as `study`, its report and the TUI's grid show it: `rank` with the tolerance in points of
    the task's test headline (among `columns`, engine.spec's task columns), which it names, the untouched
    original's mean AUC gap (`original_stats`: the row under Retrain's) and the rule in words."""
    headline = test_column(columns, stats)
    ranking = rank(stats, tolerance, headline.scale if headline else 1.0)
    bar = ((original or {}).get("auc_gap_to_retrain") or {}).get("mean")
    ranking |= {"test_metric": headline.metric if headline else None,
                **({"original_auc_gap": bar} if bar is not None else {})}
    return {**ranking, "note": ranking_rule(ranking)}


def ranking_rule(ranking: dict) -> str:
    """The ranking's rule in words, as the study table's caption, the report and the TUI's grid say it."""
    bar = ranking.get("original_auc_gap")
    untouched = (f" and whose AUC gap is below the untouched original's over the same seeds ({fmt(bar, 'auc_gap_to_retrain')} "
                 "over all; \"as orig.\": no closer to Retrain than doing nothing)" if bar is not None else "")
    return ("the smallest mean |Df/Dr AUC - Retrain's| first, among methods whose mean test gap to Retrain is within "
            f"{ranking['tolerance']:g} points (\"over tol.\": outside it){untouched}")


# --- the study as a person reads it (the `study` table and the HTML report) -------------------------
RELATIVE_HEADERS = (("AUC gap", "auc_gap_to_retrain"), ("test gap", "test_gap_to_retrain"),
                    ("forget quality", "forget_quality"), ("privleak", "privleak"))
# what a run cost, mean ± std over the seeds: training seconds (evaluation excluded), evaluation seconds, peak
# memory (engine/cost.py); shown when any method has them (sessions from before `cost` have none)
COST_HEADERS = (("train time", "cost.unlearning_seconds"), ("eval time", "cost.evaluation_seconds"),
                ("peak mem", "cost.peak_memory_mb"))


def grid_order(document: dict) -> list[str]:
    """The grid's methods: Retrain, then the ranking (within the tolerance, then outside), then the rest."""
    spec, ranking = document["spec"], document.get("ranking")
    order = [m for m in spec["methods"] if m == REFERENCE]
    order += (ranking["within"] + ranking.get("as_original", []) + ranking["outside"]) if ranking else []
    return order + [m for m in spec["methods"] if m not in order]


def grid(document: dict, columns: Iterable[tuple[str, str]], titles: dict[str, str] | None = None,
         cost: bool = True) -> tuple[list[str], list[list[str]]]:
    """The study's grid in words: (headers, rows); one row per method (``grid_order``) with n, each headline
    column ``(header, metric)`` as mean ± std (sessions.numbers), the Retrain-relative scores and the rank
    when Retrain ran, and the cost columns (``cost``: train time, eval time, peak memory) when the runs have them.
    ``titles`` maps method names to what is shown."""
    stats, ranking = document["methods"], document.get("ranking")
    columns = list(columns)
    relative = list(RELATIVE_HEADERS) if ranking else []
    relative += cost_columns(stats) if cost else []
    headers = ["method", "n", *(h for h, _ in columns), *(h for h, _ in relative), *(["rank"] if ranking else [])]
    rows = []
    for method in grid_order(document):
        per_method = stats.get(method, {})
        n = max((s["n"] for s in per_method.values()), default=0)
        row = [(titles or {}).get(method, method), str(n),
               *(fmt_over(per_method.get(metric), metric, n) for _, metric in columns),
               *(fmt_over(per_method.get(metric), metric, n) for _, metric in relative)]
        if ranking:
            row.append(rank_label(ranking, method))
        rows.append(row)
        if method == REFERENCE and document.get("original"):
            rows.append(original_row(document, columns, relative, ranking))
    return headers, rows


def original_row(document: dict, columns, relative, ranking) -> list[str]:
    """The untouched original's row (`original_stats`): what doing nothing scores, under Retrain's."""
    stats = document["original"]
    n = max((s["n"] for s in stats.values()), default=0)
    return [ORIGINAL_TITLE, str(n), *(fmt_over(stats.get(metric), metric, n) for _, metric in columns),
            *(fmt_over(stats.get(metric), metric, n) for _, metric in relative), *(["-"] if ranking else [])]


def cost_columns(stats: dict) -> list[tuple[str, str]]:
    return [(h, m) for h, m in COST_HEADERS if any(m in per_method for per_method in stats.values())]


def cost_grid(document: dict, titles: dict[str, str] | None = None) -> tuple[list[str], list[list[str]]]:
    """What each method cost, mean ± std over its runs (the terminal prints it apart from the wide grid)."""
    stats, columns = document["methods"], cost_columns(document["methods"])
    if not columns:
        return [], []
    return (["method", *(h for h, _ in columns)],
            [[(titles or {}).get(m, m), *(fmt_mean_std(stats.get(m, {}).get(metric), metric) for _, metric in columns)]
             for m in grid_order(document)])


def grid_caption(document: dict) -> str:
    """The ranking rule in words (or what is missing for it)."""
    ranking = document.get("ranking")
    if not ranking:
        return "No Retrain in --methods: add retrain for the AUC gap, test gap, forget quality and ranking."
    original = (" The original's row is the model before unlearning." if ranking.get("original_auc_gap") is not None
                else "")
    return (f"Ranked by closeness to Retrain: {ranking_rule(ranking)}.{original} "
            "AUCs, rates and gaps in percent. Forget quality: KS p-value of the Df units' mean losses against "
            "Retrain's (1 = indistinguishable), the median over seeds and each seed's value (never a mean); a model "
            "broken as far as Retrain is from the original can score high, so read it with the test gap. Privleak: the Min-K% attack's AUC relative to Retrain's, in percent "
            "(0 = like Retrain, < 0 Df still looks remembered, > 0 over-forgotten)." + attack_words(document))


def attack_words(document: dict) -> str:
    """What an attack's recovery column is (a study run with --attacks)."""
    if not document.get("attacks"):
        return ""
    return (" An attack's recovery: the share of the method's own forgotten Df gap (original minus unlearned) the "
            "attack brings back, in percent; a small gap makes it large (-108% of 4.6 points is 5 points the other "
            "way), so `--json` and `sessions show` give it in points too (`attack.<kind>.points`).")


__all__ = ["ORIGINAL_GAP", "ORIGINAL_TITLE", "REFERENCE", "RELATIVE", "STUDY_ID", "StudyError", "StudyRecord", "aggregate", "cost_grid", "grid", "grid_caption",
           "grid_order", "mean_std", "median_per_seed", "original_stats", "privleak", "rank", "ranking_rule", "relative_scores", "run_metrics", "studies_dir", "study_id", "study_ranking"]
