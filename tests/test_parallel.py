"""--devices N: data-parallel ranks (gloo on this CPU machine) take the single-process step on the
global batch, with the whole model on each rank (--strategy ddp) or its parameters sharded over them
(--strategy fsdp); a whole run on two ranks completes through the CLI, and what cannot run is refused."""
from __future__ import annotations

import importlib.util
import json
import queue
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.loop import LoopConfig, run_loop
from engine.methods.base import Method
from engine.parallel import free_port, leave_rank, rank_of

from conftest import cli_env, run_in_process
from sessions_fixtures import small_flickr


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
    leave_rank(outbox)  # as the job's ranks leave (engine/execution/parallel_run.py)


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


class Stack(torch.nn.Module):
    """Layers in a ModuleList (each its own FSDP group), a head, and a scalar read outside any part's forward,
    as CLIP's logit_scale."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 8), torch.nn.Linear(8, 8)])
        self.head = torch.nn.Linear(8, 2)
        self.scale = torch.nn.Parameter(torch.tensor(1.5))


class StackNet:
    def __init__(self):
        torch.manual_seed(0)
        self.model = Stack()
        self.device = torch.device("cpu")


class AscendDescendByParts(AscendDescend):
    """The same losses, the model called part by part as the adapters do."""

    layer_values_held: list[int] = []

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        stack = self.model.model
        for layer in stack.layers:
            x = torch.tanh(layer(x))
        return stack.head(x) * stack.scale

    def losses(self, forget, retain):
        layers = self.model.model.layers.parameters()  # sharded here: a layer gathers only in its own forward
        self.layer_values_held.append(sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel()
                                          for p in layers))
        ascend = ((self.predict(forget["x"]) - forget["y"]) ** 2).mean()
        descend = ((self.predict(retain["x"]) - retain["y"]) ** 2).mean()
        return {"total": descend - 0.5 * ascend, "forget": ascend, "retain": descend}


def train_stack() -> tuple[list[dict], list[float], list[torch.Tensor]]:
    """Steps of the by-parts method on Stack, evaluated every two steps (the model plain again meanwhile)."""
    net = StackNet()
    steps: list[dict] = []
    evaluations: list[float] = []
    probe = torch.linspace(-1, 1, 12).reshape(3, 4)
    config = LoopConfig(lr=0.05, epochs=3, iterates="forget", forget_batch_size=8, retain_batch_size=16, seed=3,
                        eval_every=2)
    method = AscendDescendByParts({}, net)
    method.layer_values_held = []

    def evaluate(step: int) -> bool:
        with torch.no_grad():
            evaluations.append(float(method.predict(probe).sum()))
        return False

    run_loop(method, Rows(24, 1), Rows(48, 2), config,
             lambda kind, **fields: steps.append(fields["losses"]) if kind == "step" else None, evaluate=evaluate)
    assert all(type(p) is torch.nn.Parameter for p in net.model.parameters())  # plain again after the loop
    return steps, evaluations, [p.detach().clone() for p in net.model.parameters()], method.layer_values_held


def report_of(outbox, ranks, timeout: float = 300):
    """The next rank's report; a rank that died fails the test at once rather than at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return outbox.get(timeout=0.5)
        except queue.Empty:
            dead = [process.exitcode for process in ranks if process.exitcode not in (None, 0)]
            assert not dead, f"a rank died with exit status {dead[0]}"
    raise AssertionError("no report from the ranks in time")


def fsdp_rank_run(rank: int, world: int, port: int, outbox) -> None:
    with rank_of(rank, world, port, cpu=True, strategy="fsdp") as parallel:
        steps, evaluations, weights, layer_values_held = train_stack()
    outbox.put((rank, steps, evaluations, [w.tolist() for w in weights], layer_values_held, parallel.held))
    leave_rank(outbox)


def test_fsdp_ranks_hold_shards_and_take_the_single_process_steps():
    single_steps, single_evaluations, single_weights, whole_layers = train_stack()
    context = torch.multiprocessing.get_context("spawn")
    outbox, port = context.Queue(), free_port()
    ranks = [context.Process(target=fsdp_rank_run, args=(rank, 2, port, outbox)) for rank in range(2)]
    for process in ranks:
        process.start()
    reports = sorted((report_of(outbox, ranks) for _ in ranks), key=lambda report: report[0])
    for process in ranks:
        process.join(timeout=60)
        assert process.exitcode == 0
    total = sum(w.numel() for w in single_weights)
    for rank, steps, evaluations, weights, layer_values_held, (held, model_values) in reports:
        assert model_values == total and abs(held - total / 2) <= 3, (rank, held, total)  # half, and the whole scalar
        assert set(layer_values_held) == {whole_layers[0] // 2}  # each layer's weights halved between the ranks
        assert len(steps) == len(single_steps) == 9 and len(evaluations) == len(single_evaluations) == 4
        for ours, theirs in zip(steps, single_steps):
            for term in ("total", "forget", "retain"):
                assert abs(ours[term] - theirs[term]) < 1e-5, (rank, term, ours, theirs)
        assert all(abs(ours - theirs) < 1e-5 for ours, theirs in zip(evaluations, single_evaluations))
        for ours, theirs in zip(weights, single_weights):  # gathered: every rank has the whole model back
            assert torch.allclose(torch.tensor(ours), theirs, atol=1e-6)
    assert not torch.allclose(single_weights[0], StackNet().model.layers[0].weight)


def workbench(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "mmul-workbench"), *args], env=cli_env(home),
                          capture_output=True, text=True, timeout=timeout)


def test_a_sharded_run_on_two_cpu_ranks_completes(tmp_path):
    """The whole job under --strategy fsdp (CLIP's towers part by part, its scalar logit_scale, the evaluations
    and rank 0's checkpoint): the ddp path shares all of it but the loop's, which the tests above compare. The
    model to unlearn is an untrained tiny CLIP given as deployed, on a 24-image Flickr30K folder: what is
    checked is the job's path through the ranks, not what the model knows."""
    from engine.data.shapes import build_shapes_world
    from engine.models.registry import tiny_model_dir

    data = small_flickr(tmp_path / "ds")
    deployed = tiny_model_dir("clip-tiny", build_shapes_world("shapes-tiny"), 42, tmp_path / "models", task="retrieval")
    # the command in this process (the ranks are processes whatever starts them; zero3's test below runs the real one)
    done = run_in_process(tmp_path, "run", "--method", "ft", "--model", "clip-tiny", "--original", str(deployed),
                          "--data", f"flickr30k:{data}", "--delete", "4", "--epochs", "1", "--seed", "42",
                          *([] if not torch.cuda.is_available() else ["--device", "cpu"]),  # auto = CPU ranks here
                          "--devices", "2", "--strategy", "fsdp", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["steps"] >= 1 and 0 <= result["metrics"]["df_dr_auc"] <= 1
    assert (tmp_path / "cache" / "runs" / result["session"]).is_dir()  # rank 0 wrote the checkpoint
    session = (tmp_path / "sessions" / result["session"] / "session.json").read_text()
    assert '"strategy":"fsdp"' in session.replace(" ", "") and "fsdp: rank 0 holds" in session
    assert result["original"]["given"] is True  # nothing was trained for it


@pytest.mark.parametrize("method, args, said", [
    ("ft", ["--devices", "0"], "--devices must be"),
    ("ft", ["--strategy", "fsdp"], "--strategy fsdp shards the model over the ranks of --devices N"),
    ("ft", ["--devices", "2", "--strategy", "ring"], "--strategy must be ddp, fsdp or zero3, got 'ring'"),
    ("ft", ["--devices", "2", "--strategy", "zero3"], "--strategy zero3 "),
    ("masked_ga", ["--devices", "2", "--strategy", "fsdp"], "--strategy fsdp cannot run masked_ga"),
])
def test_what_cannot_run_on_several_devices_is_refused_in_one_line(tmp_path, method, args, said):
    protocol = ["--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4", *args]
    for command in (["run", "--method", method], ["study", "--methods", method, "--seeds", "1"]):
        bad = run_in_process(tmp_path, *command, *protocol)  # the message is the point; zero3's below is a process
        assert bad.returncode == 2 and said in bad.stderr, (command, bad.stderr)
        assert bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr


def test_zero3_without_deepspeed_says_what_to_install(tmp_path):
    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("DeepSpeed is installed here")
    bad = workbench("run", "--method", "ft", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "4",
                    "--devices", "2", "--strategy", "zero3", home=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: --strategy zero3 needs DeepSpeed: pip install deepspeed, or use --strategy "
                                  "fsdp (the same ZeRO-3 sharding in torch)")


def test_cpu_ranks_read_the_original_their_parent_prepared_at_their_thread_count(tmp_path):
    """The original's key holds its CPU thread count. The parent trained it at its own count, the ranks looked
    for theirs (the cores shared out), and one rank trained it inside the process group while the other waited on
    it: `run --devices 2 --device cpu` hung for good."""
    from engine.cache import FINGERPRINT_FILE
    from engine.parallel import rank_threads

    data = small_flickr(tmp_path / "ds")
    threads = torch.get_num_threads()
    torch.set_num_threads(rank_threads(2) + 1)   # this process computes otherwise than a rank will
    try:
        done = run_in_process(tmp_path, "run", "--method", "ft", "--model", "clip-tiny", "--data", f"flickr30k:{data}",
                              "--delete", "4", "--epochs", "1", "--seed", "42", "--device", "cpu", "--devices", "2",
                              "--json")
    finally:
        torch.set_num_threads(threads)
    assert done.returncode == 0, done.stderr[-2000:]
    originals = [entry for entry in (tmp_path / "cache" / "originals").iterdir() if not entry.name.startswith(".")]
    assert len(originals) == 1   # trained once, by the parent, and read by both ranks
    assert json.loads((originals[0] / FINGERPRINT_FILE).read_text())["cpu"]["threads"] == rank_threads(2)
