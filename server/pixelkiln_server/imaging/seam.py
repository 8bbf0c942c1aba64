"""Seam metrics for tiling textures, and a tiling helper for previews.

Images may be uint8 (scaled by 1/255) or float in [0, 1], shaped (H, W) or (H, W, C).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

Axis = Literal["x", "y", "xy"]
_EPS = 1e-6


@dataclass(frozen=True)
class SeamReport:
    """How visible the wrap edge is compared with an ordinary line of the image.

    ``edge``: mean |difference| across the wrap edge (0..1 units).
    ``interior``: mean |difference| over all adjacent interior line pairs.
    ``ratio``: edge / interior; about 1.0 means the wrap edge looks like any interior line,
    large values mean a visible seam. 1.0 when both are zero.
    """

    edge: float
    interior: float
    ratio: float

    def to_dict(self) -> dict[str, float]:
        """Plain dict for JSON/logging."""
        return asdict(self)


def _as_float(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim not in (2, 3):
        raise ValueError(f"img must be (H, W) or (H, W, C), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) * (1.0 / 255.0)
    return arr.astype(np.float32, copy=False)


def _axis_report(img: np.ndarray, axis: int) -> SeamReport:
    n = img.shape[axis]
    if n < 3:
        raise ValueError(f"img needs at least 3 lines along the seam axis, got {n}")
    first = np.take(img, 0, axis=axis)
    last = np.take(img, n - 1, axis=axis)
    edge = float(np.mean(np.abs(last - first)))
    interior = float(np.mean(np.abs(np.diff(img, axis=axis))))
    ratio = 1.0 if edge < _EPS and interior < _EPS else edge / max(interior, _EPS)
    return SeamReport(edge=edge, interior=interior, ratio=ratio)


def seam_metric(img: np.ndarray, axis: Axis = "xy") -> SeamReport:
    """Compare the wrap edge with the interior along ``axis``.

    ``x``: last column vs first column; ``y``: last row vs first row. The interior is the
    mean over *all* adjacent interior line pairs (not one middle line, which can land on a
    feature), so one outlier line barely moves it. ``xy`` returns the worse (higher ratio)
    axis. Note that a single-phase sinusoid is not ratio 1: the edge is one particular line,
    so use content whose every line pair looks alike (noise, diagonal waves) as a reference.
    """
    arr = _as_float(img)
    if axis == "x":
        return _axis_report(arr, 1)
    if axis == "y":
        return _axis_report(arr, 0)
    if axis == "xy":
        return max(_axis_report(arr, 1), _axis_report(arr, 0), key=lambda r: r.ratio)
    raise ValueError(f"axis must be one of 'x', 'y', 'xy', got {axis!r}")


def tile(img: np.ndarray, nx: int, ny: int) -> np.ndarray:
    """Repeat ``img`` nx times across and ny times down (any dtype, 2-D or 3-D)."""
    if nx < 1 or ny < 1:
        raise ValueError(f"nx and ny must be >= 1, got nx={nx}, ny={ny}")
    arr = np.asarray(img)
    return np.tile(arr, (ny, nx) + (1,) * (arr.ndim - 2))
