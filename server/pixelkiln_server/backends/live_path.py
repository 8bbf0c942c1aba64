"""The lean live path: img2img frames of a live session without the pipeline wrapper.

A live frame arrives as an ordinary job of priority LIVE with an init image (engine/live.py);
``DiffusersModel.generate`` hands such a request here first. Per settings change (prompt,
seed, strength, steps, size, guidance, tiling, LoRA scales) a :class:`Plan` precomputes what
every frame shares: the img2img timesteps for the strength, the Euler step's coefficients in
closed form, the seed's noise (and the VAE posterior's draw, taken from the same generator
first, as the pipeline does), the prompt embeddings and the VAE's scaling. Per frame only:
VAE encode of the decoded input, add noise, one UNet call per step with the closed-form
update, VAE decode, in the model's own dtype, under ``torch.inference_mode``, no callbacks.

Same recipe semantics: a frame equals what the img2img pipeline gives for the same request
(seed, strength, steps, prompt, guidance) up to float rounding (tests/test_live_path.py), so
a live frame's recipe replays through Generate. What it reproduces from diffusers 0.42's
``StableDiffusionImg2ImgPipeline``: ``set_timesteps(steps)`` then the last
``min(int(steps * strength), steps)`` timesteps; ``generator = Generator("cpu").manual_seed(seed)``
feeds first the VAE's ``latent_dist.sample`` and then the noise; ``add_noise`` multiplies
the noise by the first sigma; ``EulerDiscreteScheduler.step`` with ``s_churn = 0``.

Served: the UNet families, ``sd`` and ``sdxl`` (its pooled text embeddings and time ids, the
VAE's upcast and latents statistics: live_sdxl.py), with epsilon, v-prediction or sample
prediction and any latent channel count (e.g. the shipped ``pixelkiln-textures``: 8
channels, v-prediction, circular padding set on its convolutions at load), LoRA scales,
tiling by circular padding, classifier-free guidance; and the flow-matching DiTs, FLUX
(live_flux.py: packed latents) and Z-Image (live_zimage.py), with stream batch and the tiny
autoencoder. Falls back to the pipeline (the reason is noted, see below): FLUX.2 (no img2img
yet), DiT tiling (seam inpainting), schedulers
other than Euler discrete (ancestral and LCM schedulers draw noise per step), UNets with a
guidance embedding (``time_cond_proj_dim``), more than one image per request, inpainting.

Notes: a hooks object with an ``on_note(key, value)`` method hears, per live job, ``lean``,
``stream_batch``, ``tiny_autoencoder`` ("applied" or "not applied: <why>"), and with stream
batch ``answers`` and ``held`` (stream_batch.py), and ``graph_calls``: how many of the job's
model calls recorded graphs served (traced.py). The contract with the live front is in
stream_batch.py's docstring.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..catalogue import DIT_FAMILIES
from ..errors import ResourceExhausted
from ..imaging import preview
from ..types import DecodedInputs, GenerationRequest, Priority, Tiling
from . import live_flux, live_sdxl, live_zimage, tiling, tiny_vae
from .base import StepHooks

PLAN_CACHE_SIZE = 4
APPLIED = "applied"
NO_TINY = (
    f"not applied: the model has no tiny autoencoder ({tiny_vae.SUBFOLDER}/ in its folder or "
    "--tiny-vae)"
)


def note(hooks: StepHooks, key: str, value: str) -> None:
    """Tell the hooks what was applied, when they listen (an optional ``on_note`` method)."""
    on_note = getattr(hooks, "on_note", None)
    if on_note is not None:
        on_note(key, value)


def settings_key(request: GenerationRequest) -> GenerationRequest:
    """The request without what changes per frame: every frame of equal key shares a plan."""
    return replace(request, init_image=None, client_request_id="", stream_id="")


@dataclass
class Plan:
    """What every frame of one setting shares (tensors on the model's device)."""

    steps: int  # denoising steps run: min(int(steps * strength), steps)
    index: Any  # (N,) long: arange(N), row indices into the per-step tensors
    timesteps: Any  # (N,) as the scheduler hands them to the UNet
    in_scale: Any  # (N,) float32: sqrt(sigma^2 + 1), the UNet input's divisor
    coef_x: Any  # (N,) float32: prev = coef_x * x + coef_out * model_output
    coef_out: Any  # (N,) float32
    sigma0: Any  # 0-d, latents dtype: add_noise's sigma
    vae_draw: Any  # (1, C, h, w): the VAE posterior's standard normal draw
    noise: Any  # (1, C, h, w), latents dtype
    embeds: Any  # (1, L, D); (2, L, D) as (negative, positive) with guidance
    guidance: float
    cfg: bool
    dtype: Any  # the latents' dtype (the prompt embeddings', as the pipeline takes it)
    scaling: float
    tiny: bool  # encode and decode with the tiny autoencoder
    # Decode only with it: the model's --tiny-vae-decode, for live frames (as the pipeline did).
    tiny_decode: bool
    memory_format: Any  # the UNet's: torch.channels_last or torch.contiguous_format
    unet_dtype: Any  # read once: ModelMixin.dtype walks every parameter
    # SDXL: the UNet's added conditioning, (text_embeds, time_ids), rows as ``embeds``; the
    # VAE in float32 around encode and decode (force_upcast in fp16), latents mean and std.
    added: tuple[Any, Any] | None = None
    upcast: bool = False
    latents_mean: Any = None
    latents_std: Any = None
    # Module calls replayed from recorded graphs (traced.py): on the CPU, no LoRA adapters,
    # no fp16 upcast; the tiling mode is part of each graph's key.
    traced: bool = False
    tiling: Tiling = Tiling.NONE


def euler_coefficients(sigmas: Any, prediction: str) -> tuple[Any, Any]:
    """Euler discrete's step ``x + (x - x0) / sigma * (sigma_next - sigma)`` as ``a x + b out``
    per step, ``x0`` from the model output by prediction type (epsilon, v, sample)."""
    import torch

    s = sigmas[:-1].double()
    dt = sigmas[1:].double() - s
    if prediction == "epsilon":
        a, b = torch.ones_like(s), dt
    elif prediction == "v_prediction":
        a, b = 1.0 + dt * s / (s * s + 1.0), dt / torch.sqrt(s * s + 1.0)
    else:  # "sample" / "original_sample": the model predicts x0
        a, b = 1.0 + dt / s, -dt / s
    return a.float(), b.float()


class LeanPath:
    """The lean live path of one :class:`~.diffusers_backend.DiffusersModel`."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._plans: dict[GenerationRequest, Any] = {}  # Plan, or live_flux.FluxPlan
        self.plans_built = 0
        from .traced import Graphs  # imports torch

        self.graphs = Graphs()
        from .stream_batch import StreamBatch

        self.streams = StreamBatch(self)
        self._flow_steps: Any = None  # live_flux.FluxSteps or live_zimage.ZImageSteps

    @property
    def pipe(self) -> Any:
        return self.model.pipe

    def why_not(self, request: GenerationRequest, inputs: DecodedInputs) -> str | None:
        """None when the lean path serves ``request``, else why the pipeline does."""
        spec, pipe = self.model.spec, self.pipe
        if request.mode != "img2img" or inputs.init_rgb is None:
            return f"{request.mode}: the lean path runs img2img frames only"
        if request.num_images != 1:
            return "num_images > 1"
        if spec.family in ("flux", "z-image"):
            return live_flux.why_not(pipe, request)
        if spec.family in DIT_FAMILIES or getattr(pipe, "unet", None) is None:
            return f"{spec.family}: a DiT family; the pipeline serves it"
        if spec.family not in ("sd", "sdxl"):
            return f"{spec.family}: the lean path serves the sd and sdxl UNet conditionings"
        if type(pipe.scheduler).__name__ != "EulerDiscreteScheduler":
            return (
                f"scheduler {type(pipe.scheduler).__name__}: the closed-form step covers "
                "EulerDiscreteScheduler only"
            )
        if pipe.scheduler.config.prediction_type not in ("epsilon", "v_prediction", "sample"):
            return f"prediction type {pipe.scheduler.config.prediction_type}"
        if getattr(pipe.unet.config, "time_cond_proj_dim", None) is not None:
            return "a UNet with a guidance embedding (time_cond_proj_dim)"
        if request.tiling is not Tiling.NONE and spec.tiling_method != "circular":
            return "tiling by seam inpainting"
        assert request.strength is not None
        if min(int(request.steps * request.strength), request.steps) < 1:
            return "strength * steps < 1: no denoising step"
        return None

    @staticmethod
    def serves(request: GenerationRequest) -> bool:
        """Whether ``request`` is for this path at all (see :meth:`generate`)."""
        return request.priority is Priority.LIVE or request.tiny_autoencoder

    def generate(
        self, request: GenerationRequest, inputs: DecodedInputs, hooks: StepHooks
    ) -> list[np.ndarray] | None:
        """A live frame's images, or None when the pipeline must serve the request (noted).
        With stream batch, ``[]`` means "no frame yet" (stream_batch.py).

        Live requests, and any img2img request that asks for the tiny autoencoder (a live
        frame's recipe replayed through Generate: only this path decodes with it). Stream
        batch applies to live requests only: a replay runs its frame alone."""
        if not self.serves(request):
            return None
        reason = self.why_not(request, inputs)
        if reason is not None:
            note(hooks, "lean", f"not applied: {reason}")
            note(hooks, "stream_batch", "not applied: the pipeline serves this request")
            note(hooks, "tiny_autoencoder", "not applied: the pipeline serves this request")
            return None
        note(hooks, "lean", APPLIED)
        replays = self.graphs.replays
        images = self._lean_frame(request, inputs, hooks)
        note(hooks, "graph_calls", str(self.graphs.replays - replays))
        return images

    def _lean_frame(
        self, request: GenerationRequest, inputs: DecodedInputs, hooks: StepHooks
    ) -> list[np.ndarray]:
        import torch

        self.model._loras.apply(self.pipe, request.loras)
        if self.model.spec.family in ("flux", "z-image"):
            return self._flow_frame(request, inputs, hooks)
        with _gpu_memory(request), torch.inference_mode(), self._tiled(request.tiling):
            plan = self.plan(request, hooks)
            if request.stream_batch and request.priority is Priority.LIVE:
                return self.streams.push(request, plan, inputs, hooks)
            note(hooks, "stream_batch", "not applied: off" if not request.stream_batch
                 else "not applied: not a live request")  # fmt: skip
            return [self.frame(request, plan, inputs, hooks)]

    def _flow_frame(
        self, request: GenerationRequest, inputs: DecodedInputs, hooks: StepHooks
    ) -> list[np.ndarray]:
        """A FLUX or Z-Image frame (live_flux.py, live_zimage.py), with stream batch and the
        tiny autoencoder when asked."""
        import torch

        family = self.model.spec.family
        steps = self._flow_steps
        if steps is None or steps.pipe is not self.pipe:
            parts = live_flux.FluxSteps if family == "flux" else live_zimage.ZImageSteps
            model = self.model
            allowed = self.pipe._execution_device.type == "cpu" and self._graphs_allowed()

            def call(kind: str, module: Any, *args: Any) -> Any:  # live_flux.Call
                return self.graphs.run(kind, module, args, None, allowed=allowed)

            steps = parts(self.pipe, call, model.tiny_vae, model.tiny_vae_decode)
            self._flow_steps = steps
        with _gpu_memory(request), torch.inference_mode():
            plan = self._cached(request, lambda: steps.build(request))
            self._note_tiny(request, plan, hooks)
            if request.stream_batch and request.priority is Priority.LIVE:
                return self.streams.push(request, plan, inputs, hooks, steps)
            note(hooks, "stream_batch", "not applied: off" if not request.stream_batch
                 else "not applied: not a live request")  # fmt: skip
            return [steps.frame(request, plan, inputs, hooks)]

    # -- per settings change -------------------------------------------------------------

    def plan(self, request: GenerationRequest, hooks: StepHooks) -> Plan:
        """The cached plan of ``request``'s settings (LRU of PLAN_CACHE_SIZE)."""
        plan: Plan = self._cached(request, lambda: self._build(request))
        self._note_tiny(request, plan, hooks)
        return plan

    @staticmethod
    def _note_tiny(request: GenerationRequest, plan: Any, hooks: StepHooks) -> None:
        if request.tiny_autoencoder and not plan.tiny:
            note(hooks, "tiny_autoencoder", NO_TINY)
        else:
            note(hooks, "tiny_autoencoder", APPLIED if plan.tiny else "not applied: off")

    def _cached(self, request: GenerationRequest, build: Callable[[], Any]) -> Any:
        """The plan of ``request``'s settings from the LRU of PLAN_CACHE_SIZE, built on a
        miss (a UNet Plan, or a flow-matching DiT's)."""
        key = settings_key(request)
        plan = self._plans.pop(key, None)
        if plan is None:
            plan = build()
            self.plans_built += 1
        self._plans[key] = plan
        while len(self._plans) > PLAN_CACHE_SIZE:
            self._plans.pop(next(iter(self._plans)))
        return plan

    def _build(self, request: GenerationRequest) -> Plan:
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        model, pipe = self.model, self.pipe
        assert request.seed is not None and request.strength is not None
        device = pipe._execution_device
        cfg = request.guidance_scale is not None and request.guidance_scale > 1.0
        sdxl = model.spec.family == "sdxl"
        if sdxl:
            positive, negative, added = live_sdxl.conditioning(model, request, cfg)
        else:
            positive, negative = model._embeds(pipe, request.prompt, request.negative_prompt, cfg)
            added = None
        embeds = torch.cat([negative, positive]) if cfg else positive
        dtype = positive.dtype

        scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
        scheduler.set_timesteps(request.steps, device=device)
        run = min(int(request.steps * request.strength), request.steps)
        start = (request.steps - run) * scheduler.order
        sigmas = scheduler.sigmas[start:].to(torch.float32)
        coef_x, coef_out = euler_coefficients(sigmas, scheduler.config.prediction_type)

        vae = pipe.vae
        upcast = sdxl and vae.dtype == torch.float16 and bool(vae.config.force_upcast)
        mean, std = live_sdxl.latents_stats(vae, device, dtype) if sdxl else (None, None)
        factor = pipe.vae_scale_factor
        shape = (1, vae.config.latent_channels, request.height // factor, request.width // factor)
        generator = torch.Generator(device="cpu").manual_seed(request.seed % 2**64)
        # The pipeline's order: the VAE posterior's sample first, then the noise.
        draw_dtype = torch.float32 if upcast else vae.dtype
        vae_draw = randn_tensor(shape, generator=generator, device=device, dtype=draw_dtype)
        noise = randn_tensor(shape, generator=[generator], device=device, dtype=dtype)
        tiny = request.tiny_autoencoder and model.tiny_vae is not None
        return Plan(
            steps=run,
            index=torch.arange(run, device=device),
            timesteps=scheduler.timesteps[start:].to(device),
            in_scale=((sigmas**2 + 1) ** 0.5).to(device),
            coef_x=coef_x.to(device),
            coef_out=coef_out.to(device),
            sigma0=sigmas[0].to(device=device, dtype=dtype),
            vae_draw=vae_draw,
            noise=noise,
            embeds=embeds,
            guidance=float(request.guidance_scale or 0.0),
            cfg=cfg,
            dtype=dtype,
            scaling=float(vae.config.scaling_factor),
            tiny=tiny,
            tiny_decode=tiny or (model.tiny_vae_decode and request.priority is Priority.LIVE),
            memory_format=_memory_format(pipe.unet),
            unet_dtype=pipe.unet.dtype,
            added=added,
            upcast=upcast,
            latents_mean=mean,
            latents_std=std,
            traced=device.type == "cpu" and not upcast and self._graphs_allowed(),
            tiling=request.tiling,
        )

    def _graphs_allowed(self) -> bool:
        """Recorded graphs (traced.py) for this model at all: not with LoRA adapters (their
        scales would be constants), nor a compiled or quantized model (already optimised;
        torchao's tensors do not trace)."""
        options = self.model.active_options()
        plain = options.get("compile", "false") == "false" and not options.get("quantize")
        return plain and not self.model._loras.current

    def _call(self, plan: Plan, kind: str, module: Any, *args: Any) -> Any:
        """``kind``'s call of ``module`` (traced.py's wrappers), from a recorded graph when
        the plan allows one."""
        return self.graphs.run(kind, module, args, plan.tiling, allowed=plan.traced)

    # -- per frame -------------------------------------------------------------------------

    def encode(self, plan: Plan, rgb: np.ndarray, width: int, height: int) -> Any:
        """The decoded input (uint8 RGB) -> noised latents at the first step, (1, C, h, w)."""

        pipe = self.pipe
        # On the noise's device: _execution_device walks the modules.
        x = live_flux.pixels(rgb, width, height, plan.noise.device, plan.dtype)
        if plan.tiny:
            tiny = self.model.tiny_vae
            z = tiny_vae.encode(tiny, x, lambda v, p: self._call(plan, "tiny_encode", v, p))
            z = z.to(plan.dtype)
        elif plan.added is None:
            mean, std = self._call(plan, "encode", pipe.vae, x)
            z = plan.scaling * (mean + std * plan.vae_draw)
        else:  # SDXL img2img's prepare_latents
            with live_sdxl.Upcast(pipe.vae, plan):
                mean, std = self._call(plan, "encode", pipe.vae, x.float() if plan.upcast else x)
                z = (mean + std * plan.vae_draw).to(plan.dtype)
            if plan.latents_mean is not None:
                z = (z - plan.latents_mean) * plan.scaling / plan.latents_std
            else:
                z = plan.scaling * z
        return z + plan.noise * plan.sigma0

    def denoise(self, plan: Plan, latents: Any, index: Any) -> Any:
        """One UNet call over a batch whose row r sits at step ``index[r]`` (a long tensor);
        returns every row one step further."""
        import torch

        unet = self.pipe.unet
        rows = latents.shape[0]
        shape = (rows, 1, 1, 1)
        x = latents / plan.in_scale[index].view(shape)
        t = plan.timesteps[index]
        embeds = plan.embeds
        if plan.cfg:
            x = torch.cat([x, x])
            t = torch.cat([t, t])
            embeds = embeds.repeat_interleave(rows, dim=0)
        elif rows > 1:
            embeds = embeds.expand(rows, -1, -1)
        # The model's own memory format (channels_last on CUDA, accel.py): no conversion inside.
        x = x.to(dtype=plan.unet_dtype, memory_format=plan.memory_format)
        if plan.added is None:
            out = self._call(plan, "unet", unet, x, t, embeds)
        else:
            text, time_ids = plan.added
            added = (_rows(text, rows, plan.cfg), _rows(time_ids, rows, plan.cfg))
            out = self._call(plan, "unet_xl", unet, x, t, embeds, *added)
        if plan.cfg:
            uncond, cond = out.chunk(2)
            out = uncond + plan.guidance * (cond - uncond)
        prev = (
            plan.coef_x[index].view(shape) * latents.float()
            + plan.coef_out[index].view(shape) * out.float()
        )
        return prev.to(out.dtype)

    def decode(self, plan: Plan, latents: Any) -> np.ndarray:
        """Latents (B, C, h, w) -> float32 RGB (B, H, W, 3) in [0, 1]."""
        if plan.tiny_decode:
            tiny = self.model.tiny_vae
            image = tiny_vae.decode(
                tiny, latents, lambda v, z: self._call(plan, "tiny_decode", v, z)
            )
        elif plan.added is None:
            image = self._call(plan, "decode", self.pipe.vae, latents / plan.scaling)
        else:  # SDXL img2img's decode
            vae = self.pipe.vae
            with live_sdxl.Upcast(vae, plan):
                z = latents.float() if plan.upcast else latents
                if plan.latents_mean is not None:
                    mean, std = plan.latents_mean.to(z.dtype), plan.latents_std.to(z.dtype)
                    z = z * std / plan.scaling + mean
                else:
                    z = z / plan.scaling
                image = self._call(plan, "decode", vae, z)
        return live_flux.to_rgb(image)

    def frame(
        self, request: GenerationRequest, plan: Plan, inputs: DecodedInputs, hooks: StepHooks
    ) -> np.ndarray:
        """One frame, steps one after another; progress, cancel and previews per step."""
        return live_flux.run_frame(self, request, plan, inputs, hooks)

    def preview(self, plan: Plan, latents: Any, side: int) -> list[np.ndarray]:
        model = self.model
        return preview.project(
            latents.float().cpu().numpy(), model.spec.family, side, model.preview_factors
        )

    def _tiled(self, mode: Tiling) -> Any:
        pipe = self.pipe
        if mode is Tiling.NONE or self.model.spec.tiling_method != "circular":
            return tiling.circular_padding([], False, False)
        modules = [m for m in (pipe.unet, pipe.vae, self.model.tiny_vae) if m is not None]
        return tiling.circular_padding(modules, mode.wrap_x, mode.wrap_y)


@contextlib.contextmanager
def _gpu_memory(request: GenerationRequest) -> Iterator[None]:
    """An out-of-memory error of a live frame (CUDA, MPS) as RESOURCE_EXHAUSTED, the cache
    emptied."""
    from . import gpu_memory

    try:
        yield
    except gpu_memory.errors() as exc:
        if not gpu_memory.exhausted(exc):
            raise
        gpu_memory.empty_caches()
        raise ResourceExhausted(
            f"out of GPU memory for a {request.width}x{request.height} live frame; "
            "try a smaller size"
        ) from None


def _memory_format(unet: Any) -> Any:
    import torch

    w = unet.conv_in.weight
    if w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _rows(tensor: Any, rows: int, cfg: bool) -> Any:
    """Per-request conditioning (1 row, or negative and positive) for a batch of ``rows``
    frames: with guidance all negative rows first, as the latents are stacked."""
    if cfg:
        return tensor.repeat_interleave(rows, dim=0)
    return tensor.expand(rows, *tensor.shape[1:]) if rows > 1 else tensor
