"""Inpainting for denoisers that take no mask: blend the latents under the mask at every step.

diffusers' inpainting pipelines serve UNets with 9 input channels (trained with the mask and
the masked image as inputs) and 4-channel UNets (they blend latents themselves); FLUX and
Z-Image have inpainting pipelines that blend too. A UNet with any other latent width (the
shipped ``pixelkiln-textures`` has 8) is refused there, so such a model inpaints through its
img2img pipeline with :class:`LatentBlend` as the step callback: after each step the latents
outside the mask are replaced by the init image's latents noised to the level of the next step
(clean after the last), so only the masked region is generated and the rest decodes to the VAE's
round trip of the init image. The mask is downsampled to the latent grid by area: a latent cell
is generated when at least half of its pixels are masked. The ONNX backend's own denoising loop
calls :meth:`LatentBlend.blend` the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

NATIVE_UNET_CHANNELS = (4, 9)

StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]


def blends(pipe: Any) -> bool:
    """True when ``pipe``'s denoiser is a UNet that diffusers' inpainting pipelines refuse."""
    unet = getattr(pipe, "unet", None)
    return unet is not None and int(unet.config.in_channels) not in NATIVE_UNET_CHANNELS


def latent_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 or float (H, W) mask, white = repaint -> float32 {0, 1} (height, width): 1 where
    at least half of a latent cell's pixels are masked."""
    from PIL import Image

    m = np.asarray(mask, dtype=np.float32)
    if m.max(initial=0.0) > 1.0:
        m = m / 255.0
    area = np.asarray(Image.fromarray(m, mode="F").resize((width, height), Image.Resampling.BOX))
    return (area >= 0.5).astype(np.float32)


def prepare(pipe: Any, args: dict[str, Any]) -> contextlib.AbstractContextManager[Any]:
    """Make an inpainting call's ``args`` (image, mask_image, generator(s), a step callback)
    fit ``pipe``; call the pipeline inside the returned context.

    Pipelines that inpaint by themselves get the image and mask once per generator: given one
    image, diffusers' SD and FLUX inpainting pipelines encode it with the first generator only,
    so image i of a batch did not depend on seed + i alone (the backend contract). On a
    blending model (``pipe`` is then its img2img pipeline) the mask moves into a LatentBlend
    that runs before the step callback, the size comes from the image (the UNet img2img
    pipelines take no width/height), and the VAE decodes with the init image's normalisation
    (:func:`decode_like`)."""
    generators = args["generator"]
    generators = generators if isinstance(generators, list) else [generators]
    if not blends(pipe):
        if len(generators) > 1:
            args["image"] = [args["image"]] * len(generators)
            args["mask_image"] = [args["mask_image"]] * len(generators)
        return contextlib.nullcontext()
    init = encode(pipe, args["image"])
    seeds = [g.initial_seed() for g in generators]
    then = args["callback_on_step_end"]
    args["callback_on_step_end"] = LatentBlend(init, args.pop("mask_image"), seeds, then)
    args.pop("width", None)
    args.pop("height", None)
    return decode_like(pipe.vae, init)


def encode(pipe: Any, image: Any) -> Any:
    """The init image's latents (1, C, h, w) as the denoiser sees them (float32): the VAE
    posterior's mode, shifted and scaled like the pipeline's own encoding."""
    vae = pipe.vae
    pixels = pipe.image_processor.preprocess(image).to(pipe._execution_device, vae.dtype)
    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
    z = (vae.encode(pixels).latent_dist.mode() - shift) * float(vae.config.scaling_factor)
    return z.float()


class LatentBlend:
    """A ``callback_on_step_end`` for an img2img pipeline that turns it into an inpainting one;
    ``then`` (progress, previews, cancel) runs after the blend, on the blended latents."""

    def __init__(self, init: Any, mask: Any, seeds: list[int], then: StepCallback | None) -> None:
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        self.init = init.repeat(len(seeds), 1, 1, 1)
        generators = [torch.Generator("cpu").manual_seed(s % 2**64) for s in seeds]
        self.noise = randn_tensor(
            tuple(self.init.shape), generator=generators, device=init.device, dtype=init.dtype
        )
        keep = latent_mask(np.asarray(mask), init.shape[2], init.shape[3])
        self.mask = torch.from_numpy(keep)[None, None].to(init.device)
        self.then = then

    def known(self, scheduler: Any, index: int) -> Any:
        """The init latents at the noise level the latents have after step ``index``."""
        timesteps = scheduler.timesteps
        following = (getattr(scheduler, "begin_index", None) or 0) + index + 1
        if following >= len(timesteps):
            return self.init
        return scheduler.add_noise(self.init, self.noise, timesteps[following : following + 1])

    def blend(self, scheduler: Any, index: int, latents: Any) -> Any:
        """``latents`` after step ``index``, with the init image's outside the mask."""
        known = self.known(scheduler, index).to(latents.dtype)
        mask = self.mask.to(latents.dtype)
        return mask * latents + (1.0 - mask) * known

    def __call__(self, pipe: Any, index: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs["latents"] = self.blend(pipe.scheduler, index, kwargs["latents"])
        return kwargs if self.then is None else self.then(pipe, index, t, kwargs)


@contextlib.contextmanager
def decode_like(vae: Any, latents: Any) -> Iterator[None]:
    """Within the block, every GroupNorm of the VAE decoder normalises with the statistics it
    had while decoding ``latents`` (the init image's, scaled as the pipeline holds them).

    GroupNorm makes each decoded pixel depend on the statistics of the whole latent image, so
    generated content under the mask shifts the colours far outside it. With the init image's
    statistics the decoder is local again: pixels beyond its reach from the mask decode as the
    VAE's round trip of the init image, and the generated region in the same colours. Measured
    on pixelkiln-textures (mean error to the init image, centred 32x32 mask): 64x64, 8 px and
    more from the mask, 22/255 without this and 13/255 with it, against a 6/255 round trip (at
    that size every pixel is within the decoder's reach of the mask); 128x128, 24 px and more
    from the mask, 10.6/255 with it against a 10.5/255 round trip.
    Used on the LatentBlend path only: a random-weight model's generated latents are far out
    of the init image's distribution, and with frozen statistics they saturate the image
    (measured on tiny-random, tiny-flux, tiny-z-image: 120/255 off everywhere)."""
    import torch

    norms = [m for m in vae.decoder.modules() if isinstance(m, torch.nn.GroupNorm)]
    stats: dict[int, tuple[Any, Any]] = {}

    def patched(norm: Any, replay: bool) -> Callable[[Any], Any]:
        def forward(x: Any) -> Any:
            grouped = x.float().reshape(x.shape[0], norm.num_groups, -1)
            if replay:
                mean, var = stats[id(norm)]
            else:
                var, mean = torch.var_mean(grouped, dim=-1, keepdim=True, correction=0)
                stats[id(norm)] = (mean, var)
            y = ((grouped - mean) * torch.rsqrt(var + norm.eps)).reshape(x.shape).to(x.dtype)
            if norm.affine:
                shape = (1, -1) + (1,) * (x.ndim - 2)
                y = y * norm.weight.reshape(shape) + norm.bias.reshape(shape)
            return y

        return forward

    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
    z = latents[:1].to(vae.device, vae.dtype) / float(vae.config.scaling_factor) + shift
    try:
        for norm in norms:
            norm.__dict__["forward"] = patched(norm, replay=False)
        vae.decode(z)
        for norm in norms:
            norm.__dict__["forward"] = patched(norm, replay=True)
        yield
    finally:
        for norm in norms:
            norm.__dict__.pop("forward", None)
