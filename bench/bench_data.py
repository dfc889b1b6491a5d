"""Data at full size, measured on a generated Flickr30K-sized Karpathy folder (issue 21, item 3).

The folder: 31,783 JPEGs of 500x375 (a solid colour under smooth noise, so they decode like photographs
of that size and compress to tens of kB) in flickr30k-images/, and Karpathy's dataset_flickr30k.json with 5
captions each (29,783 train, 1,000 val, 1,000 test). Written once, by several processes, and kept under
$MMUL_BENCH_DATA (default $MMUL_HOME/bench/flickr30k-sized); a folder already complete is reused.

Printed:
1. index + fingerprint seconds: `load_data("flickr30k:DIR")` and `data_fingerprint` (goal <= 10 s);
2. resident memory after indexing (goal <= 1 GB);
3. decode + preprocess images/s through the workbench's lazy image bank (engine/data/image_bank.py, its
   thread pool) against a bare PIL loop (open, convert, the same image processor) with the same number of
   workers (goal >= 0.9 of it);
4. one evaluation's seconds: recall both ways on the 1,000-image test gallery (5,000 captions) with a tiny
   CLIP (random weights), chunked (engine/metrics/retrieval.py).

    python bench/bench_data.py [--images 31783] [--workers 2] [--sample 2000] [--json-out F]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figures import Figures, add_json_out  # noqa: E402  (beside this script)

FLICKR30K_IMAGES = 31_783
TEST_IMAGES = VAL_IMAGES = 1_000
SIZE = (500, 375)
CAPTIONS = 5
IMAGE_DIR = "flickr30k-images"
WORDS = ("a", "dog", "man", "woman", "child", "runs", "sits", "on", "the", "grass", "street", "red", "blue",
         "holding", "ball", "near", "water", "two", "people", "walking", "in", "park", "white", "shirt")


def split_of(index: int, n: int) -> str:
    return "test" if index >= n - TEST_IMAGES else "val" if index >= n - TEST_IMAGES - VAL_IMAGES else "train"


def write_images(job: tuple[str, int, int]) -> int:
    """Write images [start, stop) under root; one worker process each job."""
    import numpy as np
    from PIL import Image

    root, start, stop = job
    folder = Path(root) / IMAGE_DIR
    for index in range(start, stop):
        path = folder / f"{index:08d}.jpg"
        if path.exists():
            continue
        rng = np.random.default_rng(index)
        colour = rng.integers(0, 256, size=3)
        noise = rng.normal(0, 24, size=(SIZE[1] // 8, SIZE[0] // 8, 3))
        small = np.clip(colour + noise, 0, 255).astype(np.uint8)
        picture = Image.fromarray(small).resize(SIZE, Image.BILINEAR)
        partial = path.with_suffix(".partial")
        picture.save(partial, format="JPEG", quality=90)
        os.replace(partial, path)
    return stop - start


def caption(rng, index: int, k: int) -> str:
    return " ".join(rng.choice(WORDS, size=8)) + f" {index} {k}"


def ensure_folder(root: Path, n: int, workers: int) -> float:
    """Write the folder unless it is complete; returns the seconds spent writing (0 when reused)."""
    import numpy as np

    annotations = root / "dataset_flickr30k.json"
    if annotations.is_file():  # reused only at the size asked for: the goals are for that many images
        held = len(json.loads(annotations.read_text())["images"])
        if held != n:
            raise SystemExit(f"{root} holds a folder of {held} images, not --images {n}: give another "
                             "MMUL_BENCH_DATA, or remove it to write it again")
        return 0.0
    started = time.perf_counter()
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    step = 500
    jobs = [(str(root), start, min(start + step, n)) for start in range(0, n, step)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(write_images, jobs))
    rng = np.random.default_rng(0)
    images = []
    for index in range(n):
        sentences = [{"raw": caption(rng, index, k), "imgid": index, "sentid": index * CAPTIONS + k}
                     for k in range(CAPTIONS)]
        for sentence in sentences:
            sentence["tokens"] = sentence["raw"].split()
        images.append({"filename": f"{index:08d}.jpg", "imgid": index, "split": split_of(index, n),
                       "sentids": [s["sentid"] for s in sentences], "sentences": sentences})
    partial = annotations.with_suffix(".partial")
    partial.write_text(json.dumps({"images": images, "dataset": "flickr30k"}))
    os.replace(partial, annotations)
    return time.perf_counter() - started


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(root: Path, args, figures: Figures) -> None:
    from engine.data.fingerprint import data_fingerprint
    from engine.data.registry import load_data

    ref = f"flickr30k:{root}"
    started = time.perf_counter()
    world = load_data(ref)
    indexed = time.perf_counter() - started
    fingerprint = data_fingerprint(ref)
    index_seconds = time.perf_counter() - started
    rss_indexed = rss_mb()
    units = len(world.train) + len(world.val) + len(world.test)
    figures.add("index + fingerprint", index_seconds, "s", goal="<= 10",
                detail=f"{units:,} images: index {indexed:.2f} s, fingerprint {index_seconds - indexed:.2f} s")
    figures.add("resident memory after indexing", rss_indexed, "MB", goal="<= 1024", detail="torch not yet imported")
    print(f"1. index {indexed:.2f} s + fingerprint {index_seconds - indexed:.2f} s = {index_seconds:.2f} s "
          f"for {units} images (goal <= 10 s) [{fingerprint}]")
    print(f"2. resident memory after indexing: {rss_indexed:.0f} MB (goal <= 1024 MB; torch not yet imported)")

    from concurrent.futures import ThreadPoolExecutor

    import torch
    from PIL import Image
    from transformers import CLIPImageProcessorPil

    from engine.data.image_bank import ImageBank

    torch.manual_seed(0)
    processor = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})

    def preprocess(images):
        return processor(images=images, return_tensors="pt")["pixel_values"]

    sample = world.train[: args.sample]
    batch = 64

    def bare() -> int:  # open, convert, the same processor, in the same number of threads
        def one(chunk):
            return preprocess([Image.open(u.image.path).convert("RGB") for u in chunk])
        with ThreadPoolExecutor(args.workers) as pool:
            for start in range(0, len(sample), batch):
                rows = sample[start : start + batch]
                step = -(-len(rows) // args.workers)
                torch.cat(list(pool.map(one, [rows[i : i + step] for i in range(0, len(rows), step)])))
        return len(sample)

    bank = ImageBank("pixel_values", [(u.image,) for u in sample], preprocess, workers=args.workers)

    def workbench() -> int:
        for start in range(0, len(sample), batch):
            bank.batch(torch.arange(start, min(start + batch, len(sample))), "cpu")
        return len(sample)

    rates = {}
    for name, loader in (("bare PIL", bare), ("workbench", workbench)) * 3:  # interleaved: the machine is shared
        started = time.perf_counter()
        count = loader()
        rates.setdefault(name, []).append(count / (time.perf_counter() - started))
    bare_rate, bench_rate = max(rates["bare PIL"]), max(rates["workbench"])
    figures.add("decode + preprocess, workbench against bare PIL", bench_rate / bare_rate, "x", goal=">= 0.9",
                detail=f"500x375 JPEG to 224 px, {args.workers} threads, best of 3 interleaved passes of {len(sample)}: "
                       f"{bench_rate:.0f} against {bare_rate:.0f} images/s")
    print(f"3. decode + preprocess (500x375 JPEG -> 224 px, {args.workers} threads, best of 3 interleaved passes of "
          f"{len(sample)}): workbench {bench_rate:.0f} images/s, bare PIL {bare_rate:.0f} images/s, "
          f"ratio {bench_rate / bare_rate:.2f} (goal >= 0.9)")

    from engine.data.pairs import encode_units
    from engine.metrics.retrieval import chunked_query_ranks, recall_from_ranks
    from engine.models.clip import ClipAdapter

    with tempfile.TemporaryDirectory() as directory:
        ClipAdapter.build_tiny(world.vocabulary(), 224, 0, Path(directory))
        adapter = ClipAdapter.from_checkpoint(directory, tiny=True)
    adapter.model.eval()
    started = time.perf_counter()
    gallery = encode_units(world.test, adapter)
    scores = adapter.gallery_scores(gallery, 128)
    recall = recall_from_ranks(*chunked_query_ranks(scores, gallery.pair_unit))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures.add("one evaluation on the 1k test gallery", seconds, "s",
                detail=f"{gallery.n_units:,} images, {len(gallery):,} captions; tiny CLIP at 224 px, random weights")
    figures.add("peak resident memory", peak, "MB")
    print(f"4. one evaluation on the 1k test gallery ({gallery.n_units} images, {len(gallery)} captions; tiny CLIP "
          f"at 224 px, random weights): {seconds:.1f} s (r_mean {recall['r_mean']:.2f}); peak RSS "
          f"{peak:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=FLICKR30K_IMAGES)
    parser.add_argument("--workers", type=int, default=2, help="processes writing the folder; threads decoding")
    parser.add_argument("--sample", type=int, default=2000, help="images decoded by each loader")
    parser.add_argument("--write-only", action="store_true", help="write the folder and stop")
    add_json_out(parser)
    args = parser.parse_args()
    os.environ.setdefault("MMUL_HOME", tempfile.mkdtemp(prefix="mmul-bench-"))
    root = Path(os.environ.get("MMUL_BENCH_DATA") or Path(os.environ["MMUL_HOME"]) / "bench" / "flickr30k-sized")
    written = ensure_folder(root, args.images, args.workers)
    print(f"folder: {root} ({args.images} images; {'written in %.0f s' % written if written else 'reused'})")
    if args.write_only:
        return
    figures = Figures("data", f"a generated Flickr30K-sized Karpathy folder: {args.images:,} JPEGs of 500x375, "
                              f"5 captions each; {os.cpu_count()} cores")
    measure(root, args, figures)
    figures.write(args.json_out)


if __name__ == "__main__":
    main()
