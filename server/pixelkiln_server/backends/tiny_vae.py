"""The tiny autoencoder (diffusers ``AutoencoderTiny``, TAESD's family) beside a model's VAE.

Where it comes from: ``--tiny-vae PATH`` (``ModelOptions.tiny_vae``, loaded by ``accel``), or
else a ``vae_tiny/`` subfolder of the model's own folder (:func:`find_in_folder`). It decodes
step previews, with ``tiny_vae_decode`` the final latents of live-priority requests, and, when
a live request asks for ``tiny_autoencoder``, both the encode and the decode of the lean live
path (``live_path.py``).

TAESD works in the denoiser's (scaled) latent space: its config says ``scaling_factor`` 1 and
``shift_factor`` 0, and :func:`encode` / :func:`decode` apply them anyway so that a tiny
autoencoder trained for a scaled space other than 1 still meets the denoiser's latents.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# The subfolder of a model folder that holds its tiny autoencoder (an AutoencoderTiny saved
# with save_pretrained: config.json and diffusion_pytorch_model.safetensors).
SUBFOLDER = "vae_tiny"


def find_in_folder(source: str) -> Path | None:
    """The model folder's ``vae_tiny/`` when it holds an AutoencoderTiny config, else None."""
    folder = Path(source) / SUBFOLDER
    return folder if (folder / "config.json").is_file() else None


def _factors(vae: Any) -> tuple[float, float]:
    scale = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
    shift = float(getattr(vae.config, "shift_factor", 0.0) or 0.0)
    return scale, shift


def _placement(vae: Any) -> tuple[Any, Any]:
    """The module's device and dtype from its first weight (``vae.device`` and ``vae.dtype``
    walk every parameter: milliseconds per frame)."""
    weight = next(vae.parameters())
    return weight.device, weight.dtype


def encode(vae: Any, pixels: Any, call: Callable[[Any, Any], Any] | None = None) -> Any:
    """Pixels (B, 3, H, W) in [-1, 1] -> latents (B, C, h, w) as the denoiser sees them.
    ``call(vae, pixels)``: the module's call (the live path's recorded graphs), by default
    ``vae.encode(pixels).latents``."""
    scale, shift = _factors(vae)
    pixels = pixels.to(*_placement(vae))
    z = call(vae, pixels) if call is not None else vae.encode(pixels).latents
    return (z - shift) * scale if (scale, shift) != (1.0, 0.0) else z


def decode(vae: Any, latents: Any, call: Callable[[Any, Any], Any] | None = None) -> Any:
    """Latents as the denoiser sees them -> pixels (B, 3, H, W) in [-1, 1] (unclamped).
    ``call(vae, z)``: the module's call, by default ``vae.decode(z).sample``."""
    scale, shift = _factors(vae)
    z = latents.to(*_placement(vae))
    if (scale, shift) != (1.0, 0.0):
        z = z / scale + shift
    return call(vae, z) if call is not None else vae.decode(z).sample


def decode_rgb(vae: Any, latents: Any) -> np.ndarray:
    """Latents (B, C, h, w) as the denoiser sees them -> float RGB (B, H, W, 3) in [0, 1]."""
    import torch

    with torch.inference_mode():
        out = decode(vae, latents).float()
    return ((out.clamp(-1.0, 1.0) + 1.0) / 2.0).permute(0, 2, 3, 1).cpu().numpy()


def build_random(latent_channels: int, seed: int = 0) -> Any:
    """A tiny random-weight AutoencoderTiny (8 channels, one block per level, scale factor 8)
    for tests and benchmarks; nothing is downloaded."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    return AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=latent_channels,
    ).eval()  # type: ignore[attr-defined]


def add_random_to_folder(folder: Path, latent_channels: int, seed: int = 0) -> Path:
    """Save :func:`build_random` as ``folder/vae_tiny`` (safetensors); returns that path."""
    target = folder / SUBFOLDER
    build_random(latent_channels, seed).save_pretrained(target, safe_serialization=True)
    return target
