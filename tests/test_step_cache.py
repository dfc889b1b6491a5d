"""MultiDelete's cached targets (the frozen original's rows, computed once) agree with targets recomputed at
every step, and the loop's deferred read of loss terms (its CUDA path) emits and checks every step."""
import math

import pytest
import torch

from engine import step_readout
from engine.data.pairs import encode_units
from engine.data.shapes import build_shapes_world
from engine.errors import RunFailed
from engine.loop import BatchStream, LoopConfig, run_loop
from engine.methods.base import OriginalTargets
from engine.methods.multidelete import MultiDelete, decoupling_permutation
from engine.models.registry import load_adapter
from engine.step_readout import StepReadout

PARAMS = {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "md_on": "similarity", "ukr_on": "df", "ukr_modalities": "both",
          "train": "all"}
EMBEDS = ("image_embed", "text_embed", "fused_embed", "similarity")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: a second thread only waits at every op (and the suite shares 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def world():
    return build_shapes_world("shapes-tiny")


@pytest.fixture(scope="module")
def models(world, tmp_path_factory):
    cache = tmp_path_factory.mktemp("models")
    return lambda name: load_adapter(name, world, seed=3, cache=cache, task="retrieval")


class Recomputed(MultiDelete):
    """MultiDelete as before the cache: batches without `example_index`, so every target is computed."""

    def losses(self, forget, retain):
        def strip(batch):
            return {key: value for key, value in batch.items() if key != "example_index"}

        return super().losses(strip(forget), strip(retain))


def count_forwards(original) -> dict[str, int]:
    """Wrap the frozen original's passes so a test can count them."""
    calls = dict.fromkeys(EMBEDS, 0)
    def counting(name, inner):
        def counted(batch):
            calls[name] += 1
            return inner(batch)

        return counted

    for name in EMBEDS:
        setattr(original, name, counting(name, getattr(original, name)))
    return calls


def unlearn(models, world, name: str, params: dict, method_class):
    adapter = models(name)
    forget = encode_units(world.train[:2], adapter)  # 10 pairs: 3 Df batches a pass, 3 passes
    retain = encode_units(world.train[2:4], adapter)  # 10 pairs: 2 Dr batches a pass, so rows come back
    original = adapter.frozen_copy()
    calls = count_forwards(original)
    method = method_class({**PARAMS, **params}, adapter, original, torch.Generator().manual_seed(5))
    events = []
    config = LoopConfig(lr=1e-3, epochs=3, iterates="forget", forget_batch_size=4, retain_batch_size=8, seed=11)
    result = run_loop(method, forget, retain, config, lambda kind, **fields: events.append(fields))
    return result, [event["losses"] for event in events], adapter, calls


@pytest.mark.parametrize("name,params", [
    ("clip-tiny", {}),  # the default: L_MD on the similarity matrix, L_UKR on Df
    ("clip-tiny", {"md_on": "both", "ukr_on": "dr"}),  # a dual encoder's fused L_MD target from cached rows
    ("blip-tiny", {"md_on": "both"}),  # a fusion module's permuted pairs: computed at every step
])
def test_cached_targets_give_the_same_run_as_recomputed(models, world, name, params):
    cached, cached_terms, cached_model, cached_calls = unlearn(models, world, name, params, MultiDelete)
    fresh, fresh_terms, fresh_model, fresh_calls = unlearn(models, world, name, params, Recomputed)
    assert cached.steps == fresh.steps == 9 and len(cached_terms) == len(fresh_terms) == 9
    for step, (a, b) in enumerate(zip(cached_terms, fresh_terms), start=1):
        assert a.keys() == b.keys()
        for term in a:
            assert a[term] == pytest.approx(b[term], rel=1e-5, abs=1e-7), (step, term)
    # batched kernels round a row differently in another batch; Adam turns those last bits into moves of at most
    # a few lr on weights whose gradient is ~0, far below where the 9 steps moved the weights
    moved = max(float((p - q).detach().abs().max()) for p, q in zip(cached_model.model.parameters(), models(name).model.parameters()))
    apart = max(float((p - q).detach().abs().max()) for p, q in zip(cached_model.model.parameters(), fresh_model.model.parameters()))
    assert apart < 1e-4 < moved
    # the original ran only on the first pass over each set (Df 3 batches, Dr 2), against every step without the
    # cache; a fusion module's permuted pairs run every step; CLIP's fused_embed runs its image_embed inside
    dual, dr = name == "clip-tiny", params.get("ukr_on") == "dr"
    assert cached_calls["image_embed"] == 3 + 2 * dual + 2 * dr and fresh_calls["image_embed"] >= 9 * 2
    assert cached_calls["fused_embed"] == 2 + 9 * (not dual) and fresh_calls["fused_embed"] == 9 + 9 * (not dual)
    assert cached_calls["similarity"] == fresh_calls["similarity"] == 0  # from the rows: similarity_of


@pytest.mark.parametrize("name,params,per_step", [
    ("clip-tiny", {}, {"image_embed": 2, "text_embed": 2, "fused_embed": 0}),  # Df once for L_MD and L_UKR, Dr once
    ("clip-tiny", {"md_on": "both", "ukr_on": "dr"}, {"image_embed": 2, "text_embed": 2, "fused_embed": 0}),
    ("blip-tiny", {}, {"image_embed": 1, "text_embed": 1, "fused_embed": 1}),  # Df's towers once; Dr fused
])
def test_the_trained_model_encodes_each_batch_once_a_step(models, world, name, params, per_step):
    """L_MD's similarity matrix and L_UKR read the same f'_I and f'_T of Df: one pass of each tower per step."""
    adapter = models(name)
    original = adapter.frozen_copy()
    calls = count_forwards(adapter)  # f', not f: the original's passes are cached (above)
    method = MultiDelete({**PARAMS, **params}, adapter, original, torch.Generator().manual_seed(5))
    stream = BatchStream(encode_units(world.train[:2], adapter), 4, torch.Generator().manual_seed(0), torch.device("cpu"))
    retain = BatchStream(encode_units(world.train[2:4], adapter), 8, torch.Generator().manual_seed(1), torch.device("cpu"))
    for _ in range(3):
        method.losses(stream.next(), retain.next())["total"].backward()
    assert {embed: calls[embed] for embed in per_step} == {embed: 3 * n for embed, n in per_step.items()}


@pytest.mark.parametrize("name", ["clip-tiny", "blip-tiny"])
def test_targets_from_rows_equal_the_network_pass(models, world, name):
    """The pre-cache targets (the original on the permuted batch) equal the ones built from f_I and f_T rows."""
    original = models(name).frozen_copy()
    batch = encode_units(world.train[:3], original).batch(torch.arange(12), "cpu")
    pi = decoupling_permutation(batch["image_index"], torch.Generator().manual_seed(1))
    with torch.no_grad():
        image, text = original.image_embed(batch), original.text_embed(batch)
        torch.testing.assert_close(original.similarity_of(image, text[pi]), original.similarity(batch)[:, pi])
        if hasattr(original, "fused_of"):
            torch.testing.assert_close(original.fused_of(image, text[pi]),
                                       original.fused_embed(original.permute_texts(batch, pi)))
    assert not original.model.training  # eval mode: no dropout, so a row's output is the same at every step


def test_batches_carry_their_rows_positions(models, world):
    pairs = encode_units(world.train[:3], models("clip-tiny"))
    stream = BatchStream(pairs, 4, torch.Generator().manual_seed(0), torch.device("cpu"))
    seen = []
    for _ in range(stream.steps_per_pass):
        batch = stream.next()
        assert torch.equal(batch["input_ids"], pairs.input_ids[batch["example_index"]])
        assert torch.equal(batch["image_index"], pairs.pair_unit[batch["example_index"]])
        seen += batch["example_index"].tolist()
    assert sorted(seen) == list(range(len(pairs)))  # one pass meets every row once


def test_original_targets_compute_each_row_once():
    targets, computed = OriginalTargets(), []

    def compute(batch):
        computed.append(batch["example_index"].tolist())
        return batch["x"] * 2

    def batch(rows):
        index = torch.tensor(rows)
        return {"x": index.float()[:, None] + torch.zeros(1, 3), "example_index": index}

    assert targets.rows("f", batch([0, 5]), compute)[:, 0].tolist() == [0.0, 10.0]
    assert targets.rows("f", batch([9, 2]), compute)[:, 0].tolist() == [18.0, 4.0]  # the table grows to row 9
    assert targets.rows("f", batch([2, 0, 9]), compute)[:, 0].tolist() == [4.0, 0.0, 18.0]  # read back
    assert targets.rows("f", batch([2, 3]), compute)[:, 0].tolist() == [4.0, 6.0]  # row 3 is new: computed
    assert computed == [[0, 5], [9, 2], [2, 3]]
    assert targets.rows("g", batch([0]), compute)[:, 0].tolist() == [0.0] and len(computed) == 4  # another name
    without_index = {"x": torch.ones(1, 3)}
    assert targets.rows("f", without_index, lambda b: b["x"] * 3).tolist() == [[3.0, 3.0, 3.0]]


def deferred_readout(monkeypatch):
    """The CUDA path of the readout, exercised with CPU tensors (no device here)."""
    monkeypatch.setattr(step_readout, "READ_EVERY_SECONDS", math.inf)
    events = []
    readout = StepReadout(torch.device("cuda"), lambda kind, **fields: events.append(fields), 0.1, "unlearn",
                          {"request": 2})
    return readout, events


def record(readout, step, total):
    terms = readout.before_update(step, {"total": torch.tensor(total), "md": torch.tensor(step * 1.0)})
    readout.after_update(step, terms, 0.01, 12.34)


def test_deferred_readout_emits_every_step_in_one_read(monkeypatch):
    readout, events = deferred_readout(monkeypatch)
    for step in range(1, step_readout.READ_EVERY_STEPS):
        record(readout, step, 0.5)
    assert events == []  # nothing read back yet: the terms stay where they were computed
    record(readout, step_readout.READ_EVERY_STEPS, 0.25)
    assert [e["step"] for e in events] == list(range(1, step_readout.READ_EVERY_STEPS + 1))
    assert events[-1] == {"step": 16, "phase": "unlearn", "losses": {"total": 0.25, "md": 16.0}, "lr": 0.01,
                          "memory_mb": 12.3, "request": 2}
    record(readout, 17, 0.5)
    readout.flush()  # before an evaluation and at the end
    assert [e["step"] for e in events][-1] == 17


def test_deferred_nan_check_names_the_step(monkeypatch):
    readout, events = deferred_readout(monkeypatch)
    for step, total in ((1, 0.5), (2, math.nan), (3, 0.5)):
        record(readout, step, total)
    with pytest.raises(RunFailed, match="loss became nan at step 2 .*lower --lr \\(now 0.1\\)"):
        readout.flush()
    assert [e["step"] for e in events] == [1]
    on_cpu = StepReadout(torch.device("cpu"), lambda kind, **fields: None, 0.1, "unlearn", {})
    with pytest.raises(RunFailed, match="at step 4 \\(terms: total, md\\)"):  # the CPU checks before the update
        on_cpu.before_update(4, {"total": torch.tensor(math.inf), "md": torch.tensor(math.nan)})
