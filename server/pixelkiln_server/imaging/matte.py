"""Transparent sprites by keying a flat background colour.

The model is asked for a subject on a flat key colour (:func:`key_prompt_suffix`), chosen
away from the colours the prompt names (:func:`choose_key_color`); :func:`matte` turns the
result into straight-alpha RGBA uint8. Input images are RGB uint8 (H, W, 3); a 4th channel
is ignored. Matters are pluggable through :class:`Matter` and :data:`MATTERS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

RGB = tuple[int, int, int]

KEY_PALETTE: tuple[RGB, ...] = ((0, 255, 0), (255, 0, 255), (0, 0, 255))  # preference order
KEY_NAMES: dict[RGB, str] = {(0, 255, 0): "green", (255, 0, 255): "magenta", (0, 0, 255): "blue"}

_COLOR_GROUPS: dict[RGB, str] = {  # colour -> words that name it
    (40, 160, 40): "green emerald moss mossy leaf leaves leafy lime olive jade forest grass "
    "grassy mint slime frog cactus fern ivy",
    (200, 20, 20): "red crimson scarlet ruby blood cherry maroon",
    (230, 120, 20): "orange amber rust rusty copper",
    (230, 200, 30): "yellow gold golden lemon banana",
    (30, 60, 220): "blue azure sapphire navy cobalt ocean",
    (0, 200, 200): "cyan teal turquoise aqua",
    (130, 40, 180): "purple violet lavender amethyst indigo plum",
    (230, 60, 200): "magenta pink fuchsia rose",
}
COLOR_WORDS: dict[str, RGB] = {
    w: rgb for rgb, words in _COLOR_GROUPS.items() for w in words.split()
}

MATTE_INNER = 0.12  # key distance at or below which a pixel is fully transparent
MATTE_OUTER = 0.40  # key distance at or above which a pixel is fully opaque
PARALLEL_WEIGHT = 0.5  # how much a loss of key saturation (shading) counts vs a hue change
MIN_KEY_CHROMA = 0.08  # below this the key is treated as grey: plain RGB distance
EDGE_BAND = 3  # px around non-opaque pixels that are refined and despilled
# Above this share of the image in the edge band, skip the refinement (see matte()).
MAX_BAND_FRACTION = 0.25
MAX_LINE_RESIDUAL = 0.08  # how far (RGB 0..1) a pixel may sit off the key->foreground line


def choose_key_color(prompt: str) -> RGB:
    """Palette key farthest (min RGB distance) from every colour word in the prompt.

    Deterministic; ties and colourless prompts go to the earlier palette entry (green).
    """
    named = {COLOR_WORDS[w] for w in re.findall(r"[a-z]+", prompt.lower()) if w in COLOR_WORDS}
    if not named:
        return KEY_PALETTE[0]
    colors = np.array(sorted(named), dtype=np.float64)

    def score(key: RGB) -> float:
        return float(np.min(np.linalg.norm(colors - np.array(key), axis=1)))

    return max(KEY_PALETTE, key=score)  # max() keeps the first of equal scores


def key_prompt_suffix(key: RGB) -> str:
    """Prompt text asking for the subject on a flat background of ``key``."""
    rgb = (int(key[0]), int(key[1]), int(key[2]))
    name = KEY_NAMES.get(rgb) or "#{:02x}{:02x}{:02x}".format(*rgb)
    return f", isolated on a flat solid {name} background"


def _planes(rgb: np.ndarray) -> np.ndarray:
    """RGB(A) uint8 (H, W, 3|4) -> planar float32 (3, H, W) in [0, 1]."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"rgb must be uint8 (H, W, 3|4), got {arr.dtype} shape {arr.shape}")
    return np.moveaxis(arr[..., :3], 2, 0).astype(np.float32) * np.float32(1.0 / 255.0)


def estimate_key(rgb: np.ndarray) -> RGB:
    """Key colour read from the image: per-channel median of the 1-px border."""
    arr = np.asarray(rgb)[..., :3]
    border = np.concatenate([arr[0], arr[-1], arr[1:-1, 0], arr[1:-1, -1]])
    med = np.median(border, axis=0)
    return (int(round(med[0])), int(round(med[1])), int(round(med[2])))


def key_distance(rgb: np.ndarray, key: RGB) -> np.ndarray:
    """Chroma-aware distance of each pixel to ``key``, float32 (H, W).

    With chroma c(p) = p - mean(p) (the opponent plane, grey removed) and ck = c(key):
    a = <c(p), ck> / |ck|^2 is how much of the key's chroma the pixel carries and
    b = |c(p) - a ck| / |ck| its chroma off the key's hue. The distance is
    sqrt((PARALLEL_WEIGHT * max(0, 1 - a))^2 + b^2): shading the key (p = s * key) only
    lowers a, at half weight, while a hue change counts fully; grey and black are 0.5 away.
    It is linear in alpha along key-to-foreground mixes. A near-grey key falls back to
    plain RGB Euclidean distance (0..sqrt(3)).
    """
    return _distance(_planes(rgb), key)


def _distance(p: np.ndarray, key: RGB) -> np.ndarray:
    k = np.asarray(key, dtype=np.float32) / 255.0
    ck = k - k.mean()
    n2 = float(ck @ ck)
    r, g, b = p
    if n2 < MIN_KEY_CHROMA**2:
        return np.sqrt((r - k[0]) ** 2 + (g - k[1]) ** 2 + (b - k[2]) ** 2)
    a = (r * ck[0] + g * ck[1] + b * ck[2]) * np.float32(1.0 / n2)
    s = r + g + b
    chroma2 = r * r + g * g + b * b - s * s * np.float32(1.0 / 3.0)
    b2 = np.maximum(chroma2 * np.float32(1.0 / n2) - a * a, 0.0)
    par = np.maximum(np.float32(1.0) - a, 0.0) * np.float32(PARALLEL_WEIGHT)
    return np.sqrt(par * par + b2)


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for axis in (0, 1):
        src = out.copy()
        n = src.shape[axis]
        for d in range(1, r + 1):
            if axis == 0:
                out[d:] |= src[: n - d]
                out[: n - d] |= src[d:]
            else:
                out[:, d:] |= src[:, : n - d]
                out[:, : n - d] |= src[:, d:]
    return out


def matte(
    rgb_uint8: np.ndarray,
    key: RGB | None = None,
    *,
    inner: float = MATTE_INNER,
    outer: float = MATTE_OUTER,
    despill: bool = True,
    refine: bool = True,
) -> np.ndarray:
    """Key out ``key`` (estimated from the border when None); returns straight RGBA uint8.

    1. alpha ramps linearly from 0 at :func:`key_distance` <= inner to 1 at >= outer.
    2. The edge band is every pixel with alpha > 0 within EDGE_BAND px of one with
       alpha < 1; the solid interior beyond it is left alone. ``refine``: each band pixel
       takes the neighbouring foreground colour F (grown in from the interior, picking the
       neighbour whose key->F line best explains the pixel) and, where the pixel lies
       within MAX_LINE_RESIDUAL of that line, alpha becomes its projection on the line
       (exact for a clean mix; dark outlines and other misfits keep the ramp alpha).
    3. ``despill``, on the band: where 0 < alpha < 1 solve observed = a*fg + (1-a)*key for
       fg (blended toward F by 1-a, which tames noise at low alpha), then clamp the key's
       dominant channels to the others (green key: G <= max(R, B)). On clean synthetic
       composites the key's excess stays within 10/255 of the true foreground's.
    Fully transparent pixels get RGB 0.
    """
    if not 0.0 <= inner < outer:
        raise ValueError(f"need 0 <= inner < outer, got inner={inner}, outer={outer}")
    arr = np.asarray(rgb_uint8)
    p = _planes(arr)
    if key is None:
        key = estimate_key(arr)
    alpha = _distance(p, key)
    alpha -= np.float32(inner)
    alpha *= np.float32(1.0 / (outer - inner))
    np.clip(alpha, 0.0, 1.0, out=alpha)
    core = ~_dilate(alpha < 1.0, EDGE_BAND)
    ys, xs = np.nonzero(~core & (alpha > 0.0))
    colours = None
    k = np.asarray(key, dtype=np.float32) / 255.0
    if ys.size > MAX_BAND_FRACTION * alpha.size and despill:
        # Not a sprite on a flat key (noise, a full-frame picture): the edge band is most of
        # the image. Refining it would cost seconds for nothing; clamp the spill and go.
        obs = p[:, ys, xs].T
        a = np.floor(alpha[ys, xs] * 255.0 + 0.5) * np.float32(1.0 / 255.0)
        bg = np.broadcast_to(k, obs.shape)
        colours = _despill(obs, a, k, bg, obs, np.zeros(ys.size, dtype=bool))
    elif ys.size and (despill or refine):
        obs = p[:, ys, xs].T
        bcol, bfound = _grow(p, alpha == 0.0, ys, xs, EDGE_BAND + 3)
        bcol[~bfound] = k
        solid = alpha[ys, xs] >= 1.0
        fcol, found = _grow(p, core, ys, xs, EDGE_BAND + 3, fit=(obs, bcol, solid))
        a = alpha[ys, xs]
        if refine:
            a = _refine(obs, a, bcol, fcol, found)
        a = np.floor(a * 255.0 + 0.5) * np.float32(1.0 / 255.0)
        alpha[ys, xs] = a
        if despill:
            colours = _despill(obs, a, k, bcol, fcol, found)
    a8 = np.floor(alpha * 255.0 + 0.5).astype(np.uint8)
    out = np.empty(a8.shape + (4,), dtype=np.uint8)
    out[..., :3] = arr[..., :3]
    out[..., 3] = a8
    if colours is not None:
        out[ys, xs, :3] = colours
    np.copyto(out[..., :3], 0, where=(a8 == 0)[..., None])
    return out


def _line_fit(o: np.ndarray, fk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projection t in [0, 1] of o (= obs - key) on fk (= F - key), and the residual."""
    fk2 = np.maximum(np.einsum("ij,ij->i", fk, fk), 1e-6)
    t = np.clip(np.einsum("ij,ij->i", o, fk) / fk2, 0.0, 1.0)
    return t, np.linalg.norm(o - t[:, None] * fk, axis=1)


def _grow(
    p: np.ndarray,
    known: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    steps: int,
    fit: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Grow ``known`` colours into (ys, xs), one 8-neighbour ring per step (writes into p).

    Without ``fit`` a pixel averages its known neighbours. With ``fit=(obs, base, solid)``
    it takes the neighbour colour c whose line base->c best explains obs; a ``solid`` pixel
    that no neighbour explains (an outline, a new colour) keeps its own colour instead.
    Returns (colours, found).
    """
    h, w = known.shape
    have = known.copy()
    col = np.zeros((ys.size, 3), dtype=np.float32)
    todo = np.ones(ys.size, dtype=bool)
    for _ in range(steps):
        idx = np.flatnonzero(todo)
        if idx.size == 0:
            break
        score = np.full(idx.size, np.inf if fit else 0.0, dtype=np.float32)
        acc = np.zeros((idx.size, 3), dtype=np.float32)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                yy = np.clip(ys[idx] + dy, 0, h - 1)
                xx = np.clip(xs[idx] + dx, 0, w - 1)
                cand, hit = p[:, yy, xx].T, have[yy, xx]
                if fit is None:
                    acc += cand * hit[:, None]
                    score += hit
                    continue
                base = fit[1][idx]
                _, resid = _line_fit(fit[0][idx] - base, cand - base)
                better = hit & (resid < score)
                score = np.where(better, resid, score)
                acc[better] = cand[better]
        if fit is None:
            got = score > 0
            acc[got] /= score[got, None]
        else:
            own = fit[2][idx] & (score > MAX_LINE_RESIDUAL)
            acc[own] = fit[0][idx[own]]
            got = np.isfinite(score)
        new = idx[got]
        col[new] = acc[got]
        p[:, ys[new], xs[new]] = col[new].T
        have[ys[new], xs[new]] = True
        todo[new] = False
    return col, ~todo


def _refine(
    obs: np.ndarray, a: np.ndarray, bcol: np.ndarray, fcol: np.ndarray, found: np.ndarray
) -> np.ndarray:
    fb = fcol - bcol
    t, resid = _line_fit(obs - bcol, fb)
    ok = found & (np.einsum("ij,ij->i", fb, fb) > MIN_KEY_CHROMA**2) & (resid < MAX_LINE_RESIDUAL)
    return np.where(ok, t, a).astype(np.float32)


def _despill(
    obs: np.ndarray, a: np.ndarray, k: np.ndarray, bg: np.ndarray, fg: np.ndarray, found: np.ndarray
) -> np.ndarray:
    soft = (a > 0) & (a < 1)
    a_col = np.maximum(a, 1.0 / 255.0)[:, None]
    solved = np.clip((obs - (1.0 - a_col) * bg) / a_col, 0.0, 1.0)
    blended = np.where(found[:, None], a_col * solved + (1.0 - a_col) * fg, solved)
    rgb = np.where(soft[:, None], blended, obs)
    dominant = k > k.mean()
    ck = k - k.mean()
    if float(ck @ ck) >= MIN_KEY_CHROMA**2 and dominant.any() and (~dominant).any():
        spill = rgb[:, dominant].min(axis=1) - rgb[:, ~dominant].max(axis=1)
        rgb[:, dominant] -= np.maximum(spill, 0.0)[:, None]
    return np.clip(np.floor(rgb * 255.0 + 0.5), 0, 255).astype(np.uint8)


def trim(rgba: np.ndarray, padding: int = 0) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Crop RGBA to the alpha > 0 bounding box grown by ``padding`` (clipped to the image).

    Returns (view, (x, y, w, h)). A fully transparent image returns itself and
    (0, 0, W, H).
    """
    arr = np.asarray(rgba)
    if arr.ndim != 3 or arr.shape[2] != 4:
        raise ValueError(f"rgba must be (H, W, 4), got shape {arr.shape}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    h, w = arr.shape[:2]
    opaque = arr[..., 3] > 0
    rows, cols = np.flatnonzero(opaque.any(axis=1)), np.flatnonzero(opaque.any(axis=0))
    if rows.size == 0:
        return arr, (0, 0, w, h)
    y0, y1 = max(0, int(rows[0]) - padding), min(h, int(rows[-1]) + 1 + padding)
    x0, x1 = max(0, int(cols[0]) - padding), min(w, int(cols[-1]) + 1 + padding)
    return arr[y0:y1, x0:x1], (x0, y0, x1 - x0, y1 - y0)


class Matter(Protocol):
    """Turns a generated RGB uint8 image into RGBA uint8, given the prompt it came from."""

    def __call__(self, rgb_uint8: np.ndarray, prompt: str) -> np.ndarray: ...


@dataclass(frozen=True)
class KeyColorMatter:
    """Key-colour matter: keys the border colour (estimate=True) or the prompt's key."""

    inner: float = MATTE_INNER
    outer: float = MATTE_OUTER
    despill: bool = True
    refine: bool = True
    estimate: bool = True

    def __call__(self, rgb_uint8: np.ndarray, prompt: str) -> np.ndarray:
        key = estimate_key(rgb_uint8) if self.estimate else choose_key_color(prompt)
        return matte(
            rgb_uint8,
            key,
            inner=self.inner,
            outer=self.outer,
            despill=self.despill,
            refine=self.refine,
        )


MATTERS: dict[str, Callable[[], Matter]] = {"key-color": KeyColorMatter}
