"""Seed variations a small model would otherwise collapse: the initial noise of txt2img, drawn
per image from that image's own generator, with a per-seed global (per-channel constant)
component, and a per-seed horizontal mirror for models trained with mirrored samples.

Why: a denoiser at the first, noisiest step sees mostly the low frequencies of its input. In
white noise on an 8x8 latent (a 64x64 image) the per-channel mean has 1/8 of the pixels'
spread, so eight seeds start almost alike and ``pixelkiln-textures`` drew nearly the same
sprite eight times (mean pairwise difference 4-7/255, where its training sprites differ by
9-12/255). Mixing in ``low_freq`` of a per-channel constant (variance kept at 1) moves the
start the way its training data vary (shade, size); at 0.35 it stayed on the prompt in every
case measured (``benchmarks/variations.py``), at 1.0 it overrode it (wrong colours, other
subjects). The mirror is exact for a model whose training set was mirrored at random (the
shipped model's sprites are: their light comes from either side), and keeps tiling.

Both depend on the seed alone: the same seed gives the same bytes, in a batch or alone.
"""

from __future__ import annotations

from typing import Any


def initial_latents(generators: list[Any], shape: tuple[int, int, int], low_freq: float) -> Any:
    """(N, C, h, w) float32 CPU latents of ``shape`` (C, h, w), one per generator, at unit
    variance; the pipeline scales them by its scheduler's ``init_noise_sigma``. Draws from each
    generator: the white noise (as diffusers would), then the per-channel component. The torch
    and the onnx backends share it, so both start from the same noise."""
    import torch

    channels = shape[0]
    out = []
    for generator in generators:
        z = torch.randn((1, *shape), generator=generator, dtype=torch.float32)
        low = torch.randn((1, channels, 1, 1), generator=generator, dtype=torch.float32)
        out.append((z + low_freq * low) / (1.0 + low_freq * low_freq) ** 0.5)
    return torch.cat(out)


def mirrored(seed: int) -> bool:
    """Whether the image of ``seed`` is mirrored: one bit of a hash of the seed, so seeds
    n and n+1 (a request's variations) are independent."""
    mixed = (seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64
    return bool((mixed >> 61) & 1)


def mirror(images: list[Any], seeds: list[int]) -> list[Any]:
    """``images`` (H, W, C arrays) with those whose seed is :func:`mirrored` flipped left to
    right; the diffusers and the onnx backends apply it to a mirrored model's txt2img."""
    import numpy as np

    return [
        np.ascontiguousarray(img[:, ::-1]) if mirrored(s) else img
        for img, s in zip(images, seeds, strict=True)
    ]
