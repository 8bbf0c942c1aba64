"""The tileable texture patterns. Each draws shade fields on a :class:`~texgen.fields.Grid`
and colours them with a :class:`~texgen.colours.Tint`; the result is float RGB in [0, 1]
with the grid's shape. Line widths are given at 64 px and scale with the tile size."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .colours import Tint, neutral, paint
from .fields import Grid, cells, smoothstep, voronoi

PatternFn = Callable[[Grid, np.random.Generator, Tint], np.ndarray]
TAU = 2.0 * np.pi


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = t[..., None]
    return (a * (1.0 - t) + b * t).astype(np.float32)


def _edge_px(fv: np.ndarray, fu: np.ndarray, rows: int, cols: int, n: int) -> np.ndarray:
    """Pixel distance to the nearest edge of a rows x cols cell layout."""
    du = np.minimum(fu, 1.0 - fu) * (n / cols)
    dv = np.minimum(fv, 1.0 - fv) * (n / rows)
    return np.minimum(du, dv)


def _jittered_points(rng: np.random.Generator, k: int, amount: float) -> np.ndarray:
    j, i = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    base = np.stack([i.ravel(), j.ravel()], axis=1).astype(np.float64) + 0.5
    return (base + rng.uniform(-amount, amount, base.shape)) / k


def _direction(rng: np.random.Generator) -> tuple[int, int]:
    options = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 1), (1, 2), (2, -1), (1, -2))
    a, b = options[int(rng.integers(len(options)))]
    return a, b


def brick(g: Grid, rng: np.random.Generator, tint: Tint) -> np.ndarray:
    s = g.n / 64.0
    rows = int(rng.choice([4, 6, 8]))
    cols = rows // 2
    row, col, fv, fu = cells(rows, cols, g.v, g.u, stagger=0.5)
    edge = _edge_px(fv, fu, rows, cols, g.n)
    width = rng.uniform(0.9, 1.6) * s
    body = smoothstep(width - 0.4, width + 0.8, edge)
    tone = rng.uniform(0.40, 0.75, (rows, cols))[row, col]
    bevel = smoothstep(0.0, 3.0 * s, edge) - 1.0
    shade = tone + 0.08 * g.noise(rng, 24.0, beta=0.5) + 0.15 * bevel
    mortar = neutral(0.70 + 0.05 * g.noise(rng, 32.0), tint)
    return _mix(mortar, paint(shade, tint), body)


def planks(g: Grid, rng: np.random.Generator, tint: Tint) -> np.ndarray:
    s = g.n / 64.0
    rows = int(rng.choice([3, 4, 5, 6]))
    segments = rng.integers(1, 3, rows)
    offsets = rng.uniform(0.0, 1.0, rows)
    rv = g.v * rows
    row = np.floor(rv).astype(np.int64) % rows
    fv = rv - np.floor(rv)
    k = segments[row]
    cu = g.u * k + offsets[row]
    fu = cu - np.floor(cu)
    seg = np.floor(cu).astype(np.int64) % k
    edge = np.minimum(np.minimum(fv, 1.0 - fv) * g.n / rows, np.minimum(fu, 1.0 - fu) * g.n / k)
    lines = int(rng.integers(3, 6))
    phase = rng.uniform(0.0, 1.0, rows)[row]
    warp = g.noise(rng, 10.0, stretch=(1.0, 8.0))
    grain = np.sin(TAU * (rv * lines + phase) + 2.2 * warp)
    fine = g.noise(rng, 40.0, stretch=(1.0, 6.0))
    tone = rng.uniform(0.42, 0.68, (rows, 2))[row, seg]
    shade = tone + 0.13 * grain + 0.07 * fine
    body = smoothstep(0.5 * s, 1.4 * s, edge)
    out = paint(shade * body + 0.05 * (1.0 - body), tint)
    return np.ascontiguousarray(out.transpose(1, 0, 2)) if rng.random() < 0.5 else out


def marble(g: Grid, rng: np.random.Generator, tint: Tint) -> np.ndarray:
    a, b = _direction(rng)
    turb = g.noise(rng, 8.0, beta=1.0)
    s1 = np.sin(TAU * (a * g.u + b * g.v) + 1.4 * turb)
    c, d = _direction(rng)
    s2 = np.sin(TAU * (d * g.u - c * g.v) * 2 + 1.6 * g.noise(rng, 12.0, beta=0.8))
    vein = np.exp(-((s1 / 0.16) ** 2))
    vein2 = np.exp(-((s2 / 0.10) ** 2))
    cloud = g.noise(rng, 6.0, beta=1.0)
    shade = 0.80 + 0.06 * cloud - 0.55 * vein - 0.25 * vein2
    return paint(shade, tint, sat_scale=0.85)


def cobblestone(g: Grid, rng: np.random.Generator, tint: Tint) -> np.ndarray:
    s = g.n / 64.0
    k = int(rng.choice([4, 5, 6]))
    cell, _, gap = voronoi(g, _jittered_points(rng, k, 0.32))
    body = smoothstep(1.4 * s, 3.0 * s, gap)
    dome = np.sqrt(np.clip(gap / (g.n / k * 0.7), 0.0, 1.0))
    tone = rng.uniform(0.40, 0.78, k * k)[cell]
    shade = tone * (0.55 + 0.45 * dome) + 0.07 * g.noise(rng, 24.0, beta=0.5)
    return paint(shade * body + 0.08 * (1.0 - body), tint)


def moss(g: Grid, rng: np.random.Generator, tint: Tint) -> np.ndarray:
    clumps = smoothstep(-0.4, 0.7, g.noise(rng, 12.0, beta=1.2))
    fibre = g.noise(rng, 48.0)
    shade = 0.22 + 0.45 * clumps + 0.16 * fibre * (0.4 + clumps) + 0.06 * g.noise(rng, 4.0)
    return paint(shade, tint)


def sand(g: Grid, rng: np.random.Generator, tint: Tint) -> np.ndarray:
    a, b = _direction(rng)
    freq = int(rng.integers(5, 9))
    ripple = 0.5 + 0.5 * np.sin(TAU * freq * (a * g.u + b * g.v) + 1.3 * g.noise(rng, 3.0))
    grain = g.noise(rng, 64.0)
    shade = 0.55 + 0.17 * ripple**2 + 0.08 * grain + 0.04 * g.noise(rng, 8.0)
    return paint(shade, tint, sat_scale=0.8)


def water(g: Grid, rng: np.random.Generator, tint: Tint) -> np.ndarray:
    n1 = g.noise(rng, 5.0, beta=0.8)
    n2 = g.noise(rng, 7.0, beta=0.8)
    caustic = np.exp(-((n1 / 0.22) ** 2)) + 0.6 * np.exp(-((n2 / 0.18) ** 2))
    a, b = _direction(rng)
    wave = np.sin(TAU * int(rng.integers(2, 5)) * (a * g.u + b * g.v) + 1.5 * g.noise(rng, 3.0))
    shade = 0.42 + 0.08 * wave + 0.08 * g.noise(rng, 4.0) + 0.15 * caustic
    return paint(shade, tint, whiten=0.55 * np.clip(caustic, 0.0, 1.0))


def lava(g: Grid, rng: np.random.Generator, tint: Tint) -> np.ndarray:
    s = g.n / 64.0
    k = int(rng.choice([3, 4, 5]))
    cell, _, gap = voronoi(g, _jittered_points(rng, k, 0.35))
    glow = np.exp(-gap / (1.6 * s)) + 0.35 * np.exp(-gap / (6.0 * s))
    hot = smoothstep(1.0, 2.6, g.noise(rng, 10.0, beta=0.5))
    crust = 0.10 + 0.06 * g.noise(rng, 24.0) + rng.uniform(0.0, 0.1, k * k)[cell]
    heat = np.clip(glow + 0.6 * hot, 0.0, 1.0)
    shade = crust + 0.85 * heat
    return paint(shade, tint, whiten=np.clip(heat - 0.55, 0.0, 1.0) * 1.2)


def checker(g: Grid, rng: np.random.Generator, tint: Tint) -> np.ndarray:
    s = g.n / 64.0
    k = int(rng.choice([4, 6, 8]))
    row, col, fv, fu = cells(k, k, g.v, g.u)
    parity = (row + col) % 2
    edge = _edge_px(fv, fu, k, k, g.n)
    jitter = rng.uniform(-0.04, 0.04, (k, k))[row, col]
    shade = np.where(parity == 1, 0.85, 0.30) + jitter + 0.03 * g.noise(rng, 24.0)
    body = smoothstep(0.3 * s, 1.0 * s, edge)
    grout = neutral(np.full(g.shape, rng.uniform(0.45, 0.65)), tint)
    return _mix(grout, paint(shade, tint), body)


def metal(g: Grid, rng: np.random.Generator, tint: Tint) -> np.ndarray:
    s = g.n / 64.0
    p = int(rng.choice([1, 2]))
    row, col, fv, fu = cells(p, p, g.v, g.u)
    side = g.n / p
    width = 2.5 * s
    top, left = np.clip(1.0 - fv * side / width, 0, 1), np.clip(1.0 - fu * side / width, 0, 1)
    bottom = np.clip(1.0 - (1.0 - fv) * side / width, 0, 1)
    right = np.clip(1.0 - (1.0 - fu) * side / width, 0, 1)
    bevel = 0.22 * (top + left) - 0.28 * (bottom + right)
    stretch = (1.0, 12.0) if rng.random() < 0.5 else (12.0, 1.0)
    brushed = g.noise(rng, 48.0, stretch=stretch)
    tone = rng.uniform(0.45, 0.62, (p, p))[row, col]
    shade = tone + bevel + 0.05 * brushed
    inset, radius = 0.12 if p == 1 else 0.16, 2.2 * s
    rivets = np.zeros(g.shape)
    rivet_shade = np.zeros(g.shape)
    for cy in (inset, 1.0 - inset):
        for cx in (inset, 1.0 - inset):
            dy, dx = (fv - cy) * side, (fu - cx) * side
            dist = np.hypot(dx, dy)
            r = smoothstep(radius + 0.5, radius - 0.5, dist)
            rivets = np.maximum(rivets, r)
            rivet_shade += r * (0.75 - 0.35 * (dx + dy) / radius)
    shade = shade * (1.0 - rivets) + rivet_shade
    seam = smoothstep(0.3 * s, 0.9 * s, _edge_px(fv, fu, p, p, g.n))
    return paint(shade * seam + 0.08 * (1.0 - seam), tint, sat_scale=0.75)


def shingles(g: Grid, rng: np.random.Generator, tint: Tint) -> np.ndarray:
    s = g.n / 64.0
    rows = int(rng.choice([4, 6, 8]))
    row, col, fv, fu = cells(rows, rows, g.v, g.u, stagger=0.5)
    lower = 0.62 + 0.36 * np.sqrt(np.clip(1.0 - (2.0 * fu - 1.0) ** 2, 0.0, 1.0))
    above = fv < lower
    tone = rng.uniform(0.45, 0.75, (rows, rows))[row, col]
    lit = tone * (0.55 + 0.45 * fv / lower)
    shadow = 0.15 + 0.15 * (fv - lower) / np.maximum(1.0 - lower, 1e-3)
    shade = np.where(above, lit, shadow)
    cell_h = g.n / rows
    rim = smoothstep(0.4 * s, 1.1 * s, np.abs(fv - lower) * cell_h)
    joint = smoothstep(0.3 * s, 0.9 * s, np.minimum(fu, 1.0 - fu) * cell_h)
    shade = shade * rim * np.where(above, joint, 1.0) + 0.05 * g.noise(rng, 32.0)
    return paint(shade, tint)


def hexagon(g: Grid, rng: np.random.Generator, tint: Tint) -> np.ndarray:
    s = g.n / 64.0
    cols, rows = ((3, 4), (5, 6), (4, 4))[int(rng.integers(3))]
    pts = np.array(
        [
            ((i + 0.5 + 0.5 * (j % 2)) / cols, (j + 0.5) / rows)
            for j in range(rows)
            for i in range(cols)
        ]
    )
    cell, _, gap = voronoi(g, pts)
    body = smoothstep(1.0 * s, 2.0 * s, gap)
    tone = rng.uniform(0.45, 0.80, len(pts))[cell]
    shade = tone + 0.12 * np.clip(gap / (4.0 * s), 0.0, 1.0) + 0.03 * g.noise(rng, 24.0)
    grout = neutral(np.full(g.shape, rng.choice([0.3, 0.8])), tint)
    return _mix(grout, paint(shade, tint), body)


PATTERNS: dict[str, PatternFn] = {
    "brick": brick,
    "planks": planks,
    "marble": marble,
    "cobblestone": cobblestone,
    "moss": moss,
    "sand": sand,
    "water": water,
    "lava": lava,
    "checker": checker,
    "metal": metal,
    "shingles": shingles,
    "hexagon": hexagon,
}
