"""SDXL's extra conditioning for the lean live path (live_path.py), as diffusers 0.42's
``StableDiffusionXLImg2ImgPipeline`` makes it: the pooled text embeddings and time ids the
UNet's ``added_cond_kwargs`` take, the VAE's latents mean and std, and the VAE in float32
around encode and decode when its config says ``force_upcast`` and the model runs in fp16.
"""

from __future__ import annotations

from typing import Any

from ..types import GenerationRequest


def conditioning(
    model: Any, request: GenerationRequest, cfg: bool
) -> tuple[Any, Any, tuple[Any, Any]]:
    """SDXL img2img's prompt embeddings, pooled embeddings and time ids, as its pipeline makes
    them (original and target size = the image's, crop (0, 0), aesthetic scores 6 and 2.5)."""
    import torch

    pipe = model._pipe("img2img")
    device = pipe._execution_device
    positive, negative, pooled, negative_pooled = pipe.encode_prompt(
        prompt=request.prompt,
        device=device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=cfg,
        negative_prompt=request.negative_prompt or None,
    )
    model.text_encodes += 1
    size = (request.height, request.width)
    encoder_2 = getattr(pipe, "text_encoder_2", None)
    projection = int(pooled.shape[-1]) if encoder_2 is None else encoder_2.config.projection_dim
    time_ids, negative_time_ids = pipe._get_add_time_ids(
        size, (0, 0), size, 6.0, 2.5, size, (0, 0), size,
        dtype=positive.dtype, text_encoder_projection_dim=projection,
    )  # fmt: skip
    if cfg:
        text = torch.cat([negative_pooled, pooled])
        time_ids = torch.cat([negative_time_ids, time_ids])
    else:
        text = pooled
    return positive, negative, (text.to(device), time_ids.to(device))


def latents_stats(vae: Any, device: Any, dtype: Any) -> tuple[Any, Any]:
    import torch

    mean = getattr(vae.config, "latents_mean", None)
    std = getattr(vae.config, "latents_std", None)
    if mean is None or std is None:
        return None, None
    channels = len(mean)
    return (
        torch.tensor(mean).view(1, channels, 1, 1).to(device, dtype),
        torch.tensor(std).view(1, channels, 1, 1).to(device, dtype),
    )


class Upcast:
    """SDXL's VAE in float32 for one encode or decode when it must be (force_upcast in fp16),
    and back to fp16 after, as the pipeline does."""

    def __init__(self, vae: Any, plan: Any) -> None:
        self.vae, self.on = vae, plan.upcast

    def __enter__(self) -> None:
        if self.on:
            import torch

            self.vae.to(dtype=torch.float32)

    def __exit__(self, *exc: object) -> None:
        if self.on:
            import torch

            self.vae.to(dtype=torch.float16)
