"""Putting a sprite in the middle of a canvas that wraps.

A model whose every convolution pads circularly (PixelKiln's own, trained so that textures
tile) is translation-equivariant: nothing in it tells where the middle of the canvas is, so a
sprite comes out anywhere, often split across the edges. Its output is periodic, so rolling it
loses nothing: :func:`center_subject` finds the flat key-colour background, takes the circular
mean position of everything else on each axis, and rolls that to the centre. Textures (no
flat background) and subjects spread over the whole canvas are left as they are.
"""

from __future__ import annotations

import numpy as np

from .matte import KEY_PALETTE

KEY_MATCH = 0.25  # max per-channel distance (0..1) of a background pixel from its key colour
MIN_BACKGROUND = 0.25  # share of the canvas the key colour must cover
MIN_SUBJECT = 0.02  # share the subject must cover
MIN_COMPACT = 0.2  # resultant length of the subject's positions on an axis (0: spread out)


def background_mask(image: np.ndarray) -> np.ndarray | None:
    """Pixels of the key colour that covers most of the canvas, or None when no palette key
    covers ``MIN_BACKGROUND`` of it. ``image`` is RGB, uint8 or float in [0, 1]."""
    rgb = np.asarray(image, dtype=np.float32)[..., :3]
    if np.asarray(image).dtype == np.uint8:
        rgb = rgb / 255.0
    best: np.ndarray | None = None
    for key in KEY_PALETTE:
        mask = np.abs(rgb - np.asarray(key, np.float32) / 255.0).max(-1) <= KEY_MATCH
        if mask.mean() >= MIN_BACKGROUND and (best is None or mask.sum() > best.sum()):
            best = mask
    return best


def _axis_shift(weights: np.ndarray) -> int:
    """Roll that moves the circular mean of ``weights`` (mass per row or column) to the
    middle; 0 when the mass is spread around the circle."""
    n = len(weights)
    theta = 2.0 * np.pi * (np.arange(n) + 0.5) / n
    c, s = float((weights * np.cos(theta)).sum()), float((weights * np.sin(theta)).sum())
    total = float(weights.sum())
    if total <= 0 or np.hypot(c, s) / total < MIN_COMPACT:
        return 0
    mean = (np.arctan2(s, c) % (2.0 * np.pi)) * n / (2.0 * np.pi) - 0.5
    return int(round(n / 2.0 - 0.5 - mean)) % n


def subject_shift(image: np.ndarray) -> tuple[int, int]:
    """(dy, dx) that centre the subject, (0, 0) when there is no flat background or no
    compact subject."""
    background = background_mask(image)
    if background is None:
        return 0, 0
    subject = ~background
    if subject.mean() < MIN_SUBJECT:
        return 0, 0
    mass = subject.astype(np.float64)
    return _axis_shift(mass.sum(axis=1)), _axis_shift(mass.sum(axis=0))


def center_subject(image: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) rolled so that its subject sits in the middle (see module doc)."""
    dy, dx = subject_shift(image)
    if dy == 0 and dx == 0:
        return image
    return np.roll(image, (dy, dx), axis=(0, 1))
