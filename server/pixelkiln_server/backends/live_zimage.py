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

:class:`ZImageSteps` splits a frame into encode, denoise and decode with per-row steps, so
stream batch (stream_batch.py) runs on it as on the UNet families.

Not here: CFG normalisation and truncation (the daemon never sets them), tiling (seam
inpainting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..types import GenerationRequest
from .live_flux import FlowSteps, step_sizes, why_not

__all__ = ["ZImagePlan", "ZImageSteps", "why_not"]


@dataclass
class ZImagePlan:
    steps: int
    index: Any  # (N,) long: arange(N)
    timesteps: Any  # (N,)
    sigmas: Any  # (N + 1,) float32
    vae_draw: Any
    noise: Any
    embeds: list[Any]  # [positive] or [positive, negative]: the transformer's captions
    guidance: float  # 0: no guidance
    dtype: Any
    tiny: bool = False  # encode and decode with the tiny autoencoder (FlowSteps)
    tiny_decode: bool = False


class ZImageSteps(FlowSteps):
    """A Z-Image pipeline's lean frame in parts (stream_batch.py's protocol)."""

    def build(self, request: GenerationRequest) -> ZImagePlan:
        import torch

        pipe = self.pipe
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
        # Z-Image's base sigmas are torch's linspace in float32, not numpy's.
        run, index, timesteps, sigmas = self.schedule(
            request, torch.linspace(1.0, 1 / steps, steps).tolist()
        )
        dtype = positive[0].dtype
        _, vae_draw, noise = self.draws(request, pipe.transformer.in_channels, dtype)
        tiny, tiny_decode = self.tiny_flags(request)
        return ZImagePlan(
            steps=run,
            index=index,
            timesteps=timesteps,
            sigmas=sigmas,
            vae_draw=vae_draw,
            noise=noise,
            embeds=list(positive) + list(negative),
            guidance=guidance,
            dtype=dtype,
            tiny=tiny,
            tiny_decode=tiny_decode,
        )

    def encode(self, plan: ZImagePlan, rgb: np.ndarray, width: int, height: int) -> Any:
        return self.noised(plan, rgb, width, height)

    def denoise(self, plan: ZImagePlan, latents: Any, index: Any) -> Any:
        """One transformer call over a batch whose row r sits at step ``index[r]``; with
        guidance the negative rows follow the positive ones in the same call."""
        import torch

        transformer, rows = self.pipe.transformer, latents.shape[0]
        t = (1000 - plan.timesteps[index]) / 1000
        x = latents.to(transformer.dtype)
        captions = [plan.embeds[0]] * rows
        cfg = plan.guidance > 0
        if cfg:
            x, t = torch.cat([x, x]), torch.cat([t, t])
            captions += [plan.embeds[1]] * rows
        out = transformer(list(x.unsqueeze(2).unbind(dim=0)), t, captions)[0]
        if cfg:
            pos = torch.stack([o.float() for o in out[:rows]], dim=0)
            neg = torch.stack([o.float() for o in out[rows:]], dim=0)
            prediction = pos + plan.guidance * (pos - neg)
        else:
            prediction = torch.stack([o.float() for o in out], dim=0)
        velocity = -prediction.squeeze(2)
        dt = step_sizes(plan.sigmas, index, (rows, 1, 1, 1))
        return latents.to(torch.float32) + dt * velocity

    def decode(self, plan: ZImagePlan, latents: Any) -> np.ndarray:
        if plan.tiny_decode:
            return self.images_of(plan, latents)
        return self.images_of(plan, latents.to(self.pipe.vae.dtype))  # the pipeline's order

    def preview(self, plan: ZImagePlan, latents: Any, side: int) -> list[np.ndarray]:
        from ..imaging import preview

        return preview.project(latents.float().cpu().numpy(), "z-image", side)
