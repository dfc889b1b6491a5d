"""Score a tiny classification recipe on the validation split only (how `tiny:<world>` recipes are chosen).

Trains the world's original with the given lr and epochs (the rest of the recipe as the world's), then scores
every training unit and the validation split: accuracy on each, their gap (a never-seen unit is what Retrain's
Df is, so train - val is the Df gap a Retrain would show), and the label-free Df/Dr AUC of the validation
units against training chunks of the same size (engine/metrics/auc.py: what Retrain's AUC would be), per
class and averaged, with each side's mean top-class probability. The test split is never read.

    python bench/recipe_on_validation.py shapes-ve-tiny --model blip-tiny --lr 6e-4 --epochs 40 [--seed 42]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--model", default="blip-tiny")
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cache", default=None, help="cache directory (default: a temp dir)")
    args = parser.parse_args()
    if args.lr <= 0 or args.epochs < 1:
        parser.error(f"--lr must be > 0 and --epochs >= 1 (got {args.lr:g} and {args.epochs})")
    from engine.errors import SpecError

    try:
        probe(args)
    except SpecError as error:  # bad data or model: one line, as the CLI says it
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)


def probe(args) -> None:
    import numpy as np
    import torch

    from engine.metrics.auc import class_df_dr_auc, df_dr_auc, dr_chunks
    from engine.protocols.originals import Trainer
    from engine.seeding import seed_everything
    from engine.spec.validate import validate
    from engine.tasks import task_for
    from engine.tasks.classification import Scored

    torch.set_num_threads(1)  # as the tiny classifier's runs do (Classification.cpu_threads)
    spec = validate({"method": "retrain", "model": args.model, "data": args.data, "seed": args.seed,
                     "device": "cpu", "deletion": {"strategy": "random", "n": 1}})
    quiet, never = (lambda *a, **k: None), (lambda: False)
    task = task_for(spec, quiet, never, Path(args.cache or tempfile.mkdtemp(prefix="recipe-probe-")))
    task.recipe = {**task.recipe, "lr": args.lr, "epochs": args.epochs}
    started = time.perf_counter()
    seed_everything(args.seed, "original")
    model = task.load(spec["model"], "cpu")
    task.train_original(model, Trainer(args.seed, quiet, never))
    seconds = time.perf_counter() - started
    task.forget_units()
    task.prepare(model)
    model.model.eval()
    train, val = Scored(model, task.train), Scored(model, task.validation_view(model).test)
    chunks = dr_chunks(len(task.train), len(val.labels), np.random.default_rng(args.seed))
    per_class = [df_dr_auc(val.probs[:, c], [train.probs[i][:, c] for i in chunks]) for c in range(val.probs.shape[1])]
    print(json.dumps({
        "data": args.data, "model": args.model, "seed": args.seed, "lr": args.lr, "epochs": args.epochs,
        "train_accuracy": round(train.accuracy(), 1), "val_accuracy": round(val.accuracy(), 1),
        "gap": round(train.accuracy() - val.accuracy(), 1),
        "val_vs_train_auc": round(100 * class_df_dr_auc(val.probs, [train.probs[i] for i in chunks]), 1),
        "per_class_auc": [round(100 * a, 1) for a in per_class],
        "top_probability": {"train": round(float(train.probs.max(1).mean()), 3),
                            "val": round(float(val.probs.max(1).mean()), 3)},
        "training_seconds": round(seconds)}))


if __name__ == "__main__":
    main()
