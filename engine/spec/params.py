"""A hyperparameter, declared once: its type, default, bounds and help. The CLI options of `run`,
`pulse` and `demo` and the New-run form's fields are generated from these declarations."""
from __future__ import annotations

import math
from dataclasses import dataclass

from engine.errors import SpecError


# Every float parameter's sane range, where it states none of its own: a magnitude above FLOAT_MAX is a typo (lr
# 1e300 overflows float32, whose largest value is 3.4e38, and turns a run's weights to inf), one below FLOAT_TINY
# (other than 0) is below what float32 holds (1.2e-38 is its smallest normal value) and would silently become 0.
FLOAT_MAX = 1e6
FLOAT_TINY = 1e-30
MAX_LR = 10.0


def shown_number(value) -> str:
    """A bound as people write it: 10000, 0, 1, 1e+06."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def dash(name: str) -> str:
    return name.replace("_", "-")


@dataclass(frozen=True)
class Param:
    name: str
    kind: type
    default: object
    help: str
    choices: tuple = ()
    minimum: float | None = None  # inclusive
    positive: bool = False  # strictly > 0
    maximum: float | None = None  # inclusive: a sane upper bound, refused before anything runs

    @property
    def flag(self) -> str:
        return "--" + dash(self.name)

    @property
    def upper(self) -> float | None:
        """The largest value allowed: the declared maximum, else FLOAT_MAX for a float."""
        return self.maximum if self.maximum is not None else FLOAT_MAX if self.kind is float else None

    @property
    def bounds(self) -> str:
        """The allowed range in words (``>= 1, <= 10000``), empty when unbounded."""
        low = ["> 0"] if self.positive else [f">= {shown_number(self.minimum)}"] if self.minimum is not None else []
        if self.kind is float and self.minimum is None and not self.positive:
            low = [f">= {shown_number(-FLOAT_MAX)}"]
        return ", ".join(low + ([f"<= {shown_number(self.upper)}"] if self.upper is not None else []))

    def coerce(self, value, owner: str):
        """The value as this parameter's type, checked against its bounds; SpecError naming the field."""
        def bad(what: str) -> SpecError:
            shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:21] + "..."
            return SpecError(f"{owner}: {self.flag} must be {what}, got {shown}", field=self.name)

        try:
            if isinstance(value, bool) and self.kind is not bool:
                raise ValueError
            if self.kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            if not isinstance(value, (str, int, float)) or (self.kind is str and not isinstance(value, str)):
                raise TypeError  # a list or an object where a value belongs
            if self.kind is bool and isinstance(value, str):
                value = {"true": True, "false": False}[value.strip().lower()]
            coerced = self.kind(value)
        except (TypeError, ValueError, KeyError, OverflowError):
            raise bad(self.kind.__name__) from None
        if isinstance(coerced, float) and not math.isfinite(coerced):
            raise bad("a finite number")
        if self.choices and coerced not in self.choices:
            raise bad("one of " + ", ".join(map(str, self.choices)))
        if self.positive and coerced <= 0:
            raise bad("> 0")
        if self.minimum is not None and coerced < self.minimum:
            raise bad(f">= {shown_number(self.minimum)}")
        if self.upper is not None and coerced > self.upper:
            raise bad(f"<= {shown_number(self.upper)}")
        if isinstance(coerced, float) and coerced < -FLOAT_MAX:
            raise bad(f">= {shown_number(-FLOAT_MAX)}")
        if isinstance(coerced, float) and coerced != 0 and abs(coerced) < FLOAT_TINY:
            raise bad(f"{'' if self.positive else '0 or '}at least {shown_number(FLOAT_TINY)} in size (float32 "
                      "holds nothing smaller)")
        return coerced


# Sane upper bounds: a value past them is a typo (epochs 1e12, batch 10**9), refused before anything runs.
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536
MAX_STEPS = 10**9
MAX_K_TEST = 100_000  # candidates re-ranked per query; more than a gallery holds ranks all of it

# Hyperparameters every method takes. lr None = the model's recipe (tiny models learn from scratch
# and need a larger rate than the released 1e-5 for a pretrained BLIP).
COMMON_PARAMS: tuple[Param, ...] = (
    Param("lr", float, None, "learning rate (default: the model's recipe; released BLIP retrieval: 1e-5)", positive=True,
          maximum=MAX_LR),
    Param("epochs", int, None, "epochs over the set the method iterates, per request (method default)", minimum=1,
          maximum=MAX_EPOCHS),
    Param("batch_size", int, 16, "deletion-set (Df) batch size", minimum=1, maximum=MAX_BATCH),
    Param("retain_batch_size", int, 64, "remaining-data (Dr) batch size", minimum=1, maximum=MAX_BATCH),
    Param("weight_decay", float, 0.05, "AdamW weight decay (on >=2-D weights only)", minimum=0.0),
    Param("max_grad_norm", float, 1.0, "gradient clipping norm (0 = off)", minimum=0.0),
    Param("eval_every", int, 0, "evaluate every N steps (0 = at each epoch end)", minimum=0, maximum=MAX_STEPS),
    Param("budget", str, "default", "what each request gets: the method's own epochs; exactly the steps "
          "MultiDelete takes on it (its default epochs over Df at this --batch-size); or MultiDelete's training "
          "seconds on it (--budget-seconds, or read from a MultiDelete session of the same protocol; not "
          "bit-reproducible)", ("default", "matched-steps", "matched-time")),
    Param("budget_seconds", float, None, "--budget matched-time: the training seconds each request gets "
          "(default: MultiDelete's, from its stored session of the same protocol)", positive=True),
    Param("tune", bool, False, "pick lr and epochs from a small grid (lr/3, lr, 3 lr x 1, 3 epochs) on a validation "
          "deletion set disjoint from Df, scored on the validation split (never test); the choice is stored"),
    Param("stop_if", str, None, "stop unlearning when a rule holds at a validation evaluation, e.g. "
          "val.r_mean<10, or forget.image<0.1 on people data (comma-separated; values as --json reports them)"),
    Param("keep", str, "last", "the weights a request ends with: the last, or the best evaluated (highest Df/Dr "
          "AUC, or closest to --target-auc, with the validation headline within --keep-tolerance of the "
          "original's)", ("last", "best")),
    Param("keep_tolerance", float, 5.0, "--keep best: points of the validation headline a kept evaluation may "
          "lose against the original", minimum=0.0),
    Param("target_auc", float, None, "--keep best: the Df/Dr AUC to come closest to (e.g. Retrain's), "
          "a fraction; default: the highest", minimum=0.0, maximum=1.0),
    Param("grad_checkpointing", bool, False, "gradient checkpointing: transformer layers recompute their "
          "activations in the backward pass (less activation memory, about one more forward pass per step); "
          "with LoRA the inputs are made to require grad"),
    Param("pair_score", str, "auto", "retrieval: the head that scores a pair for Df/Dr AUC and the MIA: the ITC "
          "cosine, BLIP's ITM match probability, or auto (ITC for BLIP and CLIP, as the released MultiDelete "
          "evaluation; ITM for GCN+BERT)", ("auto", "itc", "itm")),
    Param("k_test", int, None, "retrieval with an ITM head (BLIP, GCN+BERT): each query's top N candidates by ITC "
          "are re-ranked by ITM + ITC, as BLIP's evaluation (k_test); 0 = ITC only, no re-ranking (default: 128 on "
          "flickr30k:DIR, 256 on coco:DIR as the released LAVIS configs, 16 on built-in worlds)", minimum=0,
          maximum=MAX_K_TEST),
)

# the guardrails: what judges a run's evaluations to stop it or keep an earlier step (a study's Retrain, the
# reference, takes none of them)
GUARDRAILS = ("stop_if", "keep", "keep_tolerance", "target_auc")
# common parameters that people data has no use for: no validation split to tune or keep the best on, no Df/Dr
# AUC to aim at, no image-text pairs to score; neither `pulse` nor the New-run form offers them on people data
# (a spec that gives them is refused)
NOT_ON_PEOPLE = frozenset({"tune", "keep", "keep_tolerance", "target_auc", "pair_score", "k_test"})

UPDATE_TARGETS = ("llm", "proj+llm", "full")
# Hyperparameters of runs on large multimodal models (LoRA through peft, four-option scoring).
LMM_PARAMS: tuple[Param, ...] = (
    Param("update", str, "llm", "what unlearning updates: LoRA on the language model, + the projector, or full",
          UPDATE_TARGETS),
    Param("lora_r", int, 16, "LoRA rank", minimum=1, maximum=4096),
    Param("lora_alpha", float, 16.0, "LoRA alpha", positive=True),
    Param("lora_dropout", float, 0.05, "LoRA dropout", minimum=0.0, maximum=1.0),
    Param("mc_scoring", str, "auto", "four-option scoring: option text log-likelihood, option letter, or "
          "auto (option for registered tiny models, letter for checkpoints)", ("auto", "option", "letter")),
    Param("forget_rows", str, "image", "what a request unlearns of its people: their image questions (as "
          "MLLMU-Bench's forget VQA) or all their rows, the by-name text-only ones too", ("image", "all")),
)

MAX_REQUESTS = 1000  # ICU-Bench runs 100 sequential forget tasks
# The sequential-requests protocol: top-level entries of a spec (not method hyperparameters).
REQUESTS = Param("requests", int, 1, "split the deletion set into K sequential requests, unlearned one after "
                 "another and evaluated after each", minimum=1, maximum=MAX_REQUESTS)
# What one deletion unit is (engine/data/fact_deletion.py): a whole unit (an image with all its texts, a person),
# or one fact of one (PPU-Bench's selective setting); recorded in a spec's deletion only when "fact", so unit
# runs keep their specs (and numbers) as they were.
GRANULARITY = Param("granularity", str, "unit", "what one deletion unit is: a whole unit (an image, pair or graph "
                    "with all its texts; a person) or one fact of one (UNIT_ID#KEY, e.g. IMAGE#owner, PERSON#job), "
                    "the unit's other facts kept and scored as holdout_identity", ("unit", "fact"))
# Its evaluation schedule (engine/protocols/history.py), recorded in a spec only with K > 1.
EVAL_EVERY_REQUESTS = Param("eval_every_requests", int, 1, "with --requests K: a full evaluation every N requests "
                            "(and after the last); between them Df is a fixed seeded sample of --eval-sample units",
                            minimum=1, maximum=MAX_REQUESTS)
EVAL_SAMPLE = Param("eval_sample", int, 20, "with --eval-every-requests N > 1: how many forgotten units (people) "
                    "a sample evaluation scores as Df, the same seeded units every time", minimum=1, maximum=100000)

# --compile: a training option outside the method catalogue (no form field, no per-method flag); it rides in a
# spec's params, where the loop reads it, and only when on, so runs without it keep their params as they were.
COMPILE = Param("compile", bool, False, "torch.compile each transformer layer (or each part of a model without "
                "layers) while it trains; the first steps compile")

# --tune's reference: what `study --tune` sets when Retrain is among its methods (no form field, no flag of its own;
# it rides in a spec's params only when it is "retrain", so other runs keep their params as they were).
TUNE_AGAINST = Param("tune_against", str, "auc", "--tune's criterion: the highest validation Df/Dr AUC with the "
                     "headline within --keep-tolerance of the original's (auc), or the closest to a validation "
                     "Retrain's AUC with the headline within --keep-tolerance of Retrain's (retrain)",
                     ("auc", "retrain"))
