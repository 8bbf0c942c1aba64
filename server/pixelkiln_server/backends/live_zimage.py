"""The lean live path for Z-Image: an img2img frame without the pipeline wrapper.

What diffusers 0.42's ``ZImageImg2ImgPipeline`` does per call, split as live_flux.py splits
FLUX's. Per settings change (a :class:`ZImagePlan`): the prompt's embeddings (and the negative
prompt's, with guidance: Z-Image applies classifier-free guidance whenever the scale is above
0, as ``pos + scale * (pos - neg)``), the shifted flow-matching sigmas (its default sigmas are
``torch.linspace`` in float32, not numpy's), the strength's start (``int(max(steps - steps *
strength, 0))``) and the seed's draws (the VAE posterior's sample, then the noise). Per frame:
VAE encode, shift and scale, ``scale_noise``, one transformer call per step on the list of
(C, 1, h, w) latents with the timestep ``(1000 - t) / 1000``, the negated prediction in the
flow-matching Euler step (float32 throughout, as the pipeline asserts), VAE decode. No
packing. Equal to the pipeline's image up to float rounding (tests/test_live_path.py).

Not here: CFG normalisation and truncation (the daemon never sets them), tiling (seam
inpainting), stream batch and the tiny autoencoder (noted "not applied").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..types import DecodedInputs, GenerationRequest
from .base import StepHooks
from .live_flux import encode_init, flow_start, seed_draws, shifted_mu, to_rgb, why_not

__all__ = ["ZImagePlan", "build", "frame", "why_not"]


@dataclass
class ZImagePlan:
    steps: int
    timesteps: Any  # (N,)
    sigmas: Any  # (N + 1,) float32
    vae_draw: Any
    noise: Any
    embeds: list[Any]  # [positive] or [positive, negative]: the transformer's caption list
    guidance: float  # 0: no guidance
    dtype: Any


def build(pipe: Any, request: GenerationRequest) -> ZImagePlan:
    import torch

    assert request.seed is not None and request.strength is not None
    device = pipe._execution_device
    guidance = float(request.guidance_scale or 0.0)
    positive, negative = pipe.encode_prompt(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt or None,
        do_classifier_free_guidance=guidance > 0,
        device=device,
    )
    steps = request.steps
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    sigmas = torch.linspace(1.0, 1 / steps, steps).tolist()
    scheduler.set_timesteps(sigmas=sigmas, mu=shifted_mu(pipe, request), device=device)
    start = flow_start(steps, request.strength) * scheduler.order
    factor = pipe.vae_scale_factor
    shape = (
        1,
        pipe.transformer.in_channels,
        2 * (request.height // (factor * 2)),
        2 * (request.width // (factor * 2)),
    )
    dtype = positive[0].dtype
    vae_draw, noise = seed_draws(pipe, request.seed, shape, dtype, device)
    return ZImagePlan(
        steps=len(scheduler.timesteps) - start,
        timesteps=scheduler.timesteps[start:].to(device),
        sigmas=scheduler.sigmas[start:].to(device=device, dtype=torch.float32),
        vae_draw=vae_draw,
        noise=noise,
        embeds=list(positive) + list(negative),
        guidance=guidance,
        dtype=dtype,
    )


def frame(
    pipe: Any, plan: ZImagePlan, request: GenerationRequest, inputs: DecodedInputs, hooks: StepHooks
) -> np.ndarray:
    """One frame, float32 RGB (H, W, 3) in [0, 1]; progress, cancel and previews per step."""
    import torch

    from ..imaging import preview

    vae, transformer = pipe.vae, pipe.transformer
    z = encode_init(pipe, plan.vae_draw, plan.dtype, request, inputs)
    sigma0 = plan.sigmas[0].to(z.dtype)
    latents = sigma0 * plan.noise + (1.0 - sigma0) * z
    cfg = plan.guidance > 0
    for i in range(plan.steps):
        t = (1000 - plan.timesteps[i].expand(1)) / 1000
        x = latents.to(transformer.dtype)
        if cfg:
            x, t = x.repeat(2, 1, 1, 1), t.repeat(2)
        out = transformer(list(x.unsqueeze(2).unbind(dim=0)), t, plan.embeds)[0]
        if cfg:
            pos, neg = out[0].float(), out[1].float()
            prediction = torch.stack([pos + plan.guidance * (pos - neg)], dim=0)
        else:
            prediction = torch.stack([o.float() for o in out], dim=0)
        velocity = -prediction.squeeze(2)
        dt = plan.sigmas[i + 1] - plan.sigmas[i]
        latents = latents.to(torch.float32) + dt * velocity
        if hooks.on_step(i + 1, plan.steps):
            side = request.preview.max_side
            grid = latents.float().cpu().numpy()
            hooks.on_preview(i + 1, preview.project(grid, "z-image", side))
    shift, scaling = float(vae.config.shift_factor or 0.0), float(vae.config.scaling_factor)
    return to_rgb(vae.decode(latents.to(vae.dtype) / scaling + shift, return_dict=False)[0])
