"""Per-step reporting for a batched diffusers call: progress, cancellation and previews for
each request in the batch, from the pipeline's ``callback_on_step_end``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import Cancelled
from ..imaging import preview
from ..types import GenerationRequest
from .base import BatchItem


def spatial_latents(latents: Any, request: GenerationRequest, scale: int) -> Any:
    """(B, C, h, w) for previews, from a numpy array or a torch tensor (kept on its device).
    FLUX packs its latents as 2x2 patches, (B, h/2 * w/2, C * 4) (its pipeline's
    ``_unpack_latents``); other families pass through."""
    if latents.ndim != 3:
        return latents
    batch, _, packed = latents.shape
    h, w = 2 * (request.height // (scale * 2)), 2 * (request.width // (scale * 2))
    x = latents.reshape(batch, h // 2, w // 2, packed // 4, 2, 2)
    order = (0, 3, 1, 4, 2, 5)
    x = x.transpose(order) if isinstance(x, np.ndarray) else x.permute(*order)
    return x.reshape(batch, packed // 4, h, w)


def resized(images: np.ndarray, max_side: int) -> list[np.ndarray]:
    """Float RGB (B, H, W, 3) in [0, 1] -> uint8 images whose longer side is ``max_side``."""
    from PIL import Image

    pixels = (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    h, w = pixels.shape[1:3]
    if max(h, w) == max_side:
        return list(pixels)
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return [
        np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR)) for img in pixels
    ]


class StepReporter:
    """The ``callback_on_step_end`` of one batched call. Each item hears its progress and,
    when it asks, a preview of its own images; an item whose hooks raise ``Cancelled`` is
    left out from then on (``cancelled``), and the call stops when every item is.

    ``passes``: DiT tiling runs a second (seam) pass per image, so progress counts on across
    passes. ``tiny_decode``: a tiny VAE's latents -> float RGB, else the previews project the
    latents with the family's (or the model's own) latent->RGB factors."""

    def __init__(
        self,
        items: list[BatchItem],
        passes: int,
        family: str,
        factors: Any,
        tiny_decode: Callable[[Any], np.ndarray] | None,
    ) -> None:
        self.items, self.passes, self.family, self.factors = items, passes, family, factors
        self.tiny_decode = tiny_decode
        self.offsets = np.cumsum([0, *(item.request.num_images for item in items)])
        self.cancelled: dict[int, Cancelled] = {}
        self.done_before = 0

    def __call__(self, pipe: Any, index: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        request = self.items[0].request
        per_pass = int(getattr(pipe, "num_timesteps", 0) or request.steps)
        step = self.done_before + index + 1
        if index + 1 == per_pass:
            self.done_before += per_pass
        images = None
        for n, item in enumerate(self.items):
            if n in self.cancelled:
                continue
            try:
                wants_preview = item.hooks.on_step(step, per_pass * self.passes)
            except Cancelled as exc:
                self.cancelled[n] = exc
                continue
            if wants_preview:
                if images is None:
                    images = self._previews(pipe, kwargs["latents"], request)
                part = images[self.offsets[n] : self.offsets[n + 1]]
                side = item.request.preview.max_side
                if self.tiny_decode is not None:
                    item.hooks.on_preview(step, resized(part, side))
                else:
                    item.hooks.on_preview(
                        step, preview.project(part, self.family, side, self.factors)
                    )
        if len(self.cancelled) == len(self.items):
            raise next(iter(self.cancelled.values()))
        return kwargs

    def _previews(self, pipe: Any, latents: Any, request: GenerationRequest) -> np.ndarray:
        """The whole batch's decoded RGB (tiny VAE) or spatial latents, once per step."""
        if self.tiny_decode is not None:
            return self.tiny_decode(
                spatial_latents(latents.detach(), request, pipe.vae_scale_factor)
            )
        return spatial_latents(
            latents.detach().float().cpu().numpy(), request, pipe.vae_scale_factor
        )
