"""Face-like portraits of synthetic people: one identity (face shape, skin, hair, eyes, shirt, accessory)
drawn with pose jitter, lighting, background and noise, so a vision tower must learn who is who."""
from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 32

FACE_SHAPES = {"round": (0.30, 0.33), "oval": (0.25, 0.38), "wide": (0.36, 0.30), "square": (0.30, 0.34)}
SKIN_TONES = ((255, 224, 196), (241, 194, 155), (224, 172, 120), (189, 134, 88), (141, 92, 56), (92, 58, 36))
HAIR_COLOURS = ((20, 18, 18), (110, 66, 32), (235, 205, 110), (196, 74, 30), (160, 160, 165), (60, 90, 210))
HAIR_STYLES = ("short", "long", "bald", "spiky", "bun")
EYE_COLOURS = ((70, 40, 20), (40, 110, 220), (40, 160, 70), (20, 20, 20))
SHIRT_COLOURS = ((200, 40, 40), (40, 150, 60), (40, 70, 200), (230, 200, 40), (140, 60, 170), (30, 30, 30))
ACCESSORIES = ("none", "glasses", "hat", "beard", "earrings", "scarf")
ACCESSORY_COLOURS = ((230, 60, 140), (250, 150, 30), (30, 200, 200), (245, 245, 245))

LOOK_CHOICES = {
    "face": tuple(FACE_SHAPES), "skin": SKIN_TONES, "hair_colour": HAIR_COLOURS, "hair_style": HAIR_STYLES,
    "eyes": EYE_COLOURS, "shirt": SHIRT_COLOURS, "accessory": ACCESSORIES, "accessory_colour": ACCESSORY_COLOURS,
}
MIN_LOOK_DIFFERENCES = 3  # between any two people, so that no two faces are near-twins
SUPERSAMPLE = 4


def sample_looks(rng: random.Random, count: int, taken: list[dict] = ()) -> list[dict]:
    """`count` identities, each told apart from the others and from those `taken`."""
    looks: list[dict] = []
    while len(looks) < count:
        candidate = {key: rng.choice(choices) for key, choices in LOOK_CHOICES.items()}
        if all(_differences(candidate, other) >= MIN_LOOK_DIFFERENCES for other in [*taken, *looks]):
            looks.append(candidate)
    return looks


def _differences(a: dict, b: dict) -> int:
    return sum(a[key] != b[key] for key in LOOK_CHOICES if key != "accessory_colour")


def render_face(looks: dict, rng: random.Random, size: int = IMAGE_SIZE) -> Image.Image:
    """One photo of the identity `looks`; `rng` drives pose, lighting, background and noise."""
    big = size * SUPERSAMPLE
    grey = rng.uniform(110, 150)
    background = tuple(int(grey + rng.uniform(-12, 12)) for _ in range(3))
    canvas = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(canvas)
    scale = big * rng.uniform(0.95, 1.05)
    cx = big / 2 + rng.uniform(-0.04, 0.04) * big
    cy = big * 0.47 + rng.uniform(-0.04, 0.04) * big
    _draw_person(draw, looks, cx, cy, scale)
    image = canvas.resize((size, size), Image.Resampling.BOX)
    return _photograph(image, rng)


def _draw_person(draw: ImageDraw.ImageDraw, looks: dict, cx: float, cy: float, scale: float) -> None:
    rx, ry = (f * scale for f in FACE_SHAPES[looks["face"]])
    rx, ry = rx * 0.75, ry * 0.75
    face = [cx - rx, cy - ry, cx + rx, cy + ry]
    hair = looks["hair_colour"]
    draw.rectangle([cx - 0.45 * scale, cy + 0.8 * ry, cx + 0.45 * scale, cy + scale], fill=looks["shirt"])
    if looks["hair_style"] == "long":
        draw.rectangle([cx - rx * 1.15, cy - ry * 0.6, cx + rx * 1.15, cy + ry * 1.1], fill=hair)
    if looks["face"] == "square":
        draw.rounded_rectangle(face, radius=rx * 0.3, fill=looks["skin"])
    else:
        draw.ellipse(face, fill=looks["skin"])
    _draw_hair(draw, looks["hair_style"], hair, cx, cy, rx, ry)
    eye_y, eye_dx, eye_r = cy - ry * 0.1, rx * 0.42, max(2.0, rx * 0.16)
    for ex in (cx - eye_dx, cx + eye_dx):
        draw.ellipse([ex - eye_r, eye_y - eye_r, ex + eye_r, eye_y + eye_r], fill=looks["eyes"])
    mouth_y = cy + ry * 0.5
    draw.line([cx - rx * 0.35, mouth_y, cx + rx * 0.35, mouth_y], fill=(120, 40, 40), width=max(1, int(ry * 0.08)))
    _draw_accessory(draw, looks, cx, cy, rx, ry, eye_y, eye_dx, eye_r)


def _draw_hair(draw, style: str, colour, cx: float, cy: float, rx: float, ry: float) -> None:
    top = cy - ry
    if style in ("short", "long", "bun"):
        draw.chord([cx - rx * 1.08, top - ry * 0.15, cx + rx * 1.08, cy + ry * 0.2], 180, 360, fill=colour)
    if style == "bun":
        draw.ellipse([cx - rx * 0.45, top - ry * 0.65, cx + rx * 0.45, top + ry * 0.1], fill=colour)
    if style == "spiky":
        spikes = 5
        for k in range(spikes):
            x0 = cx - rx + 2 * rx * k / spikes
            x1 = x0 + 2 * rx / spikes
            draw.polygon([(x0, top + ry * 0.35), (x1, top + ry * 0.35), ((x0 + x1) / 2, top - ry * 0.45)], fill=colour)


def _draw_accessory(draw, looks: dict, cx, cy, rx, ry, eye_y, eye_dx, eye_r) -> None:
    kind, colour = looks["accessory"], looks["accessory_colour"]
    if kind == "glasses":
        width = max(2, int(eye_r * 0.6))
        for ex in (cx - eye_dx, cx + eye_dx):
            lens = [ex - eye_r * 2, eye_y - eye_r * 2, ex + eye_r * 2, eye_y + eye_r * 2]
            draw.ellipse(lens, outline=(15, 15, 15), width=width)
        draw.line([cx - eye_dx + eye_r * 2, eye_y, cx + eye_dx - eye_r * 2, eye_y], fill=(15, 15, 15), width=width)
    elif kind == "hat":
        top = cy - ry
        draw.rectangle([cx - rx * 1.4, top - ry * 0.05, cx + rx * 1.4, top + ry * 0.2], fill=colour)
        draw.rectangle([cx - rx * 0.8, top - ry * 0.8, cx + rx * 0.8, top + ry * 0.1], fill=colour)
    elif kind == "beard":
        draw.chord([cx - rx, cy - ry * 0.4, cx + rx, cy + ry * 1.05], 20, 160, fill=looks["hair_colour"])
    elif kind == "earrings":
        r = max(3.0, rx * 0.18)
        for ex in (cx - rx, cx + rx):
            draw.ellipse([ex - r, cy + ry * 0.2 - r, ex + r, cy + ry * 0.2 + r], fill=colour)
    elif kind == "scarf":
        draw.rectangle([cx - rx * 1.2, cy + ry * 0.8, cx + rx * 1.2, cy + ry * 1.15], fill=colour)


def _photograph(image: Image.Image, rng: random.Random) -> Image.Image:
    """Lighting (overall brightness and a left-right gradient) and sensor noise."""
    pixels = np.asarray(image, dtype=np.float32)
    size = pixels.shape[1]
    gradient = np.linspace(-1.0, 1.0, size, dtype=np.float32)[None, :, None] * rng.uniform(-0.08, 0.08)
    pixels = pixels * (rng.uniform(0.9, 1.1) + gradient)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, 6.0, size=pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")
