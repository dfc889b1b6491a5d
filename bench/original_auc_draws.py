"""How much of an original's Df/Dr AUC is the deletion draw? The AUC over many random deletion sets, one original.

An original trained on every unit cannot tell Df from Dr, so its Df/Dr AUC should sit at 50 on average; with
few deleted units one draw moves it by several points. This scores every training pair of a retrieval world
once (its own pair's score, engine/metrics/auc.py) with the given original, then computes the AUC for
`--draws` random deletion sets of `--delete` units: the mean is the original's bias, the spread what one
16-unit deletion set can show by chance.

    python bench/original_auc_draws.py ORIGINAL_DIR --data shapes-tiny --model clip-tiny --seed 42 [--delete 16]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original", help="the original's checkpoint directory ($MMUL_HOME/cache/originals/...)")
    parser.add_argument("--data", default="shapes-tiny")
    parser.add_argument("--model", default="clip-tiny")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--delete", type=int, default=16)
    parser.add_argument("--draws", type=int, default=300)
    args = parser.parse_args()
    if not Path(args.original).is_dir():
        parser.error(f"{args.original} is not a directory: give an original's checkpoint directory "
                     "($MMUL_HOME/cache/originals/MODEL-DATA-seedS-...)")
    if not 0 < args.delete or args.draws < 1:
        parser.error(f"--delete must be > 0 and --draws >= 1 (got {args.delete} and {args.draws})")
    from engine.errors import SpecError

    try:
        draws(args)
    except SpecError as error:  # bad data or a checkpoint that does not load: one line, as the CLI says it
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)


def draws(args) -> None:
    import numpy as np
    import torch

    from engine.data.pairs import encode_units
    from engine.metrics.auc import df_dr_auc, dr_chunks
    from engine.spec.validate import validate
    from engine.tasks import task_for
    from engine.tasks.retrieval_scoring import per_pair

    torch.set_num_threads(1)
    spec = validate({"method": "retrain", "model": args.model, "data": args.data, "seed": args.seed, "device": "cpu",
                     "deletion": {"strategy": "random", "n": args.delete}})
    task = task_for(spec, lambda *a, **k: None, lambda: False, Path(tempfile.mkdtemp(prefix="auc-draws-")))
    model = task.load(args.original, "cpu")
    model.model.eval()
    train = encode_units(task.world.train, model)
    scores = per_pair(model.pair_scores, train, np.arange(len(train)), "cpu")
    unit = train.pair_unit.cpu().numpy()
    rng = np.random.default_rng(args.seed)
    aucs = []
    for _ in range(args.draws):
        deleted = np.isin(unit, rng.choice(train.n_units, args.delete, replace=False))
        df, dr = scores[deleted], scores[~deleted]
        aucs.append(100 * df_dr_auc(df, [dr[chunk] for chunk in dr_chunks(len(dr), len(df), rng)]))
    print(json.dumps({"original": args.original, "data": args.data, "delete": args.delete, "draws": args.draws,
                      "mean_auc": round(float(np.mean(aucs)), 1), "sd_auc": round(float(np.std(aucs)), 1)}))


if __name__ == "__main__":
    main()
