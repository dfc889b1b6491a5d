"""The GCN+BERT family: the forward pass against the layers run by hand on a two-graph PyG batch, the tiny
model's save_pretrained/from_pretrained round trip, and a plain BERT checkpoint as the text side."""
import json

import pytest
import torch

from engine.data.graph_records import Edge, Graph, GraphUnit, Node
from engine.data.graph_world import build_graph_world
from engine.data.pairs import encode_units
from engine.models.registry import load_adapter, tiny_model_dir

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def world():
    return build_graph_world("graph-tiny")


@pytest.fixture(scope="module")
def adapter(world, tmp_path_factory):
    directory = tiny_model_dir("gcn-bert-tiny", world, seed=5, cache=tmp_path_factory.mktemp("cache"),
                               task="classification")
    return load_adapter(str(directory), world, seed=5, cache=directory.parent, task="classification")


def two_graphs():
    """A typed three-atom chain and a two-atom molecule whose bond has no type."""
    chain = Graph([Node("carbon"), Node("oxygen"), Node("carbon", "ring")],
                  [Edge(0, 1, "single"), Edge(1, 2, "double")])
    pair = Graph([Node("nitrogen"), Node("carbon")], [Edge(0, 1)])
    return [GraphUnit("g/0", chain, ["a molecule with an amine group"], labels=[1]),
            GraphUnit("g/1", pair, ["a five ring"], labels=[0])]


def by_hand(model, graph: Graph, symbol_ids) -> tuple[torch.Tensor, torch.Tensor]:
    """Node states and f_G of one graph with dense matrices: GCN = D^-1/2 (A + I) D^-1/2 X W^T + b."""
    n = len(graph.nodes)
    x = model.embed_symbols(symbol_ids([f"{v.type} {v.text}" if v.text else v.type for v in graph.nodes]))
    context, count = torch.zeros_like(x), torch.zeros(n)
    for e in graph.edges:
        message = model.edge_transform(model.embed_symbols(symbol_ids([e.type or ""])))[0]
        for target in (e.source, e.target):
            context[target] += message
            count[target] += 1
    x = x + context / count.clamp_min(1).unsqueeze(1)
    adjacency = torch.eye(n)
    for e in graph.edges:
        adjacency[e.source, e.target] = adjacency[e.target, e.source] = 1.0
    norm = adjacency.sum(1).rsqrt()
    propagate = norm[:, None] * adjacency * norm[None, :]
    for layer in model.gcn:
        x = torch.relu(propagate @ (x @ layer.lin.weight.t()) + layer.bias)
    x = model.graph_norm(x)
    return x, x.mean(0)


@torch.no_grad()
def test_forward_matches_layers_run_by_hand_on_a_two_graph_batch(adapter):
    model = adapter.model.eval()
    units = two_graphs()
    pairs = encode_units(units, adapter)
    batch = pairs.batch(torch.arange(2), CPU)
    graphs = batch["graphs"]
    assert graphs.num_graphs == 2 and graphs.batch.tolist() == [0, 0, 0, 1, 1]
    assert graphs.edge_index.shape == (2, 6)  # each edge both ways, the second graph's offset by 3 nodes

    hand = [by_hand(model, unit.graph, adapter.symbol_ids) for unit in units]
    torch.testing.assert_close(adapter.image_embed(batch), torch.stack([h[1] for h in hand]), atol=1e-5, rtol=1e-5)

    text_states = model.encode_text(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(adapter.text_embed(batch), text_states[:, 0])
    # f(G, T): each text attends to its own graph's nodes only (the shorter graph's padding is masked)
    for row, (nodes, _) in enumerate(hand):
        keys = model.node_to_text(nodes)[None]
        alone = model.fuse(text_states[row:row + 1], batch["attention_mask"][row:row + 1], keys,
                           torch.ones(1, len(nodes), dtype=torch.bool))
        torch.testing.assert_close(adapter.fused_embed(batch)[row], alone[0], atol=1e-5, rtol=1e-5)
    logits = adapter.class_logits(batch)
    assert logits.shape == (2, len(adapter.model.config.id2label))
    expected = -torch.log_softmax(logits, -1)[torch.arange(2), batch["labels"]]
    torch.testing.assert_close(adapter.example_losses(batch), expected)


def test_tiny_round_trip_and_both_task_contracts(world, tmp_path):
    for task in ("classification", "retrieval"):
        directory = tiny_model_dir("gcn-bert-tiny", world, seed=3, cache=tmp_path, task=task)
        config = json.loads((directory / "config.json").read_text())
        assert config["model_type"] == "gcn_bert" and config["architectures"] == ["GcnBertModel"]
        assert config["text_config"]["model_type"] == "bert" and config["graph_layers"] == 2
        adapter = load_adapter(str(directory), world, seed=3, cache=tmp_path, task=task)  # a real checkpoint's path
        again = load_adapter("gcn-bert-tiny", world, seed=3, cache=tmp_path, task=task)
        for a, b in zip(adapter.model.parameters(), again.model.parameters()):
            assert torch.equal(a, b)
        ids = adapter.tokenize(world.train[0].texts)["input_ids"]
        assert (ids != adapter.tokenizer.unk_token_id).all()
        pairs = encode_units(world.train[:4], adapter)
        batch = pairs.batch(torch.arange(len(pairs)), CPU)
        loss = adapter.task_loss(batch)
        loss.backward()
        assert torch.isfinite(loss)
        groups = adapter.parameter_groups()
        assert {id(p) for p in groups["vision"]} | {id(p) for p in groups["text"]} == {id(p) for p in groups["all"]}
        assert any(p.grad is not None for p in groups["vision"])
        if task == "retrieval":
            assert adapter.similarity(batch).shape == (len(pairs), len(pairs))
            i2t, t2i = adapter.score_matrix(pairs, 8)
            assert i2t.shape == t2i.shape == (4, len(pairs))
            # --k-test: each graph's top 2 texts (each text's top 2 graphs) re-ranked, the rest -100; 0 = ITC only
            adapter.k_test = 2
            top_i2t, top_t2i = adapter.score_matrix(pairs, 8)
            assert ((top_i2t > -100).sum(dim=1) == 2).all() and ((top_t2i > -100).sum(dim=0) == 2).all()
            adapter.k_test = 0
            itc, same = adapter.score_matrix(pairs, 8)
            assert (itc > -100).all() and torch.equal(itc, same)
            assert adapter.pair_scores(batch).shape == (len(pairs),)
        else:
            assert not hasattr(adapter, "similarity")  # MultiDelete regresses the fused embedding
            assert adapter.model.config.id2label == dict(enumerate(world.classes))


def test_a_plain_bert_checkpoint_becomes_the_text_side(world, tmp_path):
    from transformers import BertConfig, BertModel

    from engine.models.gcn_bert import GcnBertClassifierAdapter  # torch_geometric: here, not at collection (seconds)
    from engine.models.tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(world.vocabulary())
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, max_position_embeddings=64), add_pooling_layer=False)
    bert.save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    adapter = load_adapter(str(tmp_path / "bert"), world, seed=0, cache=tmp_path, task="classification")
    assert isinstance(adapter, GcnBertClassifierAdapter) and adapter.head_initialised
    for name, value in bert.state_dict().items():
        assert torch.equal(adapter.model.text_encoder.state_dict()[name], value)
    twice = load_adapter(str(tmp_path / "bert"), world, seed=0, cache=tmp_path, task="classification")
    for a, b in zip(adapter.model.parameters(), twice.model.parameters()):  # fixed starting weights
        assert torch.equal(a, b)
    batch = encode_units(world.train[:2], adapter).batch(torch.arange(4), CPU)
    assert adapter.class_logits(batch).shape == (4, len(world.classes))


def test_torch_geometric_loads_only_with_a_graph_job():
    """The tasks, the facade, the graph world and its reader never import torch_geometric (seconds to load)."""
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import sys, engine.api, engine.tasks.classification, engine.tasks.retrieval, engine.data.graph_world, "
            "engine.data.graph_text, engine.models.registry\nprint('torch_geometric' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("task", ["classification", "retrieval"])
def test_every_method_that_takes_the_family_steps_on_it(world, tmp_path, task):
    """Each method's loss terms on a Df and a Dr batch of GCN+BERT are finite and reach the weights."""
    from engine.errors import SpecError
    from engine.protocols.requests import method_class
    from engine.spec import METHODS, validate

    model = load_adapter("gcn-bert-tiny", world, seed=1, cache=tmp_path, task=task)
    pairs = encode_units(world.train[:8], model)
    forget_set, retain_set = pairs.select_units([0, 1, 2]), pairs.select_units([3, 4, 5, 6, 7])
    forget, retain = forget_set.batch(torch.arange(12), CPU), retain_set.batch(torch.arange(12), CPU)
    ran = []
    for name in METHODS:
        try:
            spec = validate({"method": name, "model": "gcn-bert-tiny", "data": "graph-tiny", "task": task,
                             "deletion": {"strategy": "random", "n": 4}})
        except SpecError:
            continue  # a method this family or task cannot serve is refused before anything runs
        cls = method_class(spec["method"])
        method = cls(spec["params"], model, model.frozen_copy(), torch.Generator().manual_seed(0))
        method.before_training(forget_set if cls.uses_forget else None, retain_set if cls.uses_retain else None)
        losses = method.losses(forget if cls.uses_forget else None, retain if cls.uses_retain else None)
        assert torch.isfinite(losses["total"]), name
        model.model.zero_grad()
        losses["total"].backward()
        assert any(p.grad is not None for p in method.trainable_parameters()), name
        ran.append(spec["method"])
    assert {"multidelete", "retrain", "ft", "neggrad", "ga_klr", "npo", "d2d"} <= set(ran)
