"""An optional on-disk cache of preprocessed image tensors, keyed by content.

The key of an entry is the SHA-256 of the image file's bytes and of the preprocessing's settings (the
adapter's image processor as JSON), so a renamed copy of an image hits, an image edited in place misses, and
two models whose processors differ never share tensors. Entries are float32 `.npy` files written atomically
(staged, then renamed), so the tensors are exactly those the processor makes. A hit costs a file read and a
hash instead of a JPEG decode and a resize; the price is disk: 3*H*W*4 bytes an image (0.6 MB at 224 px,
1.8 MB at 384 px).

Off unless $MMUL_PIXEL_CACHE names a directory (the engine's environment).
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.data.images import ImageFile, not_decodable


class PixelCache:
    def __init__(self, directory: str | Path, processor_key: str):
        self.directory = Path(directory) / hashlib.sha256(processor_key.encode()).hexdigest()[:16]

    def pixels(self, image, preprocess) -> torch.Tensor:
        """[3,H,W] of one image (an `ImageFile`; an in-memory image is preprocessed without the cache)."""
        if not isinstance(image, ImageFile):
            return preprocess([image])[0]
        with open(image.path, "rb") as handle:
            content = handle.read()
        key = hashlib.sha256(content).hexdigest()
        entry = self.directory / key[:2] / f"{key}.npy"
        if entry.is_file():
            try:
                return torch.from_numpy(np.load(entry))
            except (OSError, ValueError):  # a damaged entry is remade
                pass
        try:
            with Image.open(io.BytesIO(content)) as opened:
                picture = opened.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError):
            raise not_decodable(image.path) from None
        pixels = preprocess([picture])[0]
        entry.parent.mkdir(parents=True, exist_ok=True)
        staged = entry.with_name(f".{entry.name}.{os.getpid()}.{id(pixels)}.partial")
        with open(staged, "wb") as handle:
            np.save(handle, pixels.numpy())
        os.replace(staged, entry)
        return pixels


def pixel_cache_from_env(processor_key: str) -> PixelCache | None:
    directory = os.environ.get("MMUL_PIXEL_CACHE", "").strip()
    return PixelCache(Path(directory).expanduser(), processor_key) if directory else None
