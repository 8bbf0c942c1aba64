"""Sprite atlas packing with TexturePacker "JSON (Hash)" frame data.

Equal-size images go on a grid of ceil(sqrt(n)) columns; mixed sizes use a shelf packer
(first-fit decreasing height, shelves about as wide as the square root of the total area).
The atlas is exactly as large as needed, not a power of two: engines that want POT can pad
it.
``padding`` px separate frames from each other and from the atlas border. Nothing is
rotated; sprites trimmed before packing say so (``trims``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _as_u8(img: np.ndarray, i: int) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"images[{i}] must be (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        return np.clip(np.floor(arr * 255.0 + 0.5), 0, 255).astype(np.uint8)
    raise ValueError(f"images[{i}] must be uint8 or float in [0, 1], got {arr.dtype}")


def _grid(w: int, h: int, n: int, pad: int) -> tuple[list[tuple[int, int]], int, int]:
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pos = [(pad + (i % cols) * (w + pad), pad + (i // cols) * (h + pad)) for i in range(n)]
    return pos, cols * w + (cols + 1) * pad, rows * h + (rows + 1) * pad


def _shelves(sizes: list[tuple[int, int]], pad: int) -> tuple[list[tuple[int, int]], int, int]:
    """First-fit decreasing height: tallest first, each onto the first shelf with room."""
    area = sum((w + pad) * (h + pad) for w, h in sizes)
    limit = max(max(w for w, _ in sizes) + 2 * pad, math.ceil(math.sqrt(area)) + pad)
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i][1], -sizes[i][0], i))
    pos = [(0, 0)] * len(sizes)
    shelves: list[list[int]] = []  # [y, height, next x]
    for i in order:
        w, h = sizes[i]
        shelf = next((s for s in shelves if s[2] + w + pad <= limit), None)
        if shelf is None:
            y = shelves[-1][0] + shelves[-1][1] + pad if shelves else pad
            shelf = [y, h, pad]
            shelves.append(shelf)
        pos[i] = (shelf[2], shelf[0])
        shelf[2] += w + pad
    width = max(s[2] for s in shelves)
    return pos, width, shelves[-1][0] + shelves[-1][1] + pad


def pack_atlas(
    images: list[np.ndarray],
    names: list[str],
    seeds: list[int],
    padding: int = 0,
    image_name: str = "atlas.png",
    trims: list[tuple[tuple[int, int, int, int], tuple[int, int]] | None] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Pack images into one uint8 atlas; returns (atlas, TexturePacker JSON-Hash dict).

    Images are uint8 (or float [0, 1]) RGB or RGBA; the atlas is RGB if all are RGB, else
    RGBA (RGB images get alpha 255, empty space is transparent). ``image_name`` goes to
    meta.image. Each frame also carries its ``seed``. ``trims``: per image, None or the box
    it was cropped to in its source ((x, y, w, h), (source w, source h)); such a frame is
    ``trimmed`` with ``spriteSourceSize`` and ``sourceSize`` saying where it sat, so an
    engine lines a trimmed animation up as it was drawn.
    """
    n = len(images)
    if n == 0:
        raise ValueError("images must not be empty")
    if len(names) != n or len(seeds) != n:
        raise ValueError(f"names and seeds must match images ({n}), got {len(names)}, {len(seeds)}")
    if len(set(names)) != n:
        raise ValueError("names must be unique")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    arrs = [_as_u8(img, i) for i, img in enumerate(images)]
    sizes = [(a.shape[1], a.shape[0]) for a in arrs]
    if len(set(sizes)) == 1:
        pos, aw, ah = _grid(sizes[0][0], sizes[0][1], n, padding)
    else:
        pos, aw, ah = _shelves(sizes, padding)
    channels = 4 if any(a.shape[2] == 4 for a in arrs) else 3
    atlas = np.zeros((ah, aw, channels), dtype=np.uint8)
    frames: dict[str, Any] = {}
    boxes = trims if trims is not None else [None] * n
    if len(boxes) != n:
        raise ValueError(f"trims must match images ({n}), got {len(boxes)}")
    for a, name, seed, (x, y), (w, h), box in zip(
        arrs, names, seeds, pos, sizes, boxes, strict=True
    ):
        atlas[y : y + h, x : x + w, : a.shape[2]] = a
        if channels == 4 and a.shape[2] == 3:
            atlas[y : y + h, x : x + w, 3] = 255
        (sx, sy, _, _), (source_w, source_h) = box if box else ((0, 0, w, h), (w, h))
        frames[name] = {
            "frame": {"x": x, "y": y, "w": w, "h": h},
            "rotated": False,
            "trimmed": (source_w, source_h) != (w, h),
            "spriteSourceSize": {"x": sx, "y": sy, "w": w, "h": h},
            "sourceSize": {"w": source_w, "h": source_h},
            "seed": int(seed),
        }
    meta = {
        "app": "pixelkiln",
        "version": "1",
        "image": image_name,
        "format": "RGBA8888" if channels == 4 else "RGB888",
        "size": {"w": aw, "h": ah},
        "scale": "1",
    }
    return atlas, {"frames": frames, "meta": meta}
