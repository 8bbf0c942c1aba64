"""The colour vocabulary: ten named colours, their words, and HSV colouring of shade fields.

Every texture and sprite is drawn as grey-level *shade* fields and then coloured here, so a
pattern never depends on its colour and every colour goes with every pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Colour:
    """A named colour: hue in degrees, saturation and value in [0, 1], and the words that name
    it in captions (``words[0]`` is the canonical one)."""

    name: str
    hue: float
    sat: float
    val: float
    words: tuple[str, ...]


COLOURS: tuple[Colour, ...] = (
    Colour("red", 0.0, 0.85, 0.80, ("red", "crimson", "scarlet")),
    Colour("orange", 28.0, 0.90, 0.95, ("orange", "amber")),
    Colour("yellow", 52.0, 0.85, 0.95, ("yellow", "golden")),
    Colour("green", 115.0, 0.70, 0.65, ("green", "emerald")),
    Colour("teal", 175.0, 0.75, 0.70, ("teal", "turquoise")),
    Colour("blue", 220.0, 0.80, 0.85, ("blue", "sapphire")),
    Colour("purple", 275.0, 0.60, 0.72, ("purple", "violet")),
    Colour("pink", 325.0, 0.50, 0.95, ("pink", "rose")),
    Colour("brown", 25.0, 0.65, 0.45, ("brown", "chocolate")),
    Colour("grey", 0.0, 0.04, 0.62, ("grey", "gray", "ash")),
)
COLOUR_BY_NAME: dict[str, Colour] = {c.name: c for c in COLOURS}


@dataclass(frozen=True)
class Tint:
    """A colour after the per-sample jitter (the colour-shift augmentation: hue, saturation
    and value move a little, the caption keeps naming the same colour)."""

    hue: float
    sat: float
    val: float


def jitter(colour: Colour, rng: np.random.Generator, amount: float = 1.0) -> Tint:
    hue = (colour.hue + rng.uniform(-7.0, 7.0) * amount) % 360.0
    sat = float(np.clip(colour.sat * (1.0 + rng.uniform(-0.12, 0.10) * amount), 0.0, 1.0))
    val = float(np.clip(colour.val * (1.0 + rng.uniform(-0.10, 0.10) * amount), 0.05, 1.0))
    return Tint(hue, sat, val)


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; h in degrees, s and v in [0, 1]; returns (..., 3) float32."""
    h = np.asarray(h, dtype=np.float32)
    s = np.clip(np.asarray(s, dtype=np.float32), 0.0, 1.0)
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    h, s, v = np.broadcast_arrays(h, s, v)
    k = lambda n: (n + h / 60.0) % 6.0  # noqa: E731
    f = lambda n: v - v * s * np.clip(np.minimum(k(n), 4.0 - k(n)), 0.0, 1.0)  # noqa: E731
    return np.stack([f(5.0), f(3.0), f(1.0)], axis=-1).astype(np.float32)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """Vectorised RGB (..., 3) in [0, 1] -> HSV (..., 3): hue in degrees, s and v in [0, 1]."""
    rgb = np.asarray(rgb, dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = rgb.max(axis=-1)
    mn = rgb.min(axis=-1)
    d = mx - mn
    safe = np.where(d > 1e-6, d, 1.0)
    h = np.where(
        mx == r,
        ((g - b) / safe) % 6.0,
        np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    h = np.where(d > 1e-6, h * 60.0, 0.0)
    s = np.where(mx > 1e-6, d / np.where(mx > 1e-6, mx, 1.0), 0.0)
    return np.stack([h, s, mx], axis=-1).astype(np.float32)


def paint(
    shade: np.ndarray, tint: Tint, *, sat_scale: float = 1.0, whiten: np.ndarray | None = None
) -> np.ndarray:
    """Colour a shade field (0 = darkest, 1 = brightest) with ``tint``; (..., 3) float32.

    ``whiten`` (0..1, same shape) pulls pixels toward white (highlights, glow, foam)."""
    shade = np.clip(shade, 0.0, 1.0)
    value = tint.val * (0.22 + 0.95 * shade)
    sat = tint.sat * sat_scale * (1.0 - 0.25 * shade * shade)
    if whiten is not None:
        w = np.clip(whiten, 0.0, 1.0)
        sat = sat * (1.0 - 0.7 * w)
        value = value + (1.0 - value) * w
    return hsv_to_rgb(np.full_like(shade, tint.hue), sat, value)


def neutral(shade: np.ndarray, tint: Tint, tinge: float = 0.12) -> np.ndarray:
    """A near-grey material (mortar, grout, rivets) carrying a trace of ``tint``'s hue."""
    value = np.clip(shade, 0.0, 1.0)
    return hsv_to_rgb(np.full_like(value, tint.hue), np.full_like(value, tint.sat * tinge), value)
