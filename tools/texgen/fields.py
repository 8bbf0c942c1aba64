"""Periodic building blocks: the pixel grid of one tile, FFT-filtered noise on integer
frequencies, periodic Voronoi cells and smooth steps.

Everything a texture is made of is a function of the pixel coordinates *modulo the tile size*
(noise fields are computed on the tile and gathered by index, layouts use integer counts of
cells per tile, distances wrap), so every texture tiles exactly, and a canvas of several tiles
is pixel for pixel the same tile repeated.
"""

from __future__ import annotations

import numpy as np


class Grid:
    """The pixels of a canvas of ``tiles`` x ``tiles`` tiles of ``n`` x ``n`` pixels.

    ``y``, ``x``: integer pixel coordinates reduced modulo ``n`` (canvas shape);
    ``v``, ``u``: the same in tile units, in [0, 1)."""

    def __init__(self, n: int, tiles: int = 1) -> None:
        if n < 8 or tiles < 1:
            raise ValueError(f"need n >= 8 and tiles >= 1, got n={n}, tiles={tiles}")
        self.n = n
        side = np.arange(n * tiles) % n
        self.y, self.x = np.meshgrid(side, side, indexing="ij")
        self.v = (self.y.astype(np.float64) + 0.5) / n
        self.u = (self.x.astype(np.float64) + 0.5) / n

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.y.shape[0]), int(self.y.shape[1]))

    def sample(self, field: np.ndarray) -> np.ndarray:
        """Gather a tile-sized (n, n) field onto the canvas."""
        return np.asarray(field[self.y, self.x])

    def noise(
        self,
        rng: np.random.Generator,
        cutoff: float,
        *,
        stretch: tuple[float, float] = (1.0, 1.0),
        beta: float = 0.0,
    ) -> np.ndarray:
        """Periodic noise on the canvas (zero mean, unit std); see :func:`periodic_noise`."""
        return self.sample(periodic_noise(rng, self.n, cutoff, stretch=stretch, beta=beta))


def periodic_noise(
    rng: np.random.Generator,
    n: int,
    cutoff: float,
    *,
    stretch: tuple[float, float] = (1.0, 1.0),
    beta: float = 0.0,
) -> np.ndarray:
    """White noise filtered in the Fourier domain of the n x n tile: only integer frequencies
    exist there, so the result is periodic with period n. ``cutoff``: Gaussian low-pass radius
    in cycles per tile; ``stretch`` (y, x): frequency scale per axis (a large x stretch gives
    streaks running along x); ``beta``: extra 1/f^beta falloff (fractal noise). Float32,
    zero mean, unit standard deviation."""
    white = rng.standard_normal((n, n))
    fy = np.fft.fftfreq(n, 1.0 / n)[:, None] * stretch[0]
    fx = np.fft.rfftfreq(n, 1.0 / n)[None, :] * stretch[1]
    r = np.hypot(fy, fx)
    filt = np.exp(-((r / max(cutoff, 1e-3)) ** 2))
    if beta:
        filt = filt * np.where(r > 0, r, 1.0) ** (-beta)
    filt[0, 0] = 0.0
    out = np.fft.irfft2(np.fft.rfft2(white) * filt, s=(n, n))
    std = float(out.std())
    return (out / (std if std > 1e-12 else 1.0)).astype(np.float32)


def wrap(d: np.ndarray) -> np.ndarray:
    """A difference of tile coordinates wrapped into [-0.5, 0.5]."""
    return d - np.round(d)


def voronoi(
    grid: Grid, points: np.ndarray, aspect: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Periodic Voronoi cells of ``points`` (K, 2) as (u, v) in tile units.

    Returns (cell index, F1, F2 - F1) per canvas pixel, distances in pixels; F2 - F1 is about
    twice the distance to the nearest cell border. ``aspect`` stretches v distances."""
    du = wrap(grid.u[None] - points[:, 0, None, None])
    dv = wrap(grid.v[None] - points[:, 1, None, None]) * aspect
    d = np.hypot(du, dv) * grid.n
    part = np.partition(d, 1, axis=0)
    return np.argmin(d, axis=0), part[0], part[1] - part[0]


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def cells(
    rows: int, cols: int, v: np.ndarray, u: np.ndarray, stagger: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A periodic brick layout: rows x cols cells per tile, odd rows shifted by ``stagger``
    of a cell (``rows`` must be even when ``stagger`` is set). Returns (row, col, fv, fu): the
    cell indices and the position inside the cell, in [0, 1)."""
    rv = v * rows
    row = np.floor(rv).astype(np.int64) % rows
    cu = u * cols + stagger * (row % 2)
    col = np.floor(cu).astype(np.int64) % cols
    return row, col, rv - np.floor(rv), cu - np.floor(cu)
