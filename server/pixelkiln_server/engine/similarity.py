"""How alike two live inputs look: a small grayscale of each, compared by mean absolute difference.

A live session skips an input whose signature differs from the last processed input's by less
than its threshold (``LiveSettings.similar_skip_threshold``, a fraction of full scale). The
signature is an area average (block means, not point samples, so per-pixel noise averages out)
to at most :data:`SIDE` pixels a side, computed from the pixels the request decodes anyway.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

SIDE = 32
# ITU-R BT.601 luma weights.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class Signature(NamedTuple):
    """The input's size (H, W) and a float32 (h, w) grayscale in [0, 1], h and w <= SIDE."""

    size: tuple[int, int]
    gray: np.ndarray


def signature(rgb: np.ndarray) -> Signature:
    """The signature of uint8 RGB ``rgb`` (H, W, 3)."""
    height, width = rgb.shape[:2]
    sy, sx = max(1, height // SIDE), max(1, width // SIDE)
    h, w = height // sy, width // sx
    blocks = rgb[: h * sy, : w * sx, :3].reshape(h, sy, w, sx, 3)
    sums = blocks.sum(axis=(1, 3), dtype=np.uint32)
    gray = (sums.astype(np.float32) @ _LUMA) / np.float32(255.0 * sy * sx)
    return Signature((height, width), gray)


def difference(a: Signature, b: Signature) -> float:
    """Mean absolute difference of two signatures in [0, 1]; 1.0 when the inputs' sizes
    differ (an input of another size is never similar)."""
    if a.size != b.size:
        return 1.0
    return float(np.abs(a.gray - b.gray).mean())
