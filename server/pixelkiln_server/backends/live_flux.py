"""The lean live path for FLUX: an img2img frame without the pipeline wrapper.

What diffusers 0.42's ``FluxImg2ImgPipeline`` does per call, split as live_path.py splits the
UNet families. Per settings change (a :class:`FluxPlan`): the prompt's T5 and CLIP
embeddings and text ids, the flow-matching sigmas for the steps with the resolution-dependent
shift (``calculate_shift`` of the packed sequence length, ``set_timesteps(sigmas=..., mu=...)``),
the strength's start (``t_start = int(max(steps - steps * strength, 0))``: not the UNet
pipelines' rounding), the seed's draws (the VAE posterior's sample first, then the noise, from
one generator, as ``prepare_latents`` takes them), the packed latents' position ids and the
guidance embedding (FLUX.1 [dev]; none for [schnell]). Per frame: VAE encode, shift and scale,
``scale_noise`` (``sigma * noise + (1 - sigma) * latents``), pack, one transformer call per
step with the flow-matching Euler step (``x + (sigma_next - sigma) * v``, in float32), unpack,
unscale, VAE decode. The frame equals the pipeline's image of the same request up to float
rounding (tests/test_live_path.py), so its recipe replays through Generate.

:class:`FluxSteps` splits a frame into encode, denoise and decode as the UNet path does, with
a batch whose rows sit at different steps (per-row timesteps and step sizes): stream batch
(stream_batch.py) runs on it as on the UNet families.

Not here (the pipeline serves them, noted): true CFG (a negative prompt with
``true_cfg_scale``; the daemon never sets it), tiling (FLUX tiles by seam inpainting), the
tiny autoencoder's posterior (a TAEF1-style encoder gives the latents directly, as on the UNet
path), FLUX.2 and Z-Image (other conditionings; Z-Image is
live_zimage.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..types import DecodedInputs, GenerationRequest, Priority, Tiling
from .base import StepHooks

# A module call by kind (traced.KINDS: "encode", "decode", "flux", ...): call(kind, module,
# *tensors), the lean path's recorded graphs or the eager call (LeanPath._flow_call).
Call = Callable[..., Any]


@dataclass
class FluxPlan:
    steps: int  # transformer calls per frame
    index: Any  # (N,) long: arange(N), row indices into the per-step tensors
    timesteps: Any  # (N,) as the scheduler hands them out (x 1000)
    sigmas: Any  # (N + 1,) float32: this frame's sigmas and the terminal 0
    vae_draw: Any  # (1, C, h, w): the VAE posterior's standard normal draw
    noise: Any  # (1, C, h, w)
    embeds: Any  # (1, L, D) T5
    pooled: Any  # (1, D) CLIP
    text_ids: Any
    image_ids: Any
    guidance: Any  # (1,) float32, or None without a guidance embedding
    dtype: Any
    height: int  # pixels
    width: int
    tiny: bool = False  # encode and decode with the tiny autoencoder (FlowSteps)
    tiny_decode: bool = False


def why_not(pipe: Any, request: GenerationRequest) -> str | None:
    """None when this path serves ``request`` on a FLUX pipeline, else why the pipeline does."""
    scheduler = pipe.scheduler
    if type(scheduler).__name__ != "FlowMatchEulerDiscreteScheduler":
        return f"scheduler {type(scheduler).__name__}: the lean FLUX step is flow-matching Euler"
    if scheduler.config.get("stochastic_sampling", False):
        return "stochastic sampling draws noise per step"
    if request.tiling is not Tiling.NONE:
        return "tiling by seam inpainting"
    assert request.strength is not None
    steps = request.steps
    if steps - flow_start(steps, request.strength) < 1:
        return "strength * steps < 1: no denoising step"
    return None


def flow_start(steps: int, strength: float) -> int:
    """The flow-matching img2img pipelines' first step for ``strength`` (their rounding)."""
    return int(max(steps - min(steps * strength, steps), 0))


def shifted_mu(pipe: Any, request: GenerationRequest) -> float:
    """The timestep shift of the packed sequence length (``calculate_shift``)."""
    from diffusers.pipelines.flux.pipeline_flux_img2img import calculate_shift

    factor = pipe.vae_scale_factor
    config = pipe.scheduler.config
    seq_len = (request.height // factor // 2) * (request.width // factor // 2)
    return float(
        calculate_shift(
            seq_len,
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
    )


def pixels(rgb: np.ndarray, width: int, height: int, device: Any, dtype: Any) -> Any:
    """The decoded input (uint8 RGB, resized to ``width`` x ``height`` with Lanczos as the
    pipelines' preprocessing does) -> (1, 3, H, W) in [-1, 1]."""
    import torch

    if rgb.shape[:2] != (height, width):
        from PIL import Image

        rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))
    if not rgb.flags.writeable or not rgb.flags.c_contiguous:
        rgb = np.array(rgb)  # read-only arrays arrive from the runner port
    x = torch.from_numpy(rgb).to(device).permute(2, 0, 1).unsqueeze(0)
    return (2.0 * (x.to(torch.float32) / 255.0) - 1.0).to(dtype)


def encode_init(
    call: Call, pipe: Any, vae_draw: Any, dtype: Any, rgb: np.ndarray, width: int, height: int
) -> Any:
    """The decoded input (uint8 RGB) -> the VAE posterior's sample, shifted and scaled
    (``_encode_vae_image``), (1, C, h, w). ``call``: the module calls (:data:`Call`)."""
    vae = pipe.vae
    x = pixels(rgb, width, height, vae_draw.device, dtype)
    mean, std = call("encode", vae, x.to(vae.dtype))
    shift, scaling = float(vae.config.shift_factor or 0.0), float(vae.config.scaling_factor)
    return ((mean + std * vae_draw) - shift) * scaling


def seed_draws(
    pipe: Any, seed: int, shape: tuple[int, ...], dtype: Any, device: Any
) -> tuple[Any, Any]:
    """The seed's draws in ``prepare_latents``' order: the VAE posterior's sample (in the
    VAE's dtype), then the noise, from one CPU generator."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    generator = torch.Generator(device="cpu").manual_seed(seed % 2**64)
    vae_draw = randn_tensor(shape, generator=generator, device=device, dtype=pipe.vae.dtype)
    noise = randn_tensor(shape, generator=[generator], device=device, dtype=dtype)
    return vae_draw, noise


def vae_decode(call: Call, pipe: Any, latents: Any) -> np.ndarray:
    """Latents as the denoiser sees them (B, C, h, w) -> float32 RGB (B, H, W, 3) in [0, 1]:
    unscaled, shifted, decoded by the VAE."""
    vae = pipe.vae
    shift, scaling = float(vae.config.shift_factor or 0.0), float(vae.config.scaling_factor)
    return to_rgb(call("decode", vae, (latents / scaling + shift).to(vae.dtype)))


def to_rgb(image: Any) -> np.ndarray:
    """A decoder's (B, 3, H, W) in [-1, 1] -> float32 RGB (B, H, W, 3) in [0, 1]."""
    image = (image * 0.5 + 0.5).clamp(0, 1)
    return np.asarray(image.permute(0, 2, 3, 1).float().cpu().numpy(), dtype=np.float32)


def step_sizes(sigmas: Any, index: Any, rows_shape: tuple[int, ...]) -> Any:
    """``sigma_next - sigma`` of each row's step, shaped to broadcast over its latents."""
    return (sigmas[index + 1] - sigmas[index]).view(rows_shape)


def run_frame(
    steps: Any, request: GenerationRequest, plan: Any, inputs: DecodedInputs, hooks: StepHooks
) -> np.ndarray:
    """One frame of any lean path (live_path.LeanPath, FluxSteps, ZImageSteps), float32 RGB
    (H, W, 3) in [0, 1]: encode, one denoise call per step (progress, cancel and previews per
    step), decode."""
    assert inputs.init_rgb is not None
    latents = steps.encode(plan, inputs.init_rgb, request.width, request.height)
    for i in range(plan.steps):
        latents = steps.denoise(plan, latents, plan.index[i : i + 1])
        if hooks.on_step(i + 1, plan.steps):
            hooks.on_preview(i + 1, steps.preview(plan, latents, request.preview.max_side))
    frame: np.ndarray = steps.decode(plan, latents)[0]
    return frame


class FlowSteps:
    """What the flow paths share: their module calls (``call``, :data:`Call`: the lean path's
    recorded graphs), the autoencoders (the pipeline's KL VAE; the model's tiny one, a
    TAEF1-style ``AutoencoderTiny`` whose latents are the denoiser's, when the request asks
    for it, or for decoding live frames with ``--tiny-vae-decode``) and the frame loop."""

    def __init__(self, pipe: Any, call: Call, tiny: Any = None, tiny_decode_live: bool = False):
        self.pipe, self.call, self.tiny = pipe, call, tiny
        self.tiny_decode_live = tiny_decode_live and tiny is not None

    def schedule(self, request: GenerationRequest, sigmas: Any) -> tuple[int, Any, Any, Any]:
        """The img2img steps of ``request`` on the pipeline's flow-matching schedule with
        these base ``sigmas`` (each pipeline makes them its own way) shifted for the size:
        (steps run, arange(steps), their timesteps, their sigmas and the terminal 0)."""
        import torch

        pipe = self.pipe
        device = pipe._execution_device
        scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
        scheduler.set_timesteps(sigmas=sigmas, mu=shifted_mu(pipe, request), device=device)
        assert request.strength is not None
        start = flow_start(request.steps, request.strength) * scheduler.order
        run = len(scheduler.timesteps) - start
        return (
            run,
            torch.arange(run, device=device),
            scheduler.timesteps[start:].to(device),
            scheduler.sigmas[start:].to(device=device, dtype=torch.float32),
        )

    def draws(
        self, request: GenerationRequest, channels: int, dtype: Any
    ) -> tuple[tuple[int, int, int, int], Any, Any]:
        """The latents' shape (1, ``channels``, h, w; even h and w, as both pipelines pack
        2x2 patches) and the seed's draws for it (:func:`seed_draws`)."""
        assert request.seed is not None
        factor = self.pipe.vae_scale_factor
        height = 2 * (request.height // (factor * 2))
        width = 2 * (request.width // (factor * 2))
        shape = (1, channels, height, width)
        device = self.pipe._execution_device
        return (shape, *seed_draws(self.pipe, request.seed, shape, dtype, device))

    def noised(self, plan: Any, rgb: np.ndarray, width: int, height: int) -> Any:
        """The decoded input -> latents noised to the first step (``scale_noise``)."""
        z = self.latents_of(plan, rgb, width, height)
        sigma0 = plan.sigmas[0].to(z.dtype)
        return sigma0 * plan.noise + (1.0 - sigma0) * z

    def tiny_flags(self, request: GenerationRequest) -> tuple[bool, bool]:
        """(encode and decode with the tiny autoencoder, decode with it)."""
        tiny = request.tiny_autoencoder and self.tiny is not None
        return tiny, tiny or (self.tiny_decode_live and request.priority is Priority.LIVE)

    def latents_of(self, plan: Any, rgb: np.ndarray, width: int, height: int) -> Any:
        """The decoded input -> clean latents as the denoiser sees them, (1, C, h, w)."""
        if plan.tiny:
            from . import tiny_vae

            x = pixels(rgb, width, height, plan.noise.device, plan.dtype)
            z = tiny_vae.encode(self.tiny, x, lambda v, p: self.call("tiny_encode", v, p))
            return z.to(plan.dtype)
        return encode_init(self.call, self.pipe, plan.vae_draw, plan.dtype, rgb, width, height)

    def images_of(self, plan: Any, latents: Any) -> np.ndarray:
        """Latents as the denoiser sees them (B, C, h, w) -> float32 RGB (B, H, W, 3)."""
        if plan.tiny_decode:
            from . import tiny_vae

            call = self.call
            return to_rgb(
                tiny_vae.decode(self.tiny, latents, lambda v, z: call("tiny_decode", v, z))
            )
        return vae_decode(self.call, self.pipe, latents)

    def frame(
        self, request: GenerationRequest, plan: Any, inputs: DecodedInputs, hooks: StepHooks
    ) -> np.ndarray:
        return run_frame(self, request, plan, inputs, hooks)


class FluxSteps(FlowSteps):
    """A FLUX pipeline's lean frame in parts (stream_batch.py's protocol)."""

    def build(self, request: GenerationRequest) -> FluxPlan:
        import torch

        pipe = self.pipe
        assert request.seed is not None and request.strength is not None
        device = pipe._execution_device
        embeds, pooled, text_ids = pipe.encode_prompt(
            prompt=request.prompt, prompt_2=None, device=device, num_images_per_prompt=1
        )
        steps = request.steps
        run, index, timesteps, sigmas = self.schedule(request, np.linspace(1.0, 1 / steps, steps))
        dtype = embeds.dtype
        channels = pipe.transformer.config.in_channels // 4
        (_, _, height, width), vae_draw, noise = self.draws(request, channels, dtype)
        guidance = None
        if pipe.transformer.config.guidance_embeds:
            guidance = torch.full([1], float(request.guidance_scale or 0.0), device=device)
        tiny, tiny_decode = self.tiny_flags(request)
        return FluxPlan(
            steps=run,
            index=index,
            timesteps=timesteps,
            sigmas=sigmas,
            vae_draw=vae_draw,
            noise=noise,
            embeds=embeds,
            pooled=pooled,
            text_ids=text_ids,
            image_ids=pipe._prepare_latent_image_ids(1, height // 2, width // 2, device, dtype),
            guidance=guidance,
            dtype=dtype,
            height=request.height,
            width=request.width,
            tiny=tiny,
            tiny_decode=tiny_decode,
        )

    def encode(self, plan: FluxPlan, rgb: np.ndarray, width: int, height: int) -> Any:
        """The decoded input -> packed latents noised to the first step, (1, seq, C * 4)."""
        latents = self.noised(plan, rgb, width, height).to(plan.dtype)
        _, c, h, w = latents.shape
        return self.pipe._pack_latents(latents, 1, c, h, w)

    def denoise(self, plan: FluxPlan, latents: Any, index: Any) -> Any:
        """One transformer call over a batch whose row r sits at step ``index[r]``."""
        import torch

        rows = latents.shape[0]
        t = plan.timesteps[index].to(latents.dtype) / 1000
        pooled, embeds = plan.pooled.expand(rows, -1), plan.embeds.expand(rows, -1, -1)
        ids = (plan.text_ids, plan.image_ids)
        transformer = self.pipe.transformer
        if plan.guidance is None:
            velocity = self.call("flux", transformer, latents, t, pooled, embeds, *ids)
        else:
            guidance = plan.guidance.expand(rows)
            velocity = self.call("flux_guided", transformer, latents, t, guidance, pooled,
                                 embeds, *ids)  # fmt: skip
        dt = step_sizes(plan.sigmas, index, (rows, 1, 1))
        return (latents.to(torch.float32) + dt * velocity).to(velocity.dtype)

    def _grid(self, plan: FluxPlan, latents: Any) -> Any:
        return self.pipe._unpack_latents(
            latents, plan.height, plan.width, self.pipe.vae_scale_factor
        )

    def decode(self, plan: FluxPlan, latents: Any) -> np.ndarray:
        return self.images_of(plan, self._grid(plan, latents))

    def preview(self, plan: FluxPlan, latents: Any, side: int) -> list[np.ndarray]:
        from ..imaging import preview

        return preview.project(self._grid(plan, latents).float().cpu().numpy(), "flux", side)
