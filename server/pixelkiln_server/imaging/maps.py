"""Derived PBR maps (height, normal, roughness, AO) from an albedo texture.

Inputs: albedo is RGB uint8 (H, W, 3|4; alpha ignored) or float in [0, 1]; height is float
(H, W) in [0, 1] or uint8. ``wrap`` is a bool for both axes or an ``(x, y)`` pair, so a
texture that tiles only horizontally wraps only in X. All filters are separable and
vectorised (one numpy op per kernel tap, never per pixel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Wrap = bool | tuple[bool, bool]
Convention = Literal["opengl", "directx"]
MAP_KINDS = ("normal", "height", "roughness", "ao")
CONVENTIONS = ("opengl", "directx")
REC709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
_EPS = 1e-6


def _wrap_xy(wrap: Wrap) -> tuple[bool, bool]:
    if isinstance(wrap, tuple):
        return bool(wrap[0]), bool(wrap[1])
    return bool(wrap), bool(wrap)


def _as_float(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) * np.float32(1.0 / 255.0)
    return arr.astype(np.float32, copy=False)


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.uint8)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec.709 luminance of RGB(A) uint8 or float [0, 1] as float32 (H, W)."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"rgb must be (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    return (_as_float(arr[..., :3]) @ REC709).astype(np.float32, copy=False)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps, truncated at 3 sigma; ``[1.0]`` for sigma <= 0."""
    if sigma <= 0:
        return np.ones(1, dtype=np.float32)
    r = max(1, math.ceil(3.0 * sigma))
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-(t * t) / (2.0 * sigma * sigma))
    return (k / k.sum()).astype(np.float32)


def _convolve_axis(img: np.ndarray, k: np.ndarray, axis: int, wrap: bool) -> np.ndarray:
    r = len(k) // 2
    if r == 0:
        return img.copy()
    n = img.shape[axis]
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    p = np.pad(img, pad, mode="wrap" if wrap else "edge")

    def sl(start: int) -> np.ndarray:
        return p[start : start + n] if axis == 0 else p[:, start : start + n]

    out = sl(r) * k[r]
    tmp = np.empty_like(out)
    for i in range(r):  # symmetric kernel: add the mirrored taps, then one multiply
        np.add(sl(i), sl(2 * r - i), out=tmp)
        tmp *= k[i]
        out += tmp
    return out


def gaussian_blur(img: np.ndarray, sigma: float, wrap: Wrap) -> np.ndarray:
    """Separable Gaussian blur of a 2-D float image (circular where wrapped, else clamped)."""
    arr = _as_float(img)
    if arr.ndim != 2:
        raise ValueError(f"img must be (H, W), got shape {arr.shape}")
    wx, wy = _wrap_xy(wrap)
    k = gaussian_kernel(sigma)
    return _convolve_axis(_convolve_axis(arr, k, 1, wx), k, 0, wy)


def _normalise(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < _EPS:
        return np.full_like(x, 0.5)
    return (x - lo) * np.float32(1.0 / (hi - lo))


def height_from_albedo(rgb: np.ndarray, blur_radius: float, wrap: Wrap) -> np.ndarray:
    """Height in [0, 1] (float32 (H, W)): Rec.709 luminance, Gaussian blur, min-max stretch.

    ``blur_radius`` is the Gaussian sigma in pixels (0 = none). A constant image gives 0.5.
    """
    return _normalise(gaussian_blur(luminance(rgb), blur_radius, wrap))


def _central_diff(h: np.ndarray, axis: int, wrap: bool) -> np.ndarray:
    pad = [(0, 0), (0, 0)]
    pad[axis] = (1, 1)
    p = np.pad(h, pad, mode="wrap" if wrap else "edge")
    if axis == 0:
        return (p[2:] - p[:-2]) * np.float32(0.5)
    return (p[:, 2:] - p[:, :-2]) * np.float32(0.5)


def normal_from_height(
    height: np.ndarray, strength: float, convention: Convention, wrap: Wrap
) -> np.ndarray:
    """Tangent-space normal map, uint8 (H, W, 3), from height (float [0, 1] or uint8).

    n = normalize(-s * dh/dx, +-s * dh/dy, 1) with height units per pixel and central
    differences (wrapped or clamped per axis). ``opengl`` has green up (Unity, Godot,
    Blender); ``directx`` flips green. Encoded as round((n * 0.5 + 0.5) * 255), so a flat
    height gives (128, 128, 255).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    h = _as_float(height)
    if h.ndim != 2:
        raise ValueError(f"height must be (H, W), got shape {h.shape}")
    wx, wy = _wrap_xy(wrap)
    s = np.float32(strength)
    nx = -s * _central_diff(h, 1, wx)
    ny = s * _central_diff(h, 0, wy)  # rows grow downward, so +d/drow means facing up
    if convention == "directx":
        ny = -ny
    inv = 1.0 / np.sqrt(nx * nx + ny * ny + 1.0)
    out = np.empty(h.shape + (3,), dtype=np.uint8)
    out[..., 0] = _to_u8(nx * inv * 0.5 + 0.5)
    out[..., 1] = _to_u8(ny * inv * 0.5 + 0.5)
    out[..., 2] = _to_u8(inv * 0.5 + 0.5)
    return out


def roughness_from_albedo(rgb: np.ndarray, wrap: Wrap) -> np.ndarray:
    """Heuristic roughness, uint8 (H, W), in [0.5, 1.0] * 255.

    roughness = 0.5 + 0.3 * (1 - L) + 0.2 * D, where L is min-max stretched luminance
    (bright reads glossier) and D is local detail, |L - blur(L, sigma=2)| divided by four
    times its mean and clipped to 1 (busy areas read rougher). Never below 0.5: guessing
    gloss from colour alone is unreliable, and most game surfaces are rough.
    """
    lum = _normalise(luminance(rgb))
    detail = np.abs(lum - gaussian_blur(lum, 2.0, wrap))
    detail *= np.float32(1.0 / (4.0 * float(detail.mean()) + _EPS))
    np.minimum(detail, 1.0, out=detail)
    return _to_u8(0.5 + 0.3 * (1.0 - lum) + 0.2 * detail)


def ao_from_height(height: np.ndarray, radius: float, strength: float, wrap: Wrap) -> np.ndarray:
    """Cavity ambient occlusion, uint8 (H, W); 255 = unoccluded.

    cavity = blur(h, sigma=radius/2) - h (how far a pixel sits below its neighbourhood;
    ``radius`` is the kernel's two-sigma reach in pixels). ao = 1 - 4 * strength * cavity,
    clipped to [0, 1]: at strength 1 a pit a quarter of the height range deep goes black.
    """
    h = _as_float(height)
    if h.ndim != 2:
        raise ValueError(f"height must be (H, W), got shape {h.shape}")
    cavity = gaussian_blur(h, radius / 2.0, wrap) - h
    np.maximum(cavity, 0.0, out=cavity)
    return _to_u8(1.0 - np.float32(4.0 * strength) * cavity)


def _check_range(name: str, value: float, lo: float, hi: float, lo_open: bool = False) -> None:
    ok = (lo < value <= hi) if lo_open else (lo <= value <= hi)  # NaN fails both
    if not ok:
        interval = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise ValueError(f"{name} must be in {interval}, got {value:.7g}")


@dataclass(frozen=True)
class MapOptions:
    """Tuning for :func:`derive_maps`; see the map functions for each field's meaning."""

    height_blur: float = 1.0  # sigma px: removes pixel noise, keeps texture detail
    normal_strength: float = 2.0
    convention: str = "opengl"  # Unity, Godot, Blender; 'directx' for Unreal
    ao_radius: float = 4.0
    ao_strength: float = 1.0

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and its allowed range."""
        _check_range("height_blur", self.height_blur, 0.0, 64.0)
        _check_range("normal_strength", self.normal_strength, 0.0, 100.0, lo_open=True)
        if self.convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {self.convention!r}")
        _check_range("ao_radius", self.ao_radius, 0.0, 64.0, lo_open=True)
        _check_range("ao_strength", self.ao_strength, 0.0, 10.0)


def derive_maps(
    rgb_uint8: np.ndarray,
    kinds: list[str],
    options: MapOptions | None = None,
    wrap_x: bool = False,
    wrap_y: bool = False,
) -> dict[str, np.ndarray]:
    """Derive the requested maps (subset of MAP_KINDS) from an RGB(A) uint8 albedo.

    Returns uint8 arrays: 'normal' (H, W, 3); 'height', 'roughness', 'ao' (H, W).
    Example: ``derive_maps(img, ["normal", "ao"], MapOptions(), wrap_x=True, wrap_y=True)``.
    """
    opts = options or MapOptions()
    opts.validate()
    unknown = [k for k in kinds if k not in MAP_KINDS]
    if unknown:
        raise ValueError(f"kinds must be drawn from {MAP_KINDS}, got {unknown}")
    arr = np.asarray(rgb_uint8)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"rgb_uint8 must be uint8 (H, W, 3|4), got {arr.dtype} shape {arr.shape}")
    wrap = (wrap_x, wrap_y)
    out: dict[str, np.ndarray] = {}
    height = None
    if any(k in kinds for k in ("normal", "height", "ao")):
        height = height_from_albedo(arr, opts.height_blur, wrap)
    for kind in kinds:
        if kind == "height" and height is not None:
            out[kind] = _to_u8(height)
        elif kind == "normal" and height is not None:
            conv: Convention = "directx" if opts.convention == "directx" else "opengl"
            out[kind] = normal_from_height(height, opts.normal_strength, conv, wrap)
        elif kind == "ao" and height is not None:
            out[kind] = ao_from_height(height, opts.ao_radius, opts.ao_strength, wrap)
        elif kind == "roughness":
            out[kind] = roughness_from_albedo(arr, wrap)
    return out
