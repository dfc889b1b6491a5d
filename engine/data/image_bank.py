"""The media bank of units whose images are files: decoded and preprocessed only when a batch draws them.

`image_media(units, preprocess, per_unit)` is what an image-text adapter's `prepare_media` returns: the
built-in worlds' images are in memory, and stay one tensor preprocessed up front (`TensorBank`, as before:
the same tensors, the same numbers); real data read from disk holds `ImageFile`s (engine/data/images.py)
and gets an `ImageBank`, whose `batch(indices, device)` decodes and preprocesses those rows alone, in a pool of
threads (Pillow's decoding and resizing release the GIL), so memory holds the index, never the pixels of
the whole data set. The loop draws batches through `PairSet.batch` as before (engine/loop.py untouched).

Each image is preprocessed on its own by the same processor the adapter would run on the whole list (the
processors work image by image), so a unit's tensor is the one the up-front path would have made.

Threads: $MMUL_DATA_WORKERS (default min(4, CPUs)). An optional cache of preprocessed tensors keyed by the
image file's content (engine/data/pixel_cache.py) is used when $MMUL_PIXEL_CACHE names a directory.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch

from engine.data.images import ImageFile, decoded
from engine.data.pixel_cache import PixelCache, pixel_cache_from_env

Preprocess = Callable[[list], torch.Tensor]  # PIL images -> [n,3,H,W]


def data_workers() -> int:
    configured = os.environ.get("MMUL_DATA_WORKERS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, min(4, os.cpu_count() or 1))


class ImageBank:
    """Units' image files (one, or `per_unit` each), batched under `key` as [n,3,H,W] or [n,k,3,H,W]."""

    def __init__(self, key: str, images: list[tuple], preprocess: Preprocess, per_unit: int | None = None,
                 workers: int | None = None, cache: PixelCache | None = None, pool: ThreadPoolExecutor | None = None):
        self.key, self.images, self.preprocess, self.per_unit = key, images, preprocess, per_unit
        self.workers = workers or data_workers()
        self.cache = cache
        self._pool = pool

    def __len__(self) -> int:
        return len(self.images)

    def take(self, indices: torch.Tensor) -> "ImageBank":
        rows = indices.tolist() if hasattr(indices, "tolist") else list(indices)
        return ImageBank(self.key, [self.images[i] for i in rows], self.preprocess, self.per_unit, self.workers,
                         self.cache, self._shared_pool())

    def batch(self, indices: torch.Tensor, device) -> dict[str, torch.Tensor]:
        rows = indices.tolist() if hasattr(indices, "tolist") else list(indices)
        k = self.per_unit or 1
        flat = [image for i in rows for image in self.images[i][:k]]
        pixels = self.pixels(flat)
        if self.per_unit:
            pixels = pixels.reshape(len(rows), k, *pixels.shape[1:])
        return {self.key: pixels.to(device, non_blocking=True)}

    def pixels(self, images: list) -> torch.Tensor:
        """[len(images),3,H,W]: each image decoded and preprocessed, `workers` chunks in parallel."""
        if not images:
            return torch.zeros(0)
        n_chunks = min(self.workers, len(images))
        bounds = [round(i * len(images) / n_chunks) for i in range(n_chunks + 1)]
        chunks = [images[bounds[i]:bounds[i + 1]] for i in range(n_chunks)]
        if n_chunks == 1:
            return self._prepare(chunks[0])
        return torch.cat(list(self._shared_pool().map(self._prepare, chunks)))

    def _prepare(self, images: list) -> torch.Tensor:
        if self.cache is None:
            return self.preprocess([decoded(image) for image in images])
        return torch.stack([self.cache.pixels(image, self.preprocess) for image in images])

    def _shared_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="mmul-decode")
        return self._pool


def image_media(units, preprocess: Preprocess, per_unit: int | None = None, processor_key: str = "",
                key: str = "pixel_values"):
    """The media bank of `units`: their images (`unit.image`, or the first `per_unit` of `unit.images`)
    preprocessed up front when all are in memory (`TensorBank`), else an `ImageBank` decoding at draw time.
    `processor_key` names the preprocessing (the processor's settings) for the pixel cache."""
    from engine.data.pairs import TensorBank

    rows = [tuple(unit.images[:per_unit]) if per_unit else (unit.image,) for unit in units]
    if not any(isinstance(image, ImageFile) for row in rows for image in row):
        pixels = preprocess([image for row in rows for image in row])
        if per_unit:
            pixels = pixels.reshape(len(rows), per_unit, *pixels.shape[1:])
        return TensorBank(key, pixels)
    return ImageBank(key, rows, preprocess, per_unit, cache=pixel_cache_from_env(processor_key))
