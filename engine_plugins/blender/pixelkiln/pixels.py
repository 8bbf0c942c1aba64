"""Pixel conversions between the daemon's raw RGBA8 (rows top to bottom) and Blender's
``Image.pixels`` (floats, rows bottom to top). numpy only: Blender ships numpy, not Pillow."""

from __future__ import annotations

import hashlib

import numpy as np


def rgba8_to_pixels(data: bytes, width: int, height: int) -> np.ndarray:
    """Raw RGBA8, top row first -> a flat float32 array for ``Image.pixels.foreach_set``."""
    expected = width * height * 4
    if len(data) != expected:
        raise ValueError(f"raw RGBA8 of {len(data)} bytes for {width}x{height} ({expected})")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 4)[::-1]
    return (rows.astype(np.float32) * (1.0 / 255.0)).ravel()


def pixels_to_rgba8(flat: np.ndarray, width: int, height: int, *, linear: bool = False) -> bytes:
    """``Image.pixels`` floats -> raw RGBA8, top row first. ``linear``: float images hold
    linear light; encode their colour channels to sRGB as the model expects."""
    rows = np.asarray(flat, dtype=np.float32).reshape(height, width, 4)[::-1]
    if linear:
        rows = rows.copy()
        rgb = np.clip(rows[..., :3], 0.0, 1.0)
        rows[..., :3] = np.where(
            rgb <= 0.0031308, rgb * 12.92, 1.055 * np.power(rgb, 1.0 / 2.4) - 0.055
        )
    return np.clip(rows * 255.0 + 0.5, 0, 255).astype(np.uint8).tobytes()


def pixel_hash(flat: np.ndarray) -> str:
    """Cheap change detection for the live mode (about 10 ms for 1024x1024 here)."""
    return hashlib.blake2b(np.ascontiguousarray(flat).data, digest_size=16).hexdigest()
