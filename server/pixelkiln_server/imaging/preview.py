"""Step previews without extra weights: a per-family linear map from latent channels to RGB.

The factors approximate each VAE's decoder by a single linear layer (the usual community
approximation, fitted on real latents); with random weights the picture is noise, but the path
and its cost are the real ones. A preview is a few microseconds of numpy on a latent of 1/64th
of the image's pixels, then a resize and a small lossy encode.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

# latent channel -> (R, G, B) weights, and a bias; output is mapped from [-1, 1] to [0, 1].
_FACTORS: dict[str, tuple[list[list[float]], list[float]]] = {
    "sd": (
        [
            [0.3512, 0.2297, 0.3227],
            [0.3250, 0.4974, 0.2350],
            [-0.2829, 0.1762, 0.2721],
            [-0.2120, -0.2616, -0.7177],
        ],
        [0.0, 0.0, 0.0],
    ),
    "sdxl": (
        [
            [0.3651, 0.4232, 0.4341],
            [-0.2533, -0.0042, 0.1068],
            [0.1076, 0.1111, -0.0362],
            [-0.3165, -0.2492, -0.2188],
        ],
        [0.1084, -0.0175, -0.0011],
    ),
}


Factors = tuple[np.ndarray, np.ndarray]


def factors_from(
    matrix: Sequence[Sequence[float]] | None, bias: Sequence[float] | None
) -> Factors | None:
    """A model's own (channels, 3) matrix and (3,) bias, e.g. from its pixelkiln.json."""
    if matrix is None or bias is None:
        return None
    return np.asarray(matrix, dtype=np.float32), np.asarray(bias, dtype=np.float32)


def latent_factors(family: str, channels: int, own: Factors | None = None) -> Factors:
    """The (channels, 3) matrix and (3,) bias: the model's own when it has them for this many
    channels, else the family's; a neutral grey map otherwise."""
    if own is not None and own[0].shape == (channels, 3):
        return own
    matrix, bias = _FACTORS.get(family, _FACTORS["sd"])
    m = np.asarray(matrix, dtype=np.float32)
    if m.shape[0] != channels:
        m = np.full((channels, 3), 1.0 / channels, dtype=np.float32)
    return m, np.asarray(bias, dtype=np.float32)


def project(
    latents: np.ndarray, family: str, max_side: int, own: Factors | None = None
) -> list[np.ndarray]:
    """Latents (B, C, h, w) -> B uint8 RGB images whose longer side is ``max_side``."""
    batch, channels, h, w = latents.shape
    matrix, bias = latent_factors(family, channels, own)
    rgb = np.einsum("bchw,ck->bhwk", latents.astype(np.float32, copy=False), matrix) + bias
    rgb = np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8)
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return [np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR)) for img in rgb]
