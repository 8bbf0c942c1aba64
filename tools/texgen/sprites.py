"""Simple game sprites drawn with signed distance functions on a flat key-colour background.

A sprite is a stack of shapes (signed distance in sprite units, negative inside) painted in
order, with a dark outline, anti-aliased over one pixel. The background is exactly the key
colour everywhere outside the sprite (a margin of several pixels is always left), which is
what the daemon's matte expects for transparent sprites.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .colours import Tint, hsv_to_rgb, paint

RGB = tuple[int, int, int]

WOOD = Tint(28.0, 0.60, 0.50)
STEEL = Tint(210.0, 0.08, 0.75)
BEIGE = Tint(38.0, 0.25, 0.95)
GLASS = Tint(190.0, 0.10, 0.95)
WHITE = Tint(0.0, 0.0, 1.0)


@dataclass
class Canvas:
    """Sprite coordinates: X right, Y down, in [-1, 1] across the image after the sprite's
    own offset and scale; ``px`` converts sprite units to pixels."""

    X: np.ndarray
    Y: np.ndarray
    px: float
    light: np.ndarray


@dataclass
class Shape:
    sdf: np.ndarray
    rgb: np.ndarray
    outline: bool = True


ShapeFn = Callable[[Canvas, Tint], list[Shape]]


def circle(c: Canvas, x: float, y: float, r: float) -> np.ndarray:
    return np.hypot(c.X - x, c.Y - y) - r


def box(c: Canvas, x: float, y: float, hx: float, hy: float, r: float = 0.0) -> np.ndarray:
    qx = np.abs(c.X - x) - hx + r
    qy = np.abs(c.Y - y) - hy + r
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - r


def polygon(c: Canvas, pts: list[tuple[float, float]]) -> np.ndarray:
    """Exact signed distance to a simple polygon (Inigo Quilez's formulation)."""
    v = np.asarray(pts, dtype=np.float64)
    px, py = c.X, c.Y
    d = (px - v[0, 0]) ** 2 + (py - v[0, 1]) ** 2
    sign = np.ones_like(px)
    for i in range(len(v)):
        j = i - 1
        ex, ey = v[j, 0] - v[i, 0], v[j, 1] - v[i, 1]
        wx, wy = px - v[i, 0], py - v[i, 1]
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        bx, by = wx - ex * t, wy - ey * t
        d = np.minimum(d, bx * bx + by * by)
        c1, c2, c3 = py >= v[i, 1], py < v[j, 1], ex * wy > ey * wx
        flip = (c1 & c2 & c3) | (~c1 & ~c2 & ~c3)
        sign = np.where(flip, -sign, sign)
    return sign * np.sqrt(d)


def rotated(c: Canvas, degrees: float) -> Canvas:
    a = np.deg2rad(degrees)
    x = c.X * np.cos(a) + c.Y * np.sin(a)
    y = -c.X * np.sin(a) + c.Y * np.cos(a)
    return Canvas(x, y, c.px, c.light)


def _lit(c: Canvas, tint: Tint, base: float = 0.55, amount: float = 0.35) -> np.ndarray:
    return paint(base + amount * c.light, tint)


def coin(c: Canvas, t: Tint) -> list[Shape]:
    rim = circle(c, 0.0, 0.0, 0.64)
    ring = np.abs(np.hypot(c.X, c.Y) - 0.47) - 0.035
    mark = np.abs(c.X) + np.abs(c.Y) - 0.22
    face = paint(0.55 + 0.35 * c.light - 0.25 * (ring < 0) + 0.25 * (mark < 0), t)
    return [Shape(rim, face)]


def gem(c: Canvas, t: Tint) -> list[Shape]:
    body = polygon(c, [(-0.38, -0.52), (0.38, -0.52), (0.68, -0.14), (0.0, 0.70), (-0.68, -0.14)])
    sector = np.floor((np.arctan2(c.Y + 0.1, c.X) + np.pi) / (2 * np.pi) * 6) % 3
    table = (c.Y < -0.14) & (np.abs(c.X) < 0.38 + 0.8 * (c.Y + 0.52))
    shade = 0.45 + 0.18 * sector + 0.25 * table + 0.2 * c.light
    glint = np.exp(-(((c.X + 0.2) ** 2 + (c.Y + 0.32) ** 2) / 0.004))
    return [Shape(body, paint(shade, t, whiten=glint))]


def heart(c: Canvas, t: Tint) -> list[Shape]:
    k = 0.83
    x, y = np.abs(c.X) * k, (0.66 - c.Y) * k
    upper = np.hypot(x - 0.25, y - 0.75) - np.sqrt(2.0) / 4.0
    m = 0.5 * np.maximum(x + y, 0.0)
    lower = np.sqrt(np.minimum(x**2 + (y - 1.0) ** 2, (x - m) ** 2 + (y - m) ** 2))
    lower = lower * np.sign(x - y)
    sdf = np.where(x + y > 1.0, upper, lower) / k
    glint = np.exp(-(((c.X + 0.32) ** 2 + (c.Y + 0.3) ** 2) / 0.01))
    return [Shape(sdf, paint(0.5 + 0.4 * c.light, t, whiten=0.8 * glint))]


def star(c: Canvas, t: Tint) -> list[Shape]:
    pts = []
    for i in range(10):
        r = 0.80 if i % 2 == 0 else 0.36
        a = -np.pi / 2 + i * np.pi / 5
        pts.append((r * np.cos(a), r * np.sin(a) + 0.06))
    sdf = polygon(c, pts)
    ridge = 0.15 * (np.abs(np.arctan2(c.Y - 0.06, c.X) * 5 / np.pi) % 2 > 1)
    return [Shape(sdf, paint(0.5 + 0.35 * c.light + ridge, t))]


def potion(c: Canvas, t: Tint) -> list[Shape]:
    bulb = circle(c, 0.0, 0.22, 0.50)
    neck = box(c, 0.0, -0.38, 0.16, 0.2, 0.03)
    glass = np.minimum(bulb, neck)
    level = 0.05 + 0.04 * np.sin(c.X * 7.0)
    liquid = np.maximum(bulb + 0.05, level - c.Y)
    cork = box(c, 0.0, -0.64, 0.20, 0.10, 0.04)
    glint = np.exp(-(((c.X + 0.22) ** 2 + (c.Y - 0.05) ** 2) / 0.006))
    return [
        Shape(glass, paint(0.85 + 0.1 * c.light, GLASS)),
        Shape(liquid, paint(0.5 + 0.35 * c.light, t, whiten=glint), outline=False),
        Shape(cork, _lit(c, WOOD)),
    ]


def key(c: Canvas, t: Tint) -> list[Shape]:
    r = rotated(c, -35.0)
    ring = np.hypot(r.X + 0.5, r.Y) - 0.36
    hole = np.hypot(r.X + 0.5, r.Y) - 0.15
    shaft = box(r, 0.24, 0.0, 0.58, 0.13)
    teeth = np.minimum(box(r, 0.52, 0.2, 0.08, 0.18), box(r, 0.72, 0.16, 0.07, 0.14))
    sdf = np.maximum(np.minimum(np.minimum(ring, shaft), teeth), -hole)
    return [Shape(sdf, _lit(c, t))]


def shield(c: Canvas, t: Tint) -> list[Shape]:
    pts = [(-0.62, -0.66), (0.62, -0.66), (0.62, 0.0), (0.36, 0.46), (0.0, 0.74), (-0.36, 0.46)]
    body = polygon(c, [*pts, (-0.62, 0.0)])
    cross = np.minimum(np.abs(c.X) - 0.09, np.abs(c.Y + 0.1) - 0.09)
    inner = np.maximum(body + 0.12, cross)
    return [
        Shape(body, _lit(c, STEEL, 0.5)),
        Shape(np.maximum(body + 0.12, -cross), _lit(c, t), outline=False),
        Shape(inner, _lit(c, STEEL, 0.65), outline=False),
    ]


def sword(c: Canvas, t: Tint) -> list[Shape]:
    r = rotated(c, 45.0)
    blade = polygon(r, [(-0.1, -0.14), (0.7, -0.14), (0.98, 0.0), (0.7, 0.14), (-0.1, 0.14)])
    guard = box(r, -0.16, 0.0, 0.07, 0.38, 0.03)
    grip = box(r, -0.46, 0.0, 0.26, 0.08)
    pommel = np.hypot(r.X + 0.78, r.Y) - 0.13
    edge = 0.2 * (r.Y < 0)
    return [
        Shape(grip, _lit(c, WOOD)),
        Shape(pommel, _lit(c, t)),
        Shape(blade, paint(0.55 + 0.3 * c.light + edge, t, sat_scale=0.8)),
        Shape(guard, _lit(c, t)),
    ]


def mushroom(c: Canvas, t: Tint) -> list[Shape]:
    cap = (np.hypot(c.X / 0.74, (c.Y + 0.02) / 0.58) - 1.0) * 0.58
    cap = np.maximum(cap, c.Y - 0.02)
    stem = box(c, 0.0, 0.34, 0.22, 0.34, 0.08)
    spots = np.minimum(
        np.minimum(circle(c, -0.3, -0.2, 0.11), circle(c, 0.18, -0.34, 0.09)),
        circle(c, 0.36, -0.1, 0.08),
    )
    return [
        Shape(stem, _lit(c, BEIGE, 0.6)),
        Shape(cap, _lit(c, t)),
        Shape(np.maximum(spots, cap), _lit(c, WHITE, 0.9, 0.1), outline=False),
    ]


def chest(c: Canvas, t: Tint) -> list[Shape]:
    body = box(c, 0.0, 0.16, 0.70, 0.42, 0.06)
    lid = np.maximum(
        np.minimum(
            box(c, 0.0, -0.12, 0.70, 0.14), (np.hypot(c.X / 0.7, (c.Y + 0.12) / 0.4) - 1) * 0.4
        ),
        c.Y + 0.0,
    )
    bands = np.maximum(np.abs(np.abs(c.X) - 0.46) - 0.07, np.minimum(body, lid))
    lock = box(c, 0.0, 0.02, 0.1, 0.12, 0.03)
    return [
        Shape(body, paint(0.45 + 0.3 * c.light - 0.12 * (np.abs(c.Y - 0.2) < 0.02), t)),
        Shape(lid, paint(0.6 + 0.3 * c.light, t)),
        Shape(bands, _lit(c, STEEL, 0.45), outline=False),
        Shape(lock, _lit(c, STEEL, 0.7)),
    ]


SPRITES: dict[str, ShapeFn] = {
    "coin": coin,
    "gem": gem,
    "heart": heart,
    "star": star,
    "potion": potion,
    "key": key,
    "shield": shield,
    "sword": sword,
    "mushroom": mushroom,
    "chest": chest,
}


def render_sprite(
    kind: str, tint: Tint, key_rgb: RGB, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Draw sprite ``kind`` coloured with ``tint`` on a flat ``key_rgb`` background; float RGB
    (size, size, 3) in [0, 1]. Offset, scale and a small flip come from ``rng``."""
    scale = rng.uniform(0.86, 1.04)
    ox, oy = rng.uniform(-0.07, 0.07, 2)
    flip = -1.0 if rng.random() < 0.5 else 1.0
    side = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(side, side, indexing="ij")
    X, Y = flip * (x - ox) / scale, (y - oy) / scale  # noqa: N806
    light = np.clip(0.5 - 0.4 * (flip * X + Y), 0.0, 1.0)
    canvas = Canvas(X, Y, size * scale / 2.0, light)
    out = np.broadcast_to(np.asarray(key_rgb, np.float32) / 255.0, (size, size, 3)).copy()
    dark = hsv_to_rgb(np.array(tint.hue), np.array(min(1.0, tint.sat)), np.array(tint.val * 0.22))
    width = 1.3 * max(size / 64.0, 1.0)
    for shape in SPRITES[kind](canvas, tint):
        d = shape.sdf * canvas.px
        if shape.outline:
            a = np.clip(0.5 - (d - width), 0.0, 1.0)[..., None]
            out = out * (1.0 - a) + dark * a
        a = np.clip(0.5 - d, 0.0, 1.0)[..., None]
        out = out * (1.0 - a) + shape.rgb * a
    return out.astype(np.float32)
