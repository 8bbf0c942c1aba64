"""Centering a sprite on a wrapping canvas (the shipped model's sprites land anywhere)."""

from __future__ import annotations

import numpy as np
import pytest

from pixelkiln_server.imaging import torus


def disc(cy: float, cx: float, r: float = 12.0, size: int = 64) -> np.ndarray:
    """A red disc on flat green, drawn on a torus (it wraps across the edges)."""
    y, x = np.mgrid[:size, :size].astype(np.float32)
    dy = (y - cy + size / 2) % size - size / 2
    dx = (x - cx + size / 2) % size - size / 2
    image = np.zeros((size, size, 3), np.uint8)
    image[...] = (0, 255, 0)
    image[dy**2 + dx**2 <= r * r] = (200, 30, 30)
    return image


@pytest.mark.parametrize("cy, cx", [(0.0, 0.0), (60.5, 3.5), (31.5, 5.0), (10.0, 40.0)])
def test_a_wrapped_sprite_is_rolled_to_the_middle(cy: float, cx: float) -> None:
    out = torus.center_subject(disc(cy, cx))
    assert np.abs(np.argwhere(out[..., 0] > 100).mean(0) - 31.5).max() <= 0.5
    # Nothing touches the border any more: the sprite is whole.
    border = np.concatenate([out[0], out[-1], out[:, 0], out[:, -1]])
    assert (border == (0, 255, 0)).all()
    # Rolling loses nothing.
    assert sorted(map(tuple, out.reshape(-1, 3))) == sorted(map(tuple, disc(cy, cx).reshape(-1, 3)))


def test_float_images_roll_the_same_way() -> None:
    image = disc(2.0, 60.0).astype(np.float32) / 255.0
    assert torus.subject_shift(image) == torus.subject_shift(disc(2.0, 60.0)) != (0, 0)


def test_textures_and_centred_sprites_stay_as_they_are() -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert torus.center_subject(texture) is texture  # no flat background
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[...] = (0, 255, 0)
    stripes[::4] = (120, 80, 40)  # a pattern over the whole canvas, not one subject
    assert torus.subject_shift(stripes) == (0, 0)
    centred = disc(31.5, 31.5)
    assert torus.subject_shift(centred) == (0, 0)
