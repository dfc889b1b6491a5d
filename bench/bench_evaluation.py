"""One retrieval evaluation of a dual encoder, scored two ways in one run (engine/tasks/retrieval_scoring.py):
each image and caption embedded once (`EmbeddingScoring`, what evaluations use) against a network pass per gallery
and per pair (`NetworkScoring`). Prints the rows each embeds, its seconds (the best of --repeats), the ratio,
and the largest difference between the two metric sets: 0, or an AUC's step where float rounding (an embedding
computed in another batch) breaks a near-tie of two scores the other way (one pair in 120 x 120: 6.9e-05).

    python bench/bench_evaluation.py [--model clip-tiny] [--data shapes] [--delete 50] [--device auto] [--repeats 3]
        [--json-out F]

The model is untrained (its starting weights): how long scoring takes does not depend on what the weights hold.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figures import Figures, add_json_out  # noqa: E402  (beside this script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="clip-tiny")
    parser.add_argument("--data", default="shapes")
    parser.add_argument("--delete", type=int, default=50)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    add_json_out(parser)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.exit(2, f"--repeats {args.repeats}: give 1 or more\n")
    os.environ.setdefault("MMUL_HOME", tempfile.mkdtemp(prefix="mmul-bench-"))

    import torch

    import engine.tasks.retrieval as retrieval
    from engine import spec as specs
    from engine.devices import resolve_device
    from engine.errors import SpecError
    from engine.tasks.retrieval_scoring import EmbeddingScoring, NetworkScoring, count_embedded_rows
    from sessions.paths import cache_dir

    torch.manual_seed(args.seed)
    try:
        spec = specs.validate({"method": "ft", "model": args.model, "data": args.data, "device": args.device,
                               "seed": args.seed,
                               "deletion": {"strategy": "random", "n": args.delete, "seed": args.seed}})
        device = resolve_device(spec["device"])
        task = retrieval.Retrieval(spec, lambda *_a, **_k: None, lambda: False, cache_dir())
        adapter = task.load(args.model, device)
    except SpecError as error:
        parser.exit(2, f"{error}\n")
    if not hasattr(adapter, "pair_scores_of"):
        parser.exit(2, f"--model {args.model}: a {adapter.family} model scores a pair in a network pass of its own, so "
                       "its evaluation has one scoring; give a dual encoder (clip-tiny or a CLIP checkpoint)\n")
    task.prepare(adapter)
    forgotten = task.forget_units()

    embedded = count_embedded_rows(adapter)

    def measured(scoring) -> tuple[float, dict, dict]:
        retrieval.scoring_for = scoring
        best, metrics, rows = float("inf"), {}, {}
        for _ in range(args.repeats):
            embedded.update(image_embed=0, text_embed=0)
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            metrics = task.evaluate(adapter, forgotten)
            if device.type == "cuda":
                torch.cuda.synchronize()
            best, rows = min(best, time.perf_counter() - start), dict(embedded)
        return best, metrics, rows

    network_seconds, network_metrics, network_rows = measured(NetworkScoring)
    embedding_seconds, embedding_metrics, embedding_rows = measured(EmbeddingScoring)
    difference = max(abs(network_metrics[name] - embedding_metrics[name]) for name in network_metrics)
    setting = (f"{args.model} (untrained) on {args.data} ({device.type}): joint set {task.joint.n_units} units, "
               f"{len(task.joint)} texts; Df {len(forgotten)} units; best of {args.repeats}")
    figures = Figures("evaluation", setting, torch_threads=torch.get_num_threads())
    print(setting)
    for label, seconds, rows in (("network pass per gallery and pair", network_seconds, network_rows),
                                 ("each embedded once", embedding_seconds, embedding_rows)):
        figures.add(label, seconds, "s", detail=f"{rows['image_embed']:,} images + {rows['text_embed']:,} texts embedded")
        print(f"  {label:36s} {rows['image_embed']:7d} images {rows['text_embed']:7d} texts  {seconds:7.3f} s")
    figures.add("speed-up", network_seconds / embedding_seconds, "x")
    figures.add("largest metric difference", difference)
    print(f"  speed-up {network_seconds / embedding_seconds:.2f}x; largest metric difference {difference:.3g}")
    figures.write(args.json_out)

if __name__ == "__main__":
    main()
