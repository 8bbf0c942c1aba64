"""The diffusers backend: SD / SDXL-family pipelines from a hub id, a folder or a single file.

txt2img, img2img and inpainting share one set of weights through ``from_pipe``. Torch and
diffusers are imported here and only here (plus the other backends). The model's speed
options (``spec.options``: compile, quantize, tiny VAE, offload, LoRA, ...) are applied while
it loads (``accel.py``, ``lora.py``).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

import numpy as np

from ..catalogue import DIT_FAMILIES, ModelSpec
from ..errors import FailedPrecondition, InvalidArgument, PixelKilnError, ResourceExhausted
from ..imaging import preview, torus
from ..model_options import LoraAdapter
from ..types import DecodedInputs, GenerationRequest, Priority, Tiling
from . import (
    accel,
    gpu_memory,
    inpaint,
    load_errors,
    lora,
    runtime_choice,
    tiling,
    tiny_vae,
    variation,
)
from .base import BatchItem, LoadedModel, LoadOptions, NoHooks, StepHooks
from .diffusers_load import (
    apply_padding,
    apply_scheduler,
    dtype_name,
    folder_meta,
    load_pipeline,
    pick_device,
    pick_dtype,
)
from .diffusers_steps import StepReporter, spatial_latents
from .live_path import LeanPath
from .runtime_choice import OnnxRoute

log = logging.getLogger(__name__)

EMBED_CACHE_SIZE = 32


class DiffusersModel(LoadedModel):
    def __init__(
        self,
        spec: ModelSpec,
        pipe: Any,
        device: str,
        dtype: Any,
        *,
        tiny_vae: Any = None,
        options: dict[str, str] | None = None,
        loras: tuple[LoraAdapter, ...] = (),
        tiny_vae_decode: bool = False,
        tiny_source: str = "",
        preview_factors: preview.Factors | None = None,
        wraps: bool = False,
    ) -> None:
        self.spec = spec
        # Every convolution pads circularly (the folder's pixelkiln.json): the output is
        # periodic, and untiled txt2img subjects are rolled to the centre (imaging/torus.py).
        self.wraps = wraps
        # The model's own latent->RGB map (its pixelkiln.json); else the family's.
        self.preview_factors = preview_factors
        self.device = device
        self.dtype = dtype_name(dtype)
        self._pipes: dict[str, Any] = {"txt2img": pipe}
        self._embed_cache: dict[tuple[str, str, bool], tuple[Any, Any]] = {}
        self.text_encodes = 0  # how often the text encoder ran (the cache's misses)
        self.tiny_vae = tiny_vae
        self._tiny_source = tiny_source if tiny_vae is not None else ""
        self.tiny_vae_decode = tiny_vae_decode and tiny_vae is not None
        self._options = dict(options or {})
        self._loras = lora.LoraScales(loras)
        self.compiled = False
        self._lean: LeanPath | None = None
        # The requests its ONNX export serves, when that runtime was chosen (runtime_choice.py).
        self._route: OnnxRoute | None = None
        self._runtime = "torch"
        # CUDA: the allocator's growth over the load, measured by the backend.
        self.resident_bytes: int | None = None

    def _pipe(self, mode: str) -> Any:
        """The pipeline of ``mode``; inpainting on a UNet that diffusers' inpainting pipelines
        refuse runs the img2img one with a LatentBlend callback (inpaint.py)."""
        if mode == "inpaint" and self.blends:
            mode = "img2img"
        if mode not in self._pipes:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

            factory = AutoPipelineForImage2Image if mode == "img2img" else AutoPipelineForInpainting
            self._pipes[mode] = factory.from_pipe(self._pipes["txt2img"])
            self._pipes[mode].set_progress_bar_config(disable=True)
        return self._pipes[mode]

    @property
    def blends(self) -> bool:
        return inpaint.blends(self._pipes.get("txt2img"))

    @property
    def pipe(self) -> Any:
        """The txt2img pipeline (None once released)."""
        return self._pipes.get("txt2img")

    def active_options(self) -> dict[str, str]:
        """The load's options, and the tiny autoencoder live frames may ask for ("none")."""
        return {
            **self._options,
            "live_tiny_autoencoder": self._tiny_source or "none",
            "runtime": self._runtime,
        }

    def _tensors(self) -> list[Any]:
        """Every distinct parameter and buffer of the pipeline's modules and the tiny VAE."""
        import torch

        pipe = self._pipes.get("txt2img")
        modules = [c for c in (pipe.components.values() if pipe is not None else ())]
        modules.append(self.tiny_vae)
        seen: dict[int, Any] = {}
        for module in modules:
            if isinstance(module, torch.nn.Module):
                for t in (*module.parameters(), *module.buffers()):
                    seen.setdefault(id(t), t)
        return list(seen.values())

    def memory_bytes(self) -> int:
        """CUDA: the allocator's growth while loading (weights, compile warm-up); elsewhere the
        bytes of the weights and buffers."""
        if self.resident_bytes is not None:
            return self.resident_bytes
        routed = self._route.onnx.memory_bytes() if self._route is not None else 0
        return routed + sum(_nbytes(t) for t in self._tensors())

    def release(self) -> int:
        """Drop every reference to the weights and measure what was freed: the CUDA
        allocator's drop, or on the CPU the bytes of the tensors that are gone afterwards."""
        import gc
        import weakref

        import torch

        cuda = self.device.startswith("cuda")
        refs = [(weakref.ref(t), _nbytes(t)) for t in self._tensors()]
        before = torch.cuda.memory_allocated(self.device) if cuda else 0
        pipe = self._pipes.get("txt2img")
        if pipe is not None and hasattr(pipe, "remove_all_hooks"):
            pipe.remove_all_hooks()  # accelerate's offload hooks hold the modules
        del pipe
        if self.compiled:
            torch._dynamo.reset()  # compiled graphs hold the weights
        self._pipes.clear()
        self._embed_cache.clear()
        self._lean = None
        if self._route is not None:
            self._route.release()
            self._route = None
        self.tiny_vae = None
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
            return max(0, before - torch.cuda.memory_allocated(self.device))
        if getattr(self.device, "type", str(self.device)) == "mps":
            gpu_memory.empty_caches("mps")  # unloading hands the memory back on a Mac too
        return sum(n for ref, n in refs if ref() is None)

    def unload(self) -> None:
        self.release()

    def warm_up(self) -> None:
        """One step at the native size and the default guidance (compiles a compiled model)."""
        spec = self.spec
        request = GenerationRequest(
            prompt="warm-up",
            width=spec.native_width,
            height=spec.native_height,
            steps=1,
            guidance_scale=spec.default_guidance,
            seed=0,
        )
        self.generate(request, DecodedInputs(), NoHooks())

    def _tiny_decode(self, latents: Any) -> np.ndarray:
        """Latents (B, C, h, w) as the denoiser sees them -> float RGB (B, H, W, 3) in [0, 1],
        through the tiny VAE."""
        return tiny_vae.decode_rgb(self.tiny_vae, latents)

    def generate(
        self, request: GenerationRequest, inputs: DecodedInputs, hooks: StepHooks
    ) -> list[np.ndarray]:
        if self._route is not None and self._route.serves(request):
            return self._route.generate(request, inputs, hooks)
        if LeanPath.serves(request):
            # Live frames (and tiny-autoencoder replays): the lean path (live_path.py), or
            # None when the pipeline serves it.
            if self._lean is None:
                self._lean = LeanPath(self)
            lean = self._lean.generate(request, inputs, hooks)
            if lean is not None:
                return lean
        outcome = self._run([BatchItem(request, inputs, hooks)])[0]
        if isinstance(outcome, PixelKilnError):
            raise outcome
        return outcome

    def generate_batch(self, items: list[BatchItem]) -> list[list[np.ndarray] | PixelKilnError]:
        first = items[0].request
        if (
            len(items) == 1
            # ONNX Runtime runs one request at a time (faster than torch's batch here).
            or (self._route is not None and all(self._route.serves(i.request) for i in items))
            or (first.tiling is not Tiling.NONE and self.spec.tiling_method != "circular")
            # LoRA scales and the decoder (tiny for live) are per call: run mixed ones alone.
            or len({(i.request.loras, i.request.priority) for i in items}) > 1
        ):
            return super().generate_batch(items)
        return self._run(items)

    def _embeds(self, pipe: Any, prompt: str, negative: str, cfg: bool) -> tuple[Any, Any]:
        """Prompt embeddings, cached (LRU) per prompt: a live session re-sending the same
        prompt, or a batch of variations, encodes it once."""
        key = (prompt, negative, cfg)
        hit = self._embed_cache.pop(key, None)
        if hit is None:
            hit = pipe.encode_prompt(
                prompt, pipe._execution_device, 1, cfg, negative_prompt=negative or None
            )
            self.text_encodes += 1
        self._embed_cache[key] = hit
        while len(self._embed_cache) > EMBED_CACHE_SIZE:
            self._embed_cache.pop(next(iter(self._embed_cache)))
        return hit

    def _prompt_args(self, pipe: Any, items: list[BatchItem], cfg: bool) -> dict[str, Any]:
        reqs = [item.request for item in items]
        if self.spec.family != "sd":
            args: dict[str, Any] = {"prompt": [r.prompt for r in reqs for _ in range(r.num_images)]}
            if any(r.negative_prompt for r in reqs):
                if self.spec.family == "flux2":  # its pipeline has no negative_prompt argument
                    raise InvalidArgument(
                        "negative_prompt", "FLUX.2 [klein] is guidance-distilled and takes none"
                    )
                args["negative_prompt"] = [
                    r.negative_prompt for r in reqs for _ in range(r.num_images)
                ]
            return args
        import torch

        pairs = [self._embeds(pipe, r.prompt, r.negative_prompt, cfg) for r in reqs]
        counts = [r.num_images for r in reqs]
        args = {
            "prompt_embeds": torch.cat(
                [pe.repeat(n, 1, 1) for (pe, _), n in zip(pairs, counts, strict=True)]
            )
        }
        if cfg:
            args["negative_prompt_embeds"] = torch.cat(
                [ne.repeat(n, 1, 1) for (_, ne), n in zip(pairs, counts, strict=True)]
            )
        return args

    def _run(self, items: list[BatchItem]) -> list[list[np.ndarray] | PixelKilnError]:
        """One pipeline call for ``items`` (equal mode, size, steps, guidance, tiling); image
        k of item i depends only on its own seed, as if it ran alone."""
        import torch

        request, inputs = items[0].request, items[0].inputs
        mode = request.mode
        pipe = self._pipe(mode)
        counts = [item.request.num_images for item in items]
        seam_pass = request.tiling is not Tiling.NONE and self.spec.tiling_method != "circular"
        tiny_decode = self.tiny_vae_decode and request.priority is Priority.LIVE and not seam_pass
        on_step_end = StepReporter(
            items,
            passes=1 + (sum(counts) if seam_pass else 0),
            family=self.spec.family,
            factors=self.preview_factors,
            tiny_decode=self._tiny_decode if self.tiny_vae is not None else None,
        )

        generators = [
            torch.Generator(device="cpu").manual_seed((item.request.seed + i) % 2**64)  # type: ignore[operator]
            for item in items
            for i in range(item.request.num_images)
        ]
        cfg = request.guidance_scale is not None and request.guidance_scale > 1.0
        args: dict[str, Any] = {
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance_scale,
            "num_images_per_prompt": 1,
            "generator": generators,
            "width": request.width,
            "height": request.height,
            "output_type": "latent" if tiny_decode else "np",
            "callback_on_step_end": on_step_end,
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
        try:
            self._loras.apply(pipe, request.loras)
            with torch.inference_mode(), self._tiled(pipe, request.tiling):
                args.update(self._prompt_args(pipe, items, cfg))
                if mode != "txt2img":
                    args.update(self._image_args(request, inputs))
                elif self.spec.variation_low_freq:
                    scale = int(pipe.vae_scale_factor)
                    shape = (
                        int(pipe.unet.config.in_channels),
                        request.height // scale,
                        request.width // scale,
                    )
                    latents = variation.initial_latents(
                        generators, shape, self.spec.variation_low_freq
                    )
                    args["latents"] = latents.to(device=pipe.unet.device, dtype=pipe.unet.dtype)
                if mode == "img2img" and self.spec.family not in DIT_FAMILIES:
                    # SD/SDXL img2img take the image's size; FLUX/Z-Image default to 1024.
                    del args["width"], args["height"]
                with inpaint.prepare(pipe, args) if mode == "inpaint" else nullcontext():
                    out = pipe(**args).images
                if tiny_decode:
                    out = self._tiny_decode(spatial_latents(out, request, pipe.vae_scale_factor))
                images = [np.asarray(img, dtype=np.float32) for img in out]
                if self.spec.variation_mirror and mode == "txt2img":
                    seeds = [
                        (it.request.seed or 0) + i
                        for it in items
                        for i in range(it.request.num_images)
                    ]
                    images = variation.mirror(images, seeds)
                if self.wraps and mode == "txt2img" and request.tiling is Tiling.NONE:
                    images = [torus.center_subject(img) for img in images]
                if seam_pass:
                    images = [
                        self._seam_pass(img, request, i, on_step_end)
                        for i, img in enumerate(images)
                    ]
        except gpu_memory.errors() as exc:
            if not gpu_memory.exhausted(exc):
                raise
            gpu_memory.empty_caches()
            raise ResourceExhausted(
                f"out of GPU memory for {request.width}x{request.height} x{sum(counts)}; "
                "try a smaller size or fewer images"
            ) from None
        except MemoryError:
            raise ResourceExhausted("out of memory; try a smaller size or fewer images") from None
        cancelled, offsets = on_step_end.cancelled, on_step_end.offsets
        return [
            cancelled[n] if n in cancelled else images[offsets[n] : offsets[n + 1]]
            for n in range(len(items))
        ]

    def _image_args(self, request: GenerationRequest, inputs: DecodedInputs) -> dict[str, Any]:
        from PIL import Image

        assert inputs.init_rgb is not None
        size = (request.width, request.height)
        args: dict[str, Any] = {
            "image": Image.fromarray(inputs.init_rgb).resize(size, Image.Resampling.LANCZOS),
            "strength": request.strength,
        }
        if inputs.mask is not None:
            mask = Image.fromarray(inputs.mask).resize(size, Image.Resampling.NEAREST)
            args["mask_image"] = mask
        return args

    def _tiled(self, pipe: Any, mode: Tiling) -> Any:
        if mode is Tiling.NONE or self.spec.tiling_method != "circular":
            return tiling.circular_padding([], False, False)
        modules = [m for m in (getattr(pipe, "unet", None), getattr(pipe, "vae", None)) if m]
        return tiling.circular_padding(modules, mode.wrap_x, mode.wrap_y)

    def _seam_pass(
        self, image: np.ndarray, request: GenerationRequest, index: int, callback: Any
    ) -> np.ndarray:
        """DiT tiling: shift by half a tile, inpaint the seam cross, keep the rest."""
        import torch
        from PIL import Image

        assert request.seed is not None
        h, w = image.shape[:2]
        wrap_x, wrap_y = request.tiling.wrap_x, request.tiling.wrap_y
        shifted = tiling.shift_half(image, wrap_x, wrap_y)
        band = max(16, min(h, w) // 8)
        mask = tiling.seam_cross_mask(h, w, wrap_x, wrap_y, band)
        to_pil = Image.fromarray
        pipe = self._pipe("inpaint")
        args = {
            "prompt": request.prompt,
            "image": to_pil((shifted * 255 + 0.5).astype(np.uint8)),
            "mask_image": to_pil((mask * 255 + 0.5).astype(np.uint8)),
            "width": w,
            "height": h,
            "strength": 1.0,
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance_scale,
            "generator": torch.Generator("cpu").manual_seed((request.seed + index) % 2**64),
            "output_type": "np",
            "callback_on_step_end": callback,
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
        with inpaint.prepare(pipe, args):
            out = pipe(**args).images[0]
        m = mask[:, :, None]
        return np.asarray(m * out + (1.0 - m) * shifted, dtype=np.float32)


def _nbytes(tensor: Any) -> int:
    """Bytes a tensor holds; for tensor subclasses (torchao's int8, fp8, NF4) the sum of the
    inner tensors (the subclass itself reports its logical dtype)."""
    flatten = getattr(tensor, "__tensor_flatten__", None)
    if flatten is not None:
        names, _ = flatten()
        return sum(_nbytes(getattr(tensor, name)) for name in names)
    try:
        return int(tensor.numel() * tensor.element_size())
    except (RuntimeError, TypeError, NotImplementedError):
        return 0


class DiffusersBackend:
    name = "diffusers"

    def load(self, spec: ModelSpec, options: LoadOptions) -> DiffusersModel:
        import torch

        device = pick_device(options.device)
        dtype = pick_dtype(device, spec.family, options.dtype)
        opts = accel.resolve(spec.options, device)
        accel.check(opts, device)
        log.info("loading %s from %s on %s (%s)", spec.name, spec.source, device, dtype)
        cuda = device.startswith("cuda")
        before = torch.cuda.memory_allocated(device) if cuda else 0
        free = int(torch.cuda.mem_get_info(device)[0]) if cuda else None
        load_errors.check_fits(spec, dtype_name(dtype), free, opts.offload, opts.quantize)
        try:
            meta = folder_meta(spec)
            pipe = load_pipeline(spec, dtype, options)
            apply_scheduler(pipe, spec.scheduler)
            apply_padding(pipe, meta)
            lora.load_adapters(pipe, opts.loras)
            # --tiny-vae, else the model folder's own vae_tiny/ (tiny_vae.py).
            tiny_source = opts.tiny_vae or str(tiny_vae.find_in_folder(spec.source) or "")
            tiny = accel.load_tiny_vae(tiny_source, dtype) if tiny_source else None
            if tiny is not None:
                accel.check_tiny_vae(pipe, tiny)
                if meta is not None and meta.padding == "circular":
                    tiling.set_circular(tiny)
            opts = accel.apply_modules(pipe, opts, spec.family, tiny)
            quantized = ""
            if opts.quantize and opts.offload:  # quantize before the offload hooks take over
                quantized = accel.quantize(accel.denoiser(pipe), opts.quantize)
            accel.place(pipe, opts, device)
            if opts.quantize and not opts.offload:
                quantized = accel.quantize(accel.denoiser(pipe), opts.quantize)
            if tiny is not None:
                tiny.to(device)
            pipe.set_progress_bar_config(disable=True)
            model = DiffusersModel(
                spec,
                pipe,
                device,
                dtype,
                tiny_vae=tiny,
                options=accel.report(opts, device, quantized),
                loras=opts.loras,
                tiny_vae_decode=opts.tiny_vae_decode,
                tiny_source=tiny_source,
                preview_factors=preview.factors_from(meta.preview_matrix, meta.preview_bias)
                if meta is not None
                else None,
                wraps=meta is not None and meta.padding == "circular",
            )
            if opts.compile:
                accel.compile_denoiser(pipe, opts, device)
                model.compiled = True
                try:
                    model.warm_up()
                except (torch.cuda.OutOfMemoryError, PixelKilnError):
                    raise
                except Exception as exc:  # noqa: BLE001 - torch.compile's many backend errors
                    if gpu_memory.exhausted(exc):
                        raise
                    model.release()
                    raise FailedPrecondition(
                        f"compile: torch.compile failed while warming up {spec.name!r} "
                        f"({type(exc).__name__}); serve without --compile"
                    ) from exc
            model._route, model._runtime = runtime_choice.choose(model, options.home)
        except gpu_memory.errors() as exc:
            if not gpu_memory.exhausted(exc):
                raise
            gpu_memory.empty_caches()
            raise load_errors.too_large(spec, dtype_name(dtype), free) from None
        if cuda:
            model.resident_bytes = max(0, torch.cuda.memory_allocated(device) - before)
        return model
