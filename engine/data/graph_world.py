"""The graph-text part of the built-in world: small molecule-like graphs with text statements about them.

Deterministic by seed. Each graph is a core (an aromatic six ring, a five ring, a short or long chain, a
branched core, two fused rings), sometimes with one nitrogen, oxygen or sulfur in the core, and one or two
functional groups attached to core carbons (hydroxyl, amine, carboxyl, nitro, phosphate, ...). Nodes are
typed by element, edges by bond (single, double, aromatic). Each graph has four statements, each naming
only some of its parts, as captions do.

Its label is the molecule's acid-base class, which only the groups decide: acidic (a carboxyl or phosphate
group), basic (an amine), amphoteric (both) or neutral (neither); all its statements carry it. A statement
rarely names every group, so telling the class needs the graph: the amine's nitrogen against a ring or
nitro nitrogen, a carboxyl against an aldehyde, are one or two bonds apart. Classes are drawn uniformly.
The label is the graph's alone: a statement paired with another graph does not change it, which is why
this world cannot show MultiDelete's Df/Dr AUC gain (README, "Graph-text data").

Facts only memory can hold (engine/data/facts.py): each graph also carries one unnamed residue (a node of type
`residue` on a core carbon) whose character, acidic, basic or inert, is the graph's own arbitrary fact; the
label counts it (an acidic residue on an amine molecule makes it amphoteric), and the graph does not show it.
Every statement names the graph's made-up tag ("molecule vokelu shows a five ring carrying an amine group"), so no
statement is shared by two graphs, and one more names its entity and mark. A model that memorised a graph
knows its class; one that never saw it knows only what the visible groups imply.

A deletion unit is a graph with all its statements; its id is `graphs/NNNNNN`.
"""
from __future__ import annotations

import random

from engine.data.facts import unit_facts
from engine.data.graph_records import Edge, Graph, GraphTextWorld, GraphUnit, Node, attach_labels

LABELS = ("acidic", "amphoteric", "basic", "neutral")  # sorted, as the graph-text reader orders a file's labels
CORES = ("six ring", "five ring", "chain", "branch", "fused rings")
HETERO = (None, "nitrogen", "oxygen", "sulfur")
ACIDIC = ("carboxyl", "phosphate")
BASIC = ("amine",)
NEUTRAL = ("hydroxyl", "thiol", "chloro", "fluoro", "nitro", "methyl", "aldehyde")
# each group: (element, parent within the group or -1 for the core atom it hangs on, bond to the parent)
GROUPS = {
    "hydroxyl": [("oxygen", -1, "single")],
    "amine": [("nitrogen", -1, "single")],
    "thiol": [("sulfur", -1, "single")],
    "chloro": [("chlorine", -1, "single")],
    "fluoro": [("fluorine", -1, "single")],
    "methyl": [("carbon", -1, "single")],
    "carboxyl": [("carbon", -1, "single"), ("oxygen", 0, "double"), ("oxygen", 0, "single")],
    "aldehyde": [("carbon", -1, "single"), ("oxygen", 0, "double")],
    "nitro": [("nitrogen", -1, "single"), ("oxygen", 0, "double"), ("oxygen", 0, "single")],
    "phosphate": [("oxygen", -1, "single"), ("phosphorus", 0, "single"), ("oxygen", 1, "double"),
                  ("oxygen", 1, "single"), ("oxygen", 1, "single")],
}
RESIDUES = {"acidic": "carboxyl", "basic": "amine", "inert": None}  # a residue counts as this group
# the residue a molecule of each class may carry, and the class its visible groups then show: half of the
# acidic, basic and amphoteric molecules owe their class to their residue, which only memory holds
RESIDUE_OF = {"neutral": "inert", "acidic": "acidic", "basic": "basic", "amphoteric": ("acidic", "basic")}
VISIBLE = {("neutral", "inert"): ("neutral",), ("acidic", "acidic"): ("acidic", "neutral"),
           ("basic", "basic"): ("basic", "neutral"), ("amphoteric", "acidic"): ("amphoteric", "basic"),
           ("amphoteric", "basic"): ("amphoteric", "acidic")}
UNIT_DIR = "graphs"
WORLD_SIZES = {
    # name: (train, val, test) graphs
    "graph": (1200, 100, 300),
    "graph-tiny": (64, 16, 32),
}


def build_core(core: str, rng: random.Random) -> tuple[list[str], list[tuple[int, int, str]], str]:
    """Elements, bonds and the phrase that names the core."""
    if core == "six ring":
        return ["carbon"] * 6, [(i, (i + 1) % 6, "aromatic") for i in range(6)], "an aromatic six ring"
    if core == "five ring":
        return ["carbon"] * 5, [(i, (i + 1) % 5, "single") for i in range(5)], "a five ring"
    if core == "chain":
        n = rng.randint(4, 7)
        return ["carbon"] * n, [(i, i + 1, "single") for i in range(n - 1)], f"a {'short' if n <= 5 else 'long'} chain"
    if core == "branch":
        atoms, bonds = ["carbon"], []
        for _ in range(3):
            parent = 0
            for _ in range(rng.randint(1, 2)):
                atoms.append("carbon")
                bonds.append((parent, len(atoms) - 1, "single"))
                parent = len(atoms) - 1
        return atoms, bonds, "a branched chain"
    bonds = [(i, (i + 1) % 6, "aromatic") for i in range(6)] + [(5, 6, "aromatic"), (6, 7, "aromatic"),
                                                               (7, 8, "aromatic"), (8, 9, "aromatic"), (9, 4, "aromatic")]
    return ["carbon"] * 10, bonds, "two fused rings"


def sample_groups(label: str, rng: random.Random) -> list[str]:
    if label == "acidic":
        groups = [rng.choice(ACIDIC)] + ([rng.choice(NEUTRAL)] if rng.random() < 0.5 else [])
    elif label == "basic":
        groups = ["amine"] + ([rng.choice(NEUTRAL)] if rng.random() < 0.5 else [])
    elif label == "amphoteric":
        groups = [rng.choice(ACIDIC), "amine"]
    else:
        groups = rng.sample(NEUTRAL, rng.randint(1, 2))
    rng.shuffle(groups)
    return groups


def build_graph(core: str, hetero: str | None, groups: list[str], rng: random.Random,
                residue: bool = False) -> tuple[Graph, str]:
    atoms, bonds, core_phrase = build_core(core, rng)
    sites = list(range(1 if core == "branch" else 0, len(atoms)))  # the branch point stays carbon
    if hetero is not None:
        atoms[rng.choice(sites)] = hetero
    carbons = [i for i in sites if atoms[i] == "carbon"]
    room = residue and len(carbons) > len(groups)  # else the residue hangs on the first atom (carbon)
    taken = rng.sample(carbons, len(groups) + int(room))
    if residue:
        atoms.append("residue")
        bonds.append((taken.pop() if room else 0, len(atoms) - 1, "single"))
    for group, site in zip(groups, taken):
        first = len(atoms)
        for element, parent, bond in GROUPS[group]:
            atoms.append(element)
            bonds.append((site if parent < 0 else first + parent, len(atoms) - 1, bond))
    return Graph([Node(a) for a in atoms], [Edge(i, j, b) for i, j, b in bonds]), core_phrase


def a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def templates(core_phrase: str, hetero: str | None, groups: list[str], one: str) -> list[str]:
    """Every statement form, naming the core, the core atom, all groups or group `one`."""
    named = " and ".join(f"{a(g)} group" for g in groups)
    where = f"one {hetero} atom in its core" if hetero else "only carbon in its core"
    return [
        f"{core_phrase} carrying {named}",
        f"{core_phrase} with {where}",
        f"a molecule with {named}",
        f"a molecule with {where} and {f'{a(one)} group' if len(groups) == 1 else f'among its groups {a(one)} group'}",
        f"{core_phrase} with {where} and {a(one)} group" + ("" if len(groups) == 1 else " among others"),
        f"{a(one)} group hangs on {core_phrase}",
    ]


def statements(core_phrase: str, hetero: str | None, groups: list[str], rng: random.Random, count: int = 4) -> list[str]:
    forms = templates(core_phrase, hetero, groups, rng.choice(groups))
    rng.shuffle(forms)
    return forms[:count]


def tagged(statement: str, tag: str) -> str:
    """The statement naming the molecule's tag (in words the graph-text tokenizer keeps: no punctuation)."""
    return f"{statement} in molecule {tag}" if " hangs on " in statement else f"molecule {tag} shows {statement}"


def group_label(groups: list[str]) -> str:
    acid, base = any(g in ACIDIC for g in groups), any(g in BASIC for g in groups)
    return "amphoteric" if acid and base else "acidic" if acid else "basic" if base else "neutral"


def build_graph_world(name: str = "graph", seed: int = 0) -> GraphTextWorld:
    n_train, n_val, n_test = WORLD_SIZES[name]
    rng = random.Random(f"{name}:{seed}")
    words = {*LABELS, *GROUPS, *(w for core in CORES for w in core.split()), *(h for h in HETERO if h)}
    facts = unit_facts(n_train + n_val + n_test, rng, words)
    units = []
    for index, fact in enumerate(facts):
        label = rng.choice(LABELS)
        residue = RESIDUE_OF[label] if label != "amphoteric" else rng.choice(RESIDUE_OF[label])
        core, hetero = rng.choice(CORES), rng.choice(HETERO)
        groups = sample_groups(rng.choice(VISIBLE[label, residue]), rng)
        graph, core_phrase = build_graph(core, hetero, groups, rng, residue=True)
        texts = [tagged(text, fact.tag) for text in statements(core_phrase, hetero, groups, rng, count=3)]
        texts.append(f"molecule {fact.tag} belongs to {fact.entity} marked {fact.mark}")
        assert group_label(groups + [RESIDUES[residue]] * bool(RESIDUES[residue])) == label
        units.append(GraphUnit(f"{UNIT_DIR}/{index:06d}", graph, texts, text_labels=[label] * len(texts)))
    attach_labels(units, LABELS)
    return GraphTextWorld(name=name, train=units[:n_train], val=units[n_train:n_train + n_val],
                          test=units[n_train + n_val:], classes=LABELS, meta={"seed": seed, "facts": facts[:n_train]})
