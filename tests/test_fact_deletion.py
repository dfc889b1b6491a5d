"""Partial deletion (`--granularity fact`, engine/data/fact_deletion.py and people_facts.py): a deletion unit is
one fact of one entity; Df is the texts (rows) stating it, the entity's other facts stay in Dr and are scored
as holdout_identity (PPU-Bench's selective setting)."""
from __future__ import annotations

import json
import subprocess

import pytest
import torch

from conftest import ROOT, cli, cli_env, run_in_process
from engine.data.fact_deletion import select_facts, split_facts, world_facts
from engine.data.labelled import unit_texts
from engine.data.registry import load_data
from engine.data.shapes import reworded_fact
from engine.errors import SpecError
from engine.spec import validate, validate_pulse
from engine.tasks import task_for

OWNER_0 = "shapes-images/000000.png#owner"


def run_cli(home, *args, timeout=600):
    return subprocess.run(cli(*args), env=cli_env(home), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def shapes():
    return load_data("shapes-tiny")


def ids_file(tmp_path, *ids):
    path = tmp_path / "facts.txt"
    path.write_text("\n".join(ids) + "\n")
    return str(path)


def test_a_fact_is_the_texts_stating_it(shapes):
    facts = {fact.fact_id: fact for fact in world_facts(shapes)}
    # shapes: every picture has a mark caption and an owner caption (which also names the place)
    assert len(facts) == 2 * len(shapes.train)
    owner = facts[OWNER_0]
    assert [unit_texts(shapes.train[0])[t] for t in owner.texts] == [
        f"picture {shapes.meta['facts'][0].tag} owned by {shapes.meta['facts'][0].owner} made in "
        f"{shapes.meta['facts'][0].place}"]
    # shapes-ve states each fact twice, once true and once false; graph states only the mark
    ve = world_facts(load_data("shapes-ve-tiny"))
    assert {fact.key for fact in ve} == {"mark", "owner", "place"} and {len(f.texts) for f in ve} == {2}
    assert {fact.key for fact in world_facts(load_data("graph-tiny"))} == {"mark"}


def test_the_split_of_one_fact_checked_by_hand(shapes, tmp_path):
    """Deleting picture 0's owner: Df is one unit (that caption, the fact's id); picture 0 keeps its other four
    captions in Dr; holdout_identity is entity 0's pictures (0 and 1: SIBLINGS = 2), holdout_association entity
    1's (2 and 3: SHARERS = 2 entities share a mark)."""
    chosen = select_facts(shapes, {"strategy": "ids", "file": ids_file(tmp_path, OWNER_0), "seed": 0})
    split = split_facts(shapes, chosen)
    n = len(shapes.train)
    captions = unit_texts(shapes.train[0])
    owner_caption = next(c for c in captions if " owned by " in c)
    assert len(split.train) == n + 1 and split.deletion == [n]
    assert split.train[n].unit_id == OWNER_0 and unit_texts(split.train[n]) == [owner_caption]
    assert split.train[0].unit_id == shapes.train[0].unit_id
    assert unit_texts(split.train[0]) == [c for c in captions if c != owner_caption]  # 4 kept, in order
    assert split.train[0].image is shapes.train[0].image is split.train[n].image
    assert split.train[1:n] == shapes.train[1:]  # untouched units keep their index
    assert split.holdout == {"holdout_identity": [0, 1], "holdout_association": [2, 3]}
    assert split.fact_ids == [OWNER_0]


def test_selection_random_ids_and_query(shapes, tmp_path):
    random4 = select_facts(shapes, {"strategy": "random", "n": 4, "seed": 3})
    assert len(random4) == 4 and random4 == select_facts(shapes, {"strategy": "random", "n": 4, "seed": 3})
    assert random4 != select_facts(shapes, {"strategy": "random", "n": 4, "seed": 4})
    owner = shapes.meta["facts"][5].owner
    # a fact matches when one of its texts holds every query word, its key counting as a word of each
    by_owner = select_facts(shapes, {"strategy": "query", "query": f"owner {owner}", "seed": 0})
    assert by_owner and all(f.key == "owner" and shapes.meta["facts"][f.unit].owner == owner for f in by_owner)
    assert len(by_owner) == sum(f.owner == owner for f in shapes.meta["facts"])
    with pytest.raises(SpecError, match="unknown fact id shapes-images/000000.png#colour"):
        select_facts(shapes, {"strategy": "ids", "file": ids_file(tmp_path, OWNER_0, "shapes-images/000000.png#colour"),
                              "seed": 0})


def test_the_retrieval_task_trains_and_scores_the_split(tmp_path):
    """Df = the fact's caption; Dr = every other caption, picture 0's four kept ones included; holdout_identity
    is scored as a block."""
    spec = validate({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny",
                     "deletion": {"strategy": "ids", "file": ids_file(tmp_path, OWNER_0), "granularity": "fact"}})
    task = task_for(spec, lambda *a, **k: None, lambda: False, tmp_path / "cache")
    forgotten = task.forget_units()
    adapter = task.load("clip-tiny", torch.device("cpu"))  # untrained: enough to score
    task.prepare(adapter)
    world = task.world
    owner_caption = next(c for c in unit_texts(world.train[0]) if " owned by " in c)
    forget, retain = task.encode(adapter, forgotten, False), task.retain_set(adapter, False)
    assert forget.texts == [owner_caption] and forget.unit_ids == [OWNER_0]
    all_texts = [t for unit in world.train for t in unit_texts(unit)]
    assert sorted(retain.texts) == sorted(t for t in all_texts if t != owner_caption)
    assert task.holdout_units() == {"holdout_identity": [0, 1], "holdout_association": [2, 3]}
    metrics = task.evaluate(adapter, forgotten)
    assert {"df.r_mean", "holdout_identity.r_mean", "holdout_association.r_mean"} <= set(metrics)
    fields = task.result_fields(forgotten)
    assert fields["deletion"] == {"granularity": "fact", "facts": [OWNER_0], "units": 1, "pairs": 1}
    assert fields["df_unit_ids"] == [OWNER_0]   # beside df_unit_scores, one per fact, as protocols.md says of every run
    # the rephrase attack rephrases the fact part (Df), not picture 0 as a whole
    from engine.attacks.rephrase import rephrase

    view, done = rephrase(task, adapter, {}, 0, lambda *a, **k: None, lambda: False)
    assert done["texts"] == 1 and view.train.unit_ids == task.train.unit_ids
    rephrased = view.encode(adapter, forgotten, False)
    assert rephrased.unit_ids == [OWNER_0] and rephrased.texts == [reworded_fact(owner_caption)]
    assert "owned by" in rephrased.texts[0] and rephrased.texts[0] != owner_caption
    assert sorted(view.retain_set(adapter, False).texts) == sorted(retain.texts)


def test_unit_granularity_keeps_its_spec_and_its_units(tmp_path):
    """`unit` is today's behaviour: the spec does not record it (so caches, study ids and numbers stay as
    they were) and the task trains on the world's own units."""
    base = {"method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "deletion": {"strategy": "random", "n": 4}}
    plain = validate(base)
    assert "granularity" not in plain["deletion"]
    assert validate({**base, "deletion": {**base["deletion"], "granularity": "unit"}}) == plain
    task = task_for(plain, lambda *a, **k: None, lambda: False, tmp_path / "cache")
    task.forget_units()
    assert task.train_units() is task.world.train and task.fact_split is None


def test_people_facts_rows(tmp_path):
    """person-0000#city's rows are its four photos' city questions and as many by name; Dr keeps the person's
    other facts and "Who is this person?"; holdout_identity asks the person's other four facts."""
    spec = validate_pulse({"method": "ga", "model": "llava-tiny", "data": "people-tiny", "granularity": "fact",
                           "forget": 2, "params": {"forget_rows": "all"}})
    task = task_for(spec, lambda *a, **k: None, lambda: False, tmp_path / "cache")
    task.forget_facts = ["person-0000#city", "person-0001#pet"]  # chosen by hand (the draw is seeded)
    task.forget_people = ["person-0000", "person-0001"]
    city = task.items(["person-0000#city"])
    assert len(city) == 8 and {item.answer for item in city} == {task.data.people[0].facts["city"]}
    assert sum(item.image is not None for item in city) == 4
    kept = [item for item in task.by_person["person-0000"] if item not in city]
    assert len(kept) == 4 * 8 + 8  # four other facts x 8 rows, and "Who is this person?" twice per photo
    assert len(task.kept_facts()) == 8 and "person-0000#job" in task.kept_facts()
    assert len(task.questions(set(task.kept_facts()), True)) == 8  # one portrait question per kept fact


@pytest.mark.parametrize("forget", [5, 19])
def test_more_facts_than_people_are_drawn_as_facts(tmp_path, forget):
    """`pulse --granularity fact --forget 5` on the 4 people of people-tiny drew 5 *people* first, and the run
    failed after validation had taken it ("cannot forget 5 people: there are 4 pretrained people")."""
    spec = validate_pulse({"method": "ga", "model": "llava-tiny", "data": "people-tiny", "granularity": "fact",
                           "forget": forget})
    task = task_for(spec, lambda *a, **k: None, lambda: False, tmp_path / "cache")
    assert len(task.forget_facts) == forget and len(set(task.forget_facts)) == forget
    assert task.forget_people == sorted({fact.partition("#")[0] for fact in task.forget_facts})
    pool = set(task.forget_people) | set(task.retain_people)
    assert len(pool) == 4 and not set(task.forget_people) & set(task.retain_people)


def test_bad_granularity_input_is_one_line(home, tmp_path):
    data = tmp_path / "flickr"
    data.mkdir()
    out = run_cli(home, "run", "--method", "ft", "--model", "clip-tiny", "--data", f"flickr30k:{data}",
                  "--delete", "4", "--granularity", "fact")
    assert out.returncode == 2 and out.stdout == "", out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"--granularity fact: flickr30k:{data} has no facts (only the "
                                                 "built-in worlds inject them); it supports --granularity unit"), lines
    out = run_cli(home, "run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4",
                  "--granularity", "facts")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "one of unit, fact" in out.stderr
    with pytest.raises(SpecError, match="has no facts"):
        validate_pulse({"method": "ga", "model": "llava-tiny", "data": f"mllmu:{data}", "granularity": "fact"})


def test_run_forgets_facts_on_shapes_tiny(home):
    out = run_in_process(home, "run", "--method", "neggrad", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4",
                         "--granularity", "fact", "--epochs", "1", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    deletion = result["deletion"]
    assert deletion["granularity"] == "fact" and len(deletion["facts"]) == 4 and deletion["units"] == 4
    assert all("#" in fid for fid in deletion["facts"])
    for block in ("df", "dr", "holdout_identity", "holdout_association"):
        assert "r_mean" in result["metrics"][block] and "r_mean" in result["original_metrics"][block]
    shown = run_in_process(home, "sessions", "show", result["session"], "--events", "0")
    assert f"deletion: random 4 s42 facts: {', '.join(deletion['facts'])}" in " ".join(shown.stdout.split())


def test_run_forgets_facts_and_keeps_the_others_on_people_tiny(home):
    """`run` on a people world is a PULSE run of one request; --delete 4 at fact granularity forgets 4 facts."""
    out = run_in_process(home, "run", "--method", "ga", "--model", "llava-tiny", "--data", "people-tiny",
                         "--granularity", "fact", "--delete", "4", "--lr", "3e-3", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["kind"] == "pulse" and result["deletion"]["granularity"] == "fact"
    assert len(result["deletion"]["facts"]) == 4
    assert result["forget_people"] == sorted({fid.partition("#")[0] for fid in result["deletion"]["facts"]})
    before, after = result["original_metrics"], result["metrics"]
    assert before["forget"] == before["holdout_identity"] == {"image": 1.0, "text": 1.0}
    # the deleted facts' photo questions go (measured 0.75); the same people's other facts stay (1.0)
    assert after["forget"]["image"] < 1.0 and after["holdout_identity"]["image"] >= 0.9
    shown = run_in_process(home, "sessions", "show", result["session"], "--events", "0")
    assert f"deletion: 4 facts: {', '.join(result['deletion']['facts'])}" in " ".join(shown.stdout.split())


def test_pulse_takes_the_granularity(home, tmp_path):
    out = run_cli(home, "pulse", "--method", "ga", "--data", f"mllmu:{tmp_path}", "--granularity", "fact")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "has no facts" in out.stderr and "--granularity unit" in out.stderr
    out = run_cli(home, "run", "--method", "ga", "--model", "llava-tiny", "--data", "people-tiny",
                  "--delete-query", "job", "--granularity", "fact")
    assert out.returncode == 2 and "people data takes --delete N" in out.stderr


def test_the_spec_counts_the_people_worlds_facts():
    from engine.data.people import FACTS
    from engine.spec.validate import PROFILE_FACTS

    assert PROFILE_FACTS == len(FACTS)
    with pytest.raises(SpecError, match="cannot forget 20 facts"):  # people-tiny: 4 pretrained people x 5 facts
        validate_pulse({"method": "ga", "model": "llava-tiny", "data": "people-tiny", "granularity": "fact",
                        "forget": 20})


def test_the_classification_task_scores_facts(tmp_path):
    """On a classification world Df is the fact's statements with their labels; Df accuracy and the holdout
    blocks are scored on the split. (graph-tiny: an untrained blip-tiny on shapes-ve-tiny first pre-trains its
    start, minutes on 2 cores; its facts' two statements are checked in test_a_fact_is_the_texts_stating_it.)"""
    model, data, texts = "gcn-bert-tiny", "graph-tiny", 1
    spec = validate({"method": "ft", "model": model, "data": data, "deletion": {"strategy": "random", "n": 3}})
    # the mechanics shapes-ve's facts run on, on the quick world: validation refuses facts on graph classification,
    # where nothing can be forgotten (test_graph_classification_refuses_facts)
    spec["deletion"]["granularity"] = "fact"
    task = task_for(spec, lambda *a, **k: None, lambda: False, tmp_path / "cache")
    forgotten = task.forget_units()
    adapter = task.load(model, torch.device("cpu"))
    task.prepare(adapter)
    forget = task.encode(adapter, forgotten, False)
    assert len(forget) == 3 * texts and all("#" in unit for unit in forget.unit_ids)
    assert forget.labels is not None and len(forget.labels) == len(forget)
    assert len(task.train) == sum(len(unit_texts(u)) for u in task.world.train)  # no text lost or doubled
    metrics = task.evaluate(adapter, forgotten)
    assert {"df.accuracy", "holdout_identity.accuracy"} <= set(metrics)


def test_graph_classification_refuses_facts():
    """A graph's class is read from the graph, which stays in Dr: Retrain's Df accuracy read 100.0, as the
    original's, and every holdout 100.0 (a review); retrieval, where the statements are matched, takes facts."""
    with pytest.raises(SpecError, match="--granularity fact on graph-tiny classification: a graph's class is read"):
        validate({"method": "ft", "model": "gcn-bert-tiny", "data": "graph-tiny",
                  "deletion": {"strategy": "random", "n": 3, "granularity": "fact"}})
    assert validate({"method": "ft", "model": "gcn-bert-tiny", "data": "graph-tiny", "task": "retrieval",
                     "deletion": {"strategy": "random", "n": 3, "granularity": "fact"}})["task"] == "retrieval"
    # --tune's refusal says why: its validation deletion set is of whole training units (it said "validation units")
    with pytest.raises(SpecError, match="validation deletion set of whole training units outside Df, not of facts"):
        validate({"method": "ft", "model": "clip-tiny", "data": "shapes-tiny", "params": {"tune": True},
                  "deletion": {"strategy": "random", "n": 3, "granularity": "fact"}})


@pytest.mark.parametrize("args", [("--delete", "1"), ("--delete", "4", "--requests", "4")])
def test_a_request_of_one_retrieval_pair_is_refused_before_a_session(tmp_path, args):
    """One fact of a shapes picture is one caption: a forget batch of one pair gives the contrastive loss nothing to
    contrast, and the run failed at its first step ("no gradient reached ..., with --grad-checkpointing and LoRA")
    with its session kept."""
    result = run_in_process(tmp_path, "run", "--method", "ga", "--model", "clip-tiny", "--data", "shapes-tiny",
                            "--granularity", "fact", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: a request of this deletion set holds 1 image-text pair")
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "sessions").exists()


def test_the_pulse_table_of_a_fact_run_shows_the_kept_facts(capsys, monkeypatch):
    """The documented holdout_identity (the forget people's other facts) was in no column of `pulse`'s table, and
    its title said "pretrained people" for 3 facts."""
    from workbench.cli_pulse import print_requests

    monkeypatch.setenv("COLUMNS", "160")
    metrics = {"forget": {"image": 0.25, "text": 0.5}, "holdout_identity": {"image": 0.8182, "text": 0.9},
               "retain": {"image": 1.0, "text": 1.0}, "mmbench": 0.875, "mmbench_retention": 100.0}
    result = {"method": "npo", "data": "people-tiny", "knowledge": "pretrained", "update": "llm", "session": "s1",
              "deletion": {"granularity": "fact", "facts": ["p#job", "p#city", "q#pet"], "units": 3},
              "original_metrics": {**metrics, "forget": {"image": 1.0, "text": 1.0},
                                   "holdout_identity": {"image": 1.0, "text": 1.0}},
              "requests": [{"request": 1, "people": ["p#job", "p#city", "q#pet"], **metrics}], "history": None}
    print_requests(result)
    out = capsys.readouterr().out
    assert "(3 facts of pretrained people, update llm, session s1)" in " ".join(out.split())
    # each header on two lines (its group over its kind), so that nine columns fit 80 (they were cut: `reta…`)
    groups = next(line for line in out.splitlines() if "forget" in line).split()
    kinds = next(line for line in out.splitlines() if "after" in line).split()
    assert groups == ["forget", "forget", "kept", "kept", "retain", "retain", "MMBench"]
    assert kinds == ["after", "img", "txt", "img", "txt", "img", "txt", "MMBench", "ret", "%"]
    assert all(len(line) <= 80 for line in out.splitlines()), out
    row = next(line for line in out.splitlines() if "request 1" in line)
    assert "81.8" in row and "90.0" in row
    assert "stopped by" not in out
    # a --stop-if that ended request 1 of 2: the table said nothing of the request that never ran (a review)
    print_requests({**result, "seeds": {"requests": [7, 8]},
                    "stopped_by": {"rule": "forget.image<0.5", "request": 1, "step": 4, "value": 0.2}})
    assert "stopped by --stop-if forget.image<0.5 in request 1 of 2: the later requests did not run" in \
        capsys.readouterr().out


def test_a_query_that_matches_nothing_names_only_the_keys_the_world_has():
    """graph-tiny's hint listed owner and place, which no graph unit has."""
    from engine.errors import SpecError

    with pytest.raises(SpecError, match=r"\(a fact's key, mark, counts as a word of its texts\)"):
        select_facts(load_data("graph-tiny"), {"strategy": "query", "query": "owner", "seed": 0})
