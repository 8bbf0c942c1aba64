"""The training data: a pool of texgen images and captions kept in memory, shuffled batches,
and the random rolls that tileable textures allow."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import texgen

from pixelkiln_server.imaging.matte import KEY_NAMES


@dataclass
class Pool:
    images: np.ndarray  # (N, H, W, 3) uint8
    captions: list[str]
    subjects: list[str]
    colours: list[str]
    keys: list[str]  # key colour name for sprites, "" for textures
    tileable: np.ndarray  # (N,) bool


def make_pool(seed: int, n: int, size: int) -> Pool:
    images = np.empty((n, size, size, 3), np.uint8)
    captions, subjects, colours, keys = [], [], [], []
    tileable = np.zeros(n, bool)
    for i, s in enumerate(texgen.dataset(seed, n, size)):
        images[i] = s.image
        captions.append(s.caption)
        subjects.append(s.subject)
        colours.append(s.colour)
        keys.append(KEY_NAMES.get(s.key, "other") if s.key else "")
        tileable[i] = s.kind == "texture"
    return Pool(images, captions, subjects, colours, keys, tileable)


def to_tensor(images: np.ndarray) -> Any:
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def batches(rng: np.random.Generator, n: int, batch: int) -> Iterator[np.ndarray]:
    """Endless shuffled epochs of indices."""
    while True:
        order = rng.permutation(n)
        for i in range(0, n - batch + 1, batch):
            yield order[i : i + batch]


def roll_images(images: np.ndarray, tileable: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = images.copy()
    for i in np.flatnonzero(tileable):
        dy, dx = rng.integers(0, images.shape[1], 2)
        out[i] = np.roll(images[i], (int(dy), int(dx)), axis=(0, 1))
    return out
