"""--devices N: data-parallel ranks (gloo on this CPU machine) take the single-process step on the
global batch, and a whole run on two ranks completes through the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from engine.loop import LoopConfig, run_loop
from engine.methods.base import Method
from engine.parallel import free_port, rank_of

from conftest import cli_env, link_shared_originals


class Rows:
    """A set of regression rows with the PairSet surface the loop reads (len, batch)."""

    def __init__(self, n: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.x, self.y = torch.randn(n, 4, generator=generator), torch.randn(n, 2, generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, indices: torch.Tensor, device) -> dict:
        return {"x": self.x[indices], "y": self.y[indices]}


class Net:
    def __init__(self):
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
        self.device = torch.device("cpu")


class AscendDescend(Method):
    """Per-example means on both sets: their data-parallel average is the global batch's mean."""

    uses_forget = uses_retain = True
    rows_seen: list[tuple[int, int]] = []

    def trainable_parameters(self):
        return list(self.model.model.parameters())

    def losses(self, forget, retain):
        self.rows_seen.append((len(forget["x"]), len(retain["x"])))
        ascend = ((self.model.model(forget["x"]) - forget["y"]) ** 2).mean()
        descend = ((self.model.model(retain["x"]) - retain["y"]) ** 2).mean()
        return {"total": descend - 0.5 * ascend, "forget": ascend, "retain": descend}


def train() -> tuple[list[dict], list[torch.Tensor], list[tuple[int, int]]]:
    net = Net()
    steps: list[dict] = []
    config = LoopConfig(lr=0.05, epochs=2, iterates="forget", forget_batch_size=8, retain_batch_size=16, seed=3)
    method = AscendDescend({}, net)
    method.rows_seen = []
    run_loop(method, Rows(24, 1), Rows(48, 2), config,
             lambda kind, **fields: steps.append(fields["losses"]) if kind == "step" else None)
    return steps, [p.detach().clone() for p in net.model.parameters()], method.rows_seen


def rank_run(rank: int, world: int, port: int, outbox) -> None:
    with rank_of(rank, world, port, cpu=True):
        steps, weights, rows_seen = train()
    if rank == 0:  # plain lists: a tensor would be shared by a file descriptor that dies with this process
        outbox.put((steps, [w.tolist() for w in weights], rows_seen))


def test_two_gloo_ranks_take_the_single_process_steps():
    single_steps, single_weights, single_rows = train()
    context = torch.multiprocessing.get_context("spawn")
    outbox, port = context.Queue(), free_port()
    ranks = [context.Process(target=rank_run, args=(rank, 2, port, outbox)) for rank in range(2)]
    for process in ranks:
        process.start()
    steps, weights, rows_seen = outbox.get(timeout=300)
    for process in ranks:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert set(single_rows) == {(8, 16)} and set(rows_seen) == {(4, 8)}  # each rank trained on half of each batch
    assert len(steps) == len(single_steps) == 6
    for ours, theirs in zip(steps, single_steps):
        for term in ("total", "forget", "retain"):
            assert abs(ours[term] - theirs[term]) < 1e-5, (term, ours, theirs)
    for ours, theirs in zip(weights, single_weights):
        assert torch.allclose(torch.tensor(ours), theirs, atol=1e-6)
    assert not torch.allclose(single_weights[0], Net().model[0].weight)  # the steps did move the weights


def test_a_run_on_two_cpu_ranks_completes(tmp_path):
    link_shared_originals(tmp_path)
    done = subprocess.run([str(Path(sys.executable).parent / "mmul-workbench"), "run", "--method", "ft",
                           "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4", "--epochs", "1",
                           "--seed", "42", "--device", "cpu", "--devices", "2", "--json"],
                          env=cli_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["steps"] >= 1 and 0 <= result["metrics"]["df_dr_auc"] <= 1
    assert (tmp_path / "cache" / "runs" / result["session"]).is_dir()  # rank 0 wrote the checkpoint
    bad = subprocess.run([str(Path(sys.executable).parent / "mmul-workbench"), "run", "--method", "ft",
                          "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4", "--devices", "0"],
                         env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--devices must be" in bad.stderr and "Traceback" not in bad.stderr
