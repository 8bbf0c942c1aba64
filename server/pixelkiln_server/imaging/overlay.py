"""Inpainting keeps the pixels it was not asked to change.

A latent model repaints whole latent cells and its decoder spreads every change about two cells
(16 px) further, so even the unmasked pixels of an inpainted image come back as the VAE's round
trip of the init image (the shipped model: ~14/255 off on average on a plain gradient, more on
pictures outside its domain). After decoding, the result is laid over the init image: the mask
(white = repaint; grey values are partial) is kept as it is and feathered outwards over
``FEATHER_PX``, so the repainted region fades into the original instead of showing a hard edge,
and every pixel farther than that from the mask is the init image's own.
"""

from __future__ import annotations

import numpy as np

FEATHER_PX = 16  # about the decoder's reach past the last repainted latent cell


def feathered(mask: np.ndarray, feather: int = FEATHER_PX) -> np.ndarray:
    """uint8 (H, W) mask -> float32 (H, W) weights of the repainted image: the mask itself
    inside, fading to 0 over about ``feather`` pixels outside it."""
    from PIL import Image, ImageFilter

    base = mask.astype(np.float32) / 255.0
    # Twice a Gaussian of a third of the feather: 1 at the mask's edge, under 1/255 past it.
    blurred = Image.fromarray(mask).filter(ImageFilter.GaussianBlur(feather / 3))
    halo = np.clip(np.asarray(blurred, np.float32) * (2.0 / 255.0), 0.0, 1.0)
    return np.where(base > 0, base, halo)  # the mask's own values inside (grey is partial)


def keep_unmasked(image: np.ndarray, init_rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` (H, W, 3 float in [0, 1], as a backend returns it) laid over ``init_rgb``
    (uint8) with :func:`feathered` ``mask`` weights. Inputs of another size than the image
    (a request that set width and height) are resized to it first, as the pipeline did."""
    from PIL import Image

    size = (image.shape[1], image.shape[0])
    if init_rgb.shape[:2] != image.shape[:2]:
        init_rgb = np.asarray(Image.fromarray(init_rgb).resize(size, Image.Resampling.LANCZOS))
        mask = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.BILINEAR))
    weight = feathered(mask)[..., None]
    original = init_rgb.astype(np.float32) / 255.0
    out: np.ndarray = original + weight * (image.astype(np.float32) - original)
    return out
