"""The rephrase attack's image transform (Pillow, seeded by the caller's generator): a crop keeping 80-100% of
each side at a random place resized back, an optional horizontal flip, and brightness, contrast and saturation
each scaled by a factor in [0.8, 1.2] (no hue jitter: the worlds' texts name colours). Shared by the unit
worlds' and the people worlds' rephrasing."""
from __future__ import annotations

import random

from PIL import Image, ImageEnhance

CROP_KEEP = (0.8, 1.0)
JITTER = (0.8, 1.2)


def transform_image(image, rng: random.Random, flip: bool) -> Image.Image:
    """One image cropped, maybe flipped and jittered (a real-data `ImageFile` is decoded first)."""
    image = image if isinstance(image, Image.Image) else image.open()
    width, height = image.size
    keep_w, keep_h = (max(1, round(side * rng.uniform(*CROP_KEEP))) for side in (width, height))
    left, top = rng.randint(0, width - keep_w), rng.randint(0, height - keep_h)
    out = image.convert("RGB").crop((left, top, left + keep_w, top + keep_h)).resize((width, height), Image.BICUBIC)
    if flip:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        out = enhance(out).enhance(rng.uniform(*JITTER))
    return out
