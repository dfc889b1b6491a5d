"""Score a tiny classification recipe on the validation split only (how `tiny:<world>` recipes are chosen).

Trains the world's original with the given lr and epochs (the rest of the recipe as the world's), then scores
every training unit and the validation split: accuracy on each, their gap (a never-seen unit is what Retrain's
Df is, so train - val is the Df gap a Retrain would show), and the label-free Df/Dr AUC of the validation
units against training chunks of the same size (engine/metrics/auc.py: what Retrain's AUC would be), per
class and averaged, with each side's mean top-class probability. The test split is never read.

One JSON line per seed; with several seeds (`--seeds 42,87,21`) a last line with their means: on a small
validation split one seed's accuracy is mostly its draw (graph-tiny at lr 5e-4 x 30: 64.1, 26.6 and 28.1).

    python bench/recipe_on_validation.py shapes-ve-tiny --model blip-tiny --lr 6e-4 --epochs 40 [--seeds 42]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


MEANS = ("train_accuracy", "val_accuracy", "gap", "val_vs_train_auc")  # what the several-seed line averages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--model", default="blip-tiny")
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seeds", default="42", help="comma-separated seeds, one original each (default 42)")
    parser.add_argument("--cache", default=None, help="cache directory (default: a temp dir)")
    args = parser.parse_args()
    if args.lr <= 0 or args.epochs < 1:
        parser.error(f"--lr must be > 0 and --epochs >= 1 (got {args.lr:g} and {args.epochs})")
    try:
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds {args.seeds}: give whole numbers, comma-separated (e.g. 42,87,21)")
    from engine.errors import SpecError

    try:
        lines = [probe(args, seed) for seed in seeds]
    except SpecError as error:  # bad data or model: one line, as the CLI says it
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)
    if len(lines) > 1:
        print(json.dumps({"seeds": seeds, **{name: round(sum(line[name] for line in lines) / len(lines), 1)
                                             for name in MEANS}}))


def probe(args, seed: int) -> dict:
    import numpy as np
    import torch

    from engine.metrics.auc import class_df_dr_auc, df_dr_auc, dr_chunks
    from engine.protocols.originals import Trainer
    from engine.seeding import seed_everything
    from engine.spec.validate import validate
    from engine.tasks import task_for
    from engine.tasks.classification import Scored

    torch.set_num_threads(1)  # as the tiny classifier's runs do (Classification.cpu_threads)
    spec = validate({"method": "retrain", "model": args.model, "data": args.data, "seed": seed,
                     "device": "cpu", "deletion": {"strategy": "random", "n": 1}})
    quiet, never = (lambda *a, **k: None), (lambda: False)
    task = task_for(spec, quiet, never, Path(args.cache or tempfile.mkdtemp(prefix="recipe-probe-")))
    task.recipe = {**task.recipe, "lr": args.lr, "epochs": args.epochs}
    started = time.perf_counter()
    seed_everything(seed, "original")
    model = task.load(spec["model"], "cpu")
    task.train_original(model, Trainer(seed, quiet, never))
    seconds = time.perf_counter() - started
    task.forget_units()
    task.prepare(model)
    model.model.eval()
    train, val = Scored(model, task.train), Scored(model, task.validation_view(model).test)
    chunks = dr_chunks(len(task.train), len(val.labels), np.random.default_rng(seed))
    per_class = [df_dr_auc(val.probs[:, c], [train.probs[i][:, c] for i in chunks]) for c in range(val.probs.shape[1])]
    line = {
        "data": args.data, "model": args.model, "seed": seed, "lr": args.lr, "epochs": args.epochs,
        "train_accuracy": round(train.accuracy(), 1), "val_accuracy": round(val.accuracy(), 1),
        "gap": round(train.accuracy() - val.accuracy(), 1),
        "val_vs_train_auc": round(100 * class_df_dr_auc(val.probs, [train.probs[i] for i in chunks]), 1),
        "per_class_auc": [round(100 * a, 1) for a in per_class],
        "top_probability": {"train": round(float(train.probs.max(1).mean()), 3),
                            "val": round(float(val.probs.max(1).mean()), 3)},
        "training_seconds": round(seconds)}
    print(json.dumps(line), flush=True)
    return line


if __name__ == "__main__":
    main()
