"""Seamless tiling for the torch backends, per request and per axis.

UNet families: every zero-padded Conv2d of the UNet and the VAE (decoder, and encoder for
img2img) pads circularly on the wrapped axes for the duration of one request; on exit the
convolutions are restored, so a tiled request never leaks into the next one.

DiT families (FLUX, Z-Image), where circular padding does not make the output wrap: generate,
shift the image by half a tile on the wrapped axes (the seams meet in a cross in the middle),
inpaint a feathered band around that cross, and keep the original pixels elsewhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..capabilities import TILING_METHODS

__all__ = [
    "TILING_METHODS",
    "circular_padding",
    "seam_cross_mask",
    "set_circular",
    "shift_half",
    "zero_padded_convs",
]


def _padded_forward(conv: Any, wrap_x: bool, wrap_y: bool) -> Any:
    """One circular pad on the wrapped axes (a single copy); the conv zero-pads the others."""
    import torch.nn.functional as F  # noqa: N812

    pad_h, pad_w = conv.padding
    circ = (pad_w if wrap_x else 0,) * 2 + (pad_h if wrap_y else 0,) * 2
    native = (0 if wrap_y else pad_h, 0 if wrap_x else pad_w)

    def forward(x: Any, weight: Any, bias: Any) -> Any:
        x = F.pad(x, circ, mode="circular")
        return F.conv2d(x, weight, bias, conv.stride, native, conv.dilation, conv.groups)

    return forward


def zero_padded_convs(modules: Iterable[Any]) -> Iterator[Any]:
    """Every Conv2d of ``modules`` that zero-pads by itself (explicit, non-zero padding)."""
    import torch

    for module in modules:
        for conv in module.modules():
            if (
                isinstance(conv, torch.nn.Conv2d)
                and conv.padding_mode == "zeros"
                and not isinstance(conv.padding, str)
                and any(conv.padding)
            ):
                yield conv


def set_circular(*modules: Any) -> int:
    """Circular padding for good on every zero-padded Conv2d of ``modules`` (a model trained
    so; diffusers configs cannot say it). Returns how many were switched."""
    convs = list(zero_padded_convs(modules))
    for conv in convs:
        conv.padding_mode = "circular"
    return len(convs)


@contextlib.contextmanager
def circular_padding(modules: Iterable[Any], wrap_x: bool, wrap_y: bool) -> Iterator[int]:
    """Within the block, zero-padded Conv2d layers of ``modules`` wrap on the given axes.
    Yields how many convolutions were patched."""
    patched: list[Any] = []
    if wrap_x or wrap_y:
        for conv in zero_padded_convs(modules):
            if "_conv_forward" not in conv.__dict__:
                conv._conv_forward = _padded_forward(conv, wrap_x, wrap_y)
                patched.append(conv)
    try:
        yield len(patched)
    finally:
        for conv in patched:
            del conv._conv_forward  # back to the class's method


def seam_cross_mask(height: int, width: int, wrap_x: bool, wrap_y: bool, band: int) -> np.ndarray:
    """Float (H, W) mask in [0, 1]: 1 on a band around the centre lines of the wrapped axes,
    feathered linearly over ``band`` pixels on each side of the hard core."""
    ys = np.abs(np.arange(height, dtype=np.float32) + 0.5 - height / 2)
    xs = np.abs(np.arange(width, dtype=np.float32) + 0.5 - width / 2)
    core = band / 2

    def ramp(d: np.ndarray) -> np.ndarray:
        return np.clip(1.0 - (d - core) / max(band, 1), 0.0, 1.0)

    mask = np.zeros((height, width), dtype=np.float32)
    if wrap_x:
        mask = np.maximum(mask, ramp(xs)[None, :])
    if wrap_y:
        mask = np.maximum(mask, ramp(ys)[:, None])
    return mask


def shift_half(image: np.ndarray, wrap_x: bool, wrap_y: bool) -> np.ndarray:
    """Roll by half a tile on the wrapped axes: the old edges meet in the middle."""
    h, w = image.shape[:2]
    return np.roll(image, (h // 2 if wrap_y else 0, w // 2 if wrap_x else 0), axis=(0, 1))
