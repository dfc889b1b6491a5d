"""Four-option QA about people (PULSE on MLLMU-Bench-style data): units are people.

- batch: chat prompts with the answer tokens labelled (engine/data/people_batches.py). A request's forget
  rows are the forget people's image questions (`--forget-rows image`, the default, as MLLMU-Bench's forget
  VQA) or every one of their rows, the by-name text-only ones too (`all`); Dr keeps every retain row. With the method's
  `reads_unimodal` each row also carries the question asked without the image (f_T of an LMM); for a method
  that requires "refusals" it also carries the prompt with a refusal answer (the data's `refusals` list);
- task loss: the answer NLL (the family's); evaluation: four-option accuracy of the people forgotten so
  far (`forget`), of all forget people (`forget_all`), of the retain people and of the people of the other
  phase (`other`), each with the image and text-only, and on the MMBench-format general set with its
  retention in percent of the original's; the standard membership attacks (engine/metrics/attacks.py:
  LOSS, zlib, Min-K%, Min-K%++), `mia.*_auc`: members = the forgotten people's questions answered with the
  right option (the fact itself), held-out = the held-out people's questions answered with theirs (people
  no phase trains, phase "heldout"; data without them has no `mia.*`). `option_gap.*_auc` is the same four
  scores separating the forget questions' right options from their wrong options: a graded forget
  accuracy, not membership (it was reported as `mia.*` before issue 20).
- the knowledge-source scenario: forget people come from the people learned in pretraining
  (`--knowledge pretrained`) or in fine-tuning (`finetuned`); a registered tiny model learns them in those two
  phases. A real checkpoint arrives pretrained: with `--knowledge pretrained` it is the original untouched, and
  the forget and retain people are drawn among those it already answers (engine/tasks/knowledge.py).
"""
from __future__ import annotations

import copy
import hashlib
import random
from dataclasses import replace
from pathlib import Path

from engine.data.fingerprint import data_fingerprint
from engine.data.people_batches import encode_items
from engine.data.people_facts import KEYS, covers, draw_facts, fact_id, person_of, question_key, question_wordings
from engine.data.people_records import HELDOUT, KNOWLEDGE_PHASE
from engine.data.registry import load_data
from engine.metrics.attacks import attack_aucs
from engine.metrics.multiple_choice import accuracy, choices, score_options
from engine.devices import resolve_device
from engine.models.registry import load_adapter
from engine.seeding import derive_seed
from engine.tasks.knowledge import KNOWN_THRESHOLD, draw_known, person_accuracies, trains_nothing
from engine.spec import MODELS, PEOPLE_WORLDS
from engine.spec.catalog import PULSE_UNLEARN_EPOCHS

TINY_IMAGE_SIZE = 32

# Original-model recipes. "tiny": llava-tiny learns everything from scratch (measured on people-tiny:
# P 70% image / 100% text, F 100% / 100%, 25 s on one CPU core; every fact is asked 8 times an epoch).
# "tiny:people": the same for the `people` world, which needs more passes (and more replay, as its
# pretraining set is mostly shape questions) for the vision tower trained from scratch to tell the faces
# apart. "pretrained": a real LLaVA checkpoint is taught the people with LoRA, as MLLMU-Bench fine-tunes on
# its fictitious profiles. Replay: a sample of the pretraining items mixed into fine-tuning for the tiny
# model (a 2-layer model trained from scratch otherwise forgets P catastrophically, which a real LMM
# fine-tuned with LoRA on a small set does not).
LMM_RECIPES = {
    "tiny": {
        "pretrain": {"lr": 3e-3, "epochs": 25, "batch_size": 32, "update": "full"},
        "finetune": {"lr": 3e-3, "epochs": 25, "batch_size": 32, "update": "full", "replay": 1.0},
        "unlearn_lr": 1e-3,
        "unlearn_epochs": PULSE_UNLEARN_EPOCHS,
    },
    # Measured on the 40-person `people`: P 70% image / 90% text, F 76% / 95%, MMBench-format set 63.5%; 567 s on
    # one core. The 250-person world keeps the epochs (each fact is asked as often an epoch; an epoch has 3.8x the
    # rows: about 35 min on one core, estimated from one epoch of each phase); its answers are not measured yet.
    "tiny:people": {
        "pretrain": {"lr": 3e-3, "epochs": 80, "batch_size": 32, "update": "full"},
        "finetune": {"lr": 2e-3, "epochs": 60, "batch_size": 32, "update": "full", "replay": 2.0},
        # GA on one request of 10 people at 1e-3 takes every person and MMBench to chance; 1e-4 barely moves
        # the forget people; 5e-4 (x 5 epochs, LoRA r16) takes them most of the way (same for every method).
        "unlearn_lr": 5e-4,
        "unlearn_epochs": PULSE_UNLEARN_EPOCHS,
    },
    # people-small (seed 42, measured on the people not forgotten as well as those forgotten): with the tiny
    # recipe (25 + 25 epochs) the original answered P people 48% image / 80% text-only, F 93% / 100%, MMBench-format
    # set 38%; 50 pretraining epochs: P 52% / 88%; 80: P 70% / 86%, F 100% / 100%, MMBench 44% (as `people`'s P).
    "tiny:people-small": {
        "pretrain": {"lr": 3e-3, "epochs": 80, "batch_size": 32, "update": "full"},
        "finetune": {"lr": 3e-3, "epochs": 25, "batch_size": 32, "update": "full", "replay": 1.0},
        "unlearn_lr": 1e-3,
        "unlearn_epochs": PULSE_UNLEARN_EPOCHS,
    },
    "pretrained": {
        "pretrain": {"lr": 2e-4, "epochs": 3, "batch_size": 8, "update": "llm"},
        "finetune": {"lr": 2e-4, "epochs": 3, "batch_size": 8, "update": "llm", "replay": 0.0},
        "unlearn_lr": 1e-5,
        "unlearn_epochs": PULSE_UNLEARN_EPOCHS,
    },
}


def lmm_recipe(model: str, data: str | None = None) -> dict:
    """The recipe for `model` on `data`: a tiny model's may be tuned per built-in world ("tiny:<world>")."""
    if model not in MODELS:
        return copy.deepcopy(LMM_RECIPES["pretrained"])
    return copy.deepcopy(LMM_RECIPES.get(f"tiny:{data}", LMM_RECIPES["tiny"]))


def data_name(ref: str) -> str:
    if ref in PEOPLE_WORLDS:
        return ref
    return "mllmu-" + hashlib.sha1(str(Path(ref.partition(":")[2]).expanduser().resolve()).encode()).hexdigest()[:8]


class ModelSource:
    """What the model registry needs of the data to build a tiny model once: a name, a vocabulary, an image size."""

    def __init__(self, name: str, data):
        self.name, self.data, self.image_size = name, data, TINY_IMAGE_SIZE

    def vocabulary(self) -> list[str]:
        return self.data.vocabulary()


def load_general(spec: dict, data):
    if spec.get("general"):
        from engine.data.mmbench import read_mmbench

        return read_mmbench(spec["general"].partition(":")[2], require_answer=True)
    return getattr(data, "general_eval", None)


class MultipleChoice:
    name = "multiple_choice"

    @property
    def cpu_threads(self) -> int | None:
        # a tiny LMM is op-overhead bound: one thread is fastest, and immune to contention
        return 1 if self.spec["model"] in MODELS else None

    def __init__(self, spec: dict, emit, should_stop, cache):
        self.spec, self.emit, self.should_stop, self.cache = spec, emit, should_stop, cache
        self.data = load_data(spec["data"])
        self.data_name = data_name(spec["data"])
        self.data_fingerprint = data_fingerprint(spec["data"])  # the original's cache key: content, not name
        self.source = ModelSource(self.data_name, self.data)
        self.general = load_general(spec, self.data)
        self.recipe = lmm_recipe(spec["model"], spec["data"])
        scoring = spec["params"]["mc_scoring"]
        self.scoring = scoring if scoring != "auto" else ("option" if spec["model"] in MODELS else "letter")
        self.phase = KNOWLEDGE_PHASE[spec["knowledge"]]
        self.forget_rows = spec["params"].get("forget_rows", "image")
        self.heldout_people = sorted(p.person_id for p in self.data.people if p.phase == HELDOUT)
        # a real checkpoint's pretrained knowledge is what it already answers: known only once it is scored
        # (engine/protocols/originals.py then returns the checkpoint itself as the original)
        self.original_is_checkpoint = trains_nothing(spec["model"] not in MODELS, spec["knowledge"])
        self.person_accuracies: dict[str, float] | None = None
        # --granularity fact (engine/data/people_facts.py): `forget` facts of the pool's people are the deletion set;
        # the people they belong to are the forget people (their other facts kept), the others the retain people
        self.forget_facts: list[str] | None = None
        if self.original_is_checkpoint:  # (validation refuses facts there: the checkpoint's people are not drawn yet)
            self.forget_people, self.retain_people, self.other_people = [], [], []  # drawn in forget_units
        else:
            pool = [p.person_id for p in self.data.people if p.phase == self.phase]
            if spec.get("granularity") == "fact":  # `forget` counts facts here, not people
                self.forget_facts = draw_facts(pool, spec["forget"], spec["knowledge"], spec["seed"])
                self.forget_people = sorted({person_of(f) for f in self.forget_facts})
            else:
                count = spec["forget"] if spec["forget"] is not None else max(spec["requests"], (len(pool) + 1) // 2)
                self.forget_people = self.data.forget_people(spec["knowledge"], count, spec["seed"])
            self.retain_people = sorted(set(pool) - set(self.forget_people))
            self.other_people = sorted(p.person_id for p in self.data.people if p.phase not in (self.phase, HELDOUT))
        self.wordings = question_wordings(self.data.people)
        self.by_person: dict[str, list] = {}
        for item in self.data.person_train:
            self.by_person.setdefault(item.person_id, []).append(item)
        self.train_size = len(self.data.person_train)
        self.original_mmbench: float | None = None

    def load(self, source: str, device):
        return load_adapter(source, self.source, self.spec["seed"], self.cache, self.name).to(device)

    def validation_view(self, model) -> None:
        """None: the guardrails judge the people's own questions of the reported evaluation (forget, retain,
        other: the run's objective, not a held-out split); MMBench, reported, is no rule's to read."""
        return None

    def forget_units(self) -> list[str]:
        if self.original_is_checkpoint and self.person_accuracies is None:
            self.draw_known_people()
        facts = f"{len(self.forget_facts)} facts of " if self.forget_facts is not None else ""
        self.emit("log", level="info", message=f"forget {facts}{len(self.forget_people)} {self.spec['knowledge']} "
                  f"people; {len(self.retain_people)} retain people; scoring {self.scoring}")
        return self.deletion_set()

    def draw_known_people(self) -> None:
        """Score every person of the data with the checkpoint as it is (it is the original), then draw the forget
        people among those it answers at >= KNOWN_THRESHOLD; the other known people are the retain set. Nobody
        was fine-tuned, so there is no `other` group."""
        spec = self.spec
        self.emit("log", level="info", message=f"pretrained knowledge of {spec['model']}: scoring the "
                  f"{len(self.data.people)} people's questions to find those it answers")
        model = self.load(spec.get("original") or spec["model"], resolve_device(spec["device"]))  # the deployed model
        self.person_accuracies = person_accuracies(model, self.data, self.scoring)
        del model
        known = sum(value >= KNOWN_THRESHOLD for value in self.person_accuracies.values())
        count = spec["forget"] if spec["forget"] is not None else max(spec["requests"], (known + 1) // 2)
        self.forget_people, self.retain_people = draw_known(self.person_accuracies, count, spec["seed"])

    # --- the original ---------------------------------------------------------------------------
    def original_recipe(self) -> dict:
        return {k: self.recipe[k] for k in ("pretrain", "finetune")} | {"kind": "pulse"}

    def train_original(self, model, run_training) -> None:
        pretrain_items = self.data.train_items("pretrain")
        for phase in ("pretrain", "finetune"):
            step = self.recipe[phase]
            items = list(self.data.train_items(phase))
            replay = step.get("replay", 0.0)
            if phase == "finetune" and replay and pretrain_items:
                count = min(len(pretrain_items), int(round(replay * len(items))))
                items += random.Random(derive_seed(self.spec["seed"], "replay")).sample(pretrain_items, count)
            if items:
                run_training(model, encode_items(model, self.data, items), lr=step["lr"], epochs=step["epochs"],
                             batch_size=step["batch_size"], update=step["update"], phase=f"original:{phase}",
                             weight_decay=0.0)

    # --- data -----------------------------------------------------------------------------------
    def prepare(self, model) -> None:
        pass  # items are encoded per request: the text-only view is built only for methods that read it

    def items(self, units) -> list:
        """The training rows of `units`: people (all their rows) or facts (`PERSON#KEY`: the rows asking it)."""
        if all(person_of(unit) == unit for unit in units):
            return [item for pid in units for item in self.by_person.get(pid, [])]
        chosen = set(units)
        return [item for pid in dict.fromkeys(map(person_of, units)) for item in self.by_person.get(pid, [])
                if covers(chosen, pid, self.wordings[pid].get(item.question))]

    def kept_facts(self) -> list[str]:
        """--granularity fact: the forget people's facts outside the deletion set (their holdout_identity)."""
        deleted = set(self.forget_facts or [])
        return [fact_id(pid, key) for pid in self.forget_people for key in KEYS if fact_id(pid, key) not in deleted]

    def deletion_set(self) -> list[str]:
        """The whole deletion set: the forget facts (--granularity fact) or the forget people."""
        return self.forget_facts if self.forget_facts is not None else self.forget_people

    def forget_items(self, people) -> list:
        """A request's forget rows: the people's image questions (`--forget-rows image`) or all their rows."""
        items = self.items(people)
        return items if self.forget_rows == "all" else [item for item in items if item.image is not None]

    def encode(self, model, people: list[str], unimodal: bool, refusals: bool = False):
        """The people's forget rows (`forget_items`); with `refusals` (TaskInfo provides "refusals") each row also
        carries its prompt with one of the data's refusal answers (`refusal_*`), for idk and idkdpo."""
        return encode_items(model, self.data, self.forget_items(people), multimodal=unimodal, refusals=refusals)

    def preserve_items(self) -> dict[str, list]:
        """MMUnlearner's preserve sets (released `MLLMU_gen_mask.py`): `knowledge` = the text-only rows of every
        person the original learned, the forget people included; `retain_vqa` = the retain people's image rows."""
        everyone = [*self.forget_people, *self.retain_people, *self.other_people]
        return {"knowledge": [item for item in self.items(everyone) if item.image is None],
                "retain_vqa": [item for item in self.items(self.retain_people) if item.image is not None]}

    def preserve_sets(self, model) -> dict:
        return {name: encode_items(model, self.data, items) for name, items in self.preserve_items().items()}

    def retain_set(self, model, unimodal: bool):
        from engine.errors import SpecError

        if not self.retain_people:
            raise SpecError(f"no retain people left among the {self.spec['knowledge']} people for this method "
                            "(it needs Dr); choose a smaller --forget N", field="forget")
        kept = []
        if self.forget_facts is not None:  # the forget people's other rows ("Who is this person?" included)
            deleted = set(self.forget_facts)
            kept = [item for pid in self.forget_people for item in self.by_person.get(pid, [])
                    if not covers(deleted, pid, self.wordings[pid].get(item.question))]
        return encode_items(model, self.data, self.items(self.retain_people) + kept, multimodal=unimodal)

    def unlearn_defaults(self, retraining: bool) -> dict:
        return {"lr": self.recipe["unlearn_lr"], "epochs": self.recipe["unlearn_epochs"], "retain_batch_size": None}

    # --- evaluation -----------------------------------------------------------------------------
    def questions(self, units: set[str], with_image: bool):
        """The evaluation questions of `units` (people, or facts `PERSON#KEY`) asked with or without the image."""
        return [q for q in self.data.eval_questions if q.with_image == with_image and self.asks(units, q)]

    @staticmethod
    def asks(units: set[str], question) -> bool:
        return question.person_id in units or covers(units, question.person_id, question_key(question.qid))

    def evaluate(self, model, forgotten: list[str]) -> dict[str, float]:
        groups = {"forget": set(forgotten), "forget_all": set(self.deletion_set()),
                  "retain": set(self.retain_people), "other": set(self.other_people)}
        if self.forget_facts is not None:
            groups["holdout_identity"] = set(self.kept_facts())
        forget_questions = [q for q in self.data.eval_questions if self.asks(groups["forget"], q) and q.answer]
        scored = score_options(model, forget_questions)
        metrics = {}
        for group, people in groups.items():
            for mode, with_image in (("image", True), ("text", False)):
                value = accuracy(model, self.questions(people, with_image), self.scoring, scored=scored) if people else None
                if value is not None:
                    metrics[f"{group}.{mode}"] = value
        members = [scored[q.qid][q.answer].tokens for q in forget_questions]
        held_out = self.heldout_answers(model)
        if held_out and members:
            metrics.update({f"mia.{name}": value for name, value in attack_aucs(members, held_out).items()})
        wrong = [option.tokens for q in forget_questions
                 for letter, option in scored[q.qid].items() if letter != q.answer]
        metrics.update({f"option_gap.{name}": value for name, value in attack_aucs(members, wrong).items()})
        if self.general:
            mmbench = accuracy(model, self.general, self.scoring)
            if mmbench is not None:
                metrics["mmbench"] = mmbench
                if self.original_mmbench is None:
                    self.original_mmbench = mmbench
                if self.original_mmbench:
                    metrics["mmbench_retention"] = 100.0 * mmbench / self.original_mmbench
        return metrics

    HISTORY_METRIC, UTILITY_METRIC = "forget", "retain"  # accuracy over image and text-only questions pooled

    def request_headlines(self, model, requests: list[list[str]]) -> list[float | None]:
        """Each request's own accuracy (a share, as the task's accuracies; image and text-only questions pooled) on its people's questions
        (the history, sessions/history.py), from one pass over every request's questions."""
        units = {unit for request in requests for unit in request}
        asked = [q for q in self.data.eval_questions if self.asks(units, q) and q.answer]
        right = {q.qid: picked == q.answer for q, picked in zip(asked, choices(model, asked, self.scoring))}
        headlines = []
        for request in requests:
            mine = [right[q.qid] for q in asked if self.asks(set(request), q)]
            headlines.append(sum(mine) / len(mine) if mine else None)
        return headlines

    def utility(self, metrics: dict) -> float | None:
        """The retain people's accuracy, image and text-only averaged, for the history's summary."""
        values = [metrics[name] for name in ("retain.image", "retain.text") if metrics.get(name) is not None]
        return sum(values) / len(values) if values else None

    def heldout_answers(self, model) -> list:
        """The held-out people's questions answered with their right option, scored as the members are."""
        questions = [replace(q, options={q.answer: q.options[q.answer]}) for q in self.data.eval_questions
                     if q.person_id in set(self.heldout_people) and q.answer]
        scored = score_options(model, questions) if questions else {}
        return [scored[q.qid][q.answer].tokens for q in questions]

    def entry(self, metrics: dict) -> dict:
        def pair(group):
            if f"{group}.image" not in metrics and f"{group}.text" not in metrics:
                return None
            return {"image": metrics.get(f"{group}.image"), "text": metrics.get(f"{group}.text")}

        entry = {group: pair(group) for group in ("forget", "retain", "forget_all", "other", "holdout_identity")}
        entry = {k: v for k, v in entry.items() if v is not None}
        entry["mmbench"] = metrics.get("mmbench")
        entry["mmbench_retention"] = metrics.get("mmbench_retention")
        for prefix in ("mia", "option_gap"):
            attacks = {name.partition(".")[2]: value for name, value in metrics.items()
                       if name.startswith(prefix + ".")}
            if attacks:
                entry[prefix] = attacks
        return entry

    def request_entry(self, people: list[str], metrics: dict) -> dict:
        return {"people": list(people), **self.entry(metrics)}

    def result_fields(self, forgotten: list[str]) -> dict:
        # general_questions: the MMBench-format set's size, so a reader knows what one question moves retention by
        return {"kind": "pulse", "general": self.spec.get("general"), "knowledge": self.spec["knowledge"],
                "general_questions": len(self.general) if self.general else 0,
                "update": self.spec["params"]["update"], "scoring": self.scoring, "recipe": self.recipe,
                "forget_people": self.forget_people, "retain_people": self.retain_people,
                "forget_rows": self.forget_rows, "heldout_people": self.heldout_people,
                **({"deletion": {"granularity": "fact", "facts": self.forget_facts, "units": len(self.forget_facts)}}
                   if self.forget_facts is not None else {}),
                **({"known_threshold": KNOWN_THRESHOLD, "person_accuracies": self.person_accuracies}
                   if self.original_is_checkpoint else {})}
