"""Inpainting's overlay (imaging/overlay.py): the repainted image inside the mask, the init
image's own pixels farther than the feather from it, a smooth fade between."""

from __future__ import annotations

import numpy as np

from pixelkiln_server.imaging.overlay import FEATHER_PX, feathered, keep_unmasked


def square_mask(size: int = 96, lo: int = 32, hi: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[lo:hi, lo:hi] = 255
    return mask


def test_weights_are_the_mask_inside_and_fade_out_over_the_feather() -> None:
    weight = feathered(square_mask())
    assert (weight[32:64, 32:64] == 1.0).all()
    row = weight[48, 64:]  # leaving the square to the right
    assert (np.diff(row) <= 1e-6).all()  # never rises away from the mask
    assert 0.0 < row[FEATHER_PX // 2] < 1.0
    assert (row[FEATHER_PX + 4 :] < 1 / 255).all()
    grey = np.full((32, 32), 128, np.uint8)  # a partial mask stays partial
    assert np.allclose(feathered(grey), 128 / 255, atol=1e-3)


def test_far_pixels_are_the_init_images_and_the_hole_is_the_new_image() -> None:
    rng = np.random.default_rng(0)
    init = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    new = rng.random((96, 96, 3), dtype=np.float32)
    out = keep_unmasked(new, init, square_mask())
    as_u8 = np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(as_u8[:, :8], init[:, :8]) and np.array_equal(as_u8[88:], init[88:])
    assert np.allclose(out[32:64, 32:64], new[32:64, 32:64], atol=1e-6)


def test_inputs_of_another_size_are_resized_to_the_image() -> None:
    init = np.zeros((48, 48, 3), np.uint8)
    out = keep_unmasked(np.ones((96, 96, 3), np.float32), init, square_mask(48, 16, 32))
    assert out.shape == (96, 96, 3)
    assert out[48, 48].min() > 0.99 and out[2, 2].max() < 1e-3
