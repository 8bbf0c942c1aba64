"""The onnx backend: an SD-family model exported by ``pixelkiln export-onnx``, on ONNX Runtime.

Three graphs (text encoder, UNet, VAE decoder; the VAE encoder for img2img) run as ONNX
Runtime sessions; the rest is the diffusers pipeline's own logic, step for step: the CLIP
tokenizer, diffusers' ``EulerDiscreteScheduler`` from the exported config, latents drawn with
``randn_tensor`` from one generator per image. So the same request gives the same image as
the diffusers backend, to float tolerance (tests/test_onnx.py measures it).

Providers: ``CUDAExecutionProvider`` when onnxruntime has it (and the device is not forced to
the CPU), with IO binding on torch CUDA tensors so latents never leave the GPU between the
scheduler and the UNet; ``CPUExecutionProvider`` otherwise. The padding is fixed in the
exported graphs: an export of a model that wraps (``pixelkiln-textures``: circular padding on
every convolution, its manifest's ``padding``) serves every tiling mode, as its source does,
and centres untiled subjects and mirrors odd variations the same way; any other export refuses
tiling with INVALID_ARGUMENT. Inpainting blends the latents under the mask at every step
(``inpaint.LatentBlend``, as the diffusers backend does for UNets without mask inputs).
Previews use the folder's own latent-to-RGB factors (its ``pixelkiln.json``) where it has them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..catalogue import ONNX_MANIFEST, ModelSpec
from ..errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from ..folder_meta import read_meta
from ..imaging import preview, torus
from ..types import DecodedInputs, GenerationRequest, Tiling
from . import inpaint, variation
from .base import LoadedModel, LoadOptions, StepHooks

log = logging.getLogger(__name__)

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64"}


def pick_providers(device: str) -> list[str]:
    """CUDA first when onnxruntime was built with it and the device allows it; else the CPU."""
    import onnxruntime as ort

    wants_cuda = device in ("auto", "cuda") or device.startswith("cuda:")
    if wants_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class Graph:
    """One ONNX Runtime session with torch tensors in and out.

    On CUDA (with a CUDA build of torch) inputs and the preallocated output are bound by
    pointer (IO binding): no host round trip. Elsewhere the tensors pass through numpy."""

    def __init__(self, path: Path, providers: list[str], options: Any) -> None:
        import onnxruntime as ort
        import torch

        self.session = ort.InferenceSession(str(path), options, providers=providers)
        dtypes = {"float32": torch.float32, "float16": torch.float16, "int64": torch.int64}
        self.input_dtypes = {i.name: dtypes[_ORT_TYPES[i.type]] for i in self.session.get_inputs()}
        out = self.session.get_outputs()[0]
        self.output, self.output_dtype = out.name, dtypes[_ORT_TYPES[out.type]]
        self.bound = providers[0] == "CUDAExecutionProvider" and torch.cuda.is_available()
        self.device = torch.device("cuda", 0) if self.bound else torch.device("cpu")

    def __call__(self, out_shape: tuple[int, ...], **feeds: Any) -> Any:
        """Run with ``feeds`` (torch tensors, cast to the graph's dtypes); float32 output."""
        import torch

        cast = {k: v.to(self.device, self.input_dtypes[k]).contiguous() for k, v in feeds.items()}
        if not self.bound:
            arrays = {k: v.numpy() for k, v in cast.items()}
            return torch.from_numpy(self.session.run([self.output], arrays)[0]).float()
        binding = self.session.io_binding()
        index = self.device.index or 0
        for name, tensor in cast.items():
            binding.bind_input(
                name, "cuda", index, _np_dtype(tensor), tuple(tensor.shape), tensor.data_ptr()
            )
        out = torch.empty(out_shape, dtype=self.output_dtype, device=self.device)
        binding.bind_output(self.output, "cuda", index, _np_dtype(out), out_shape, out.data_ptr())
        self.session.run_with_iobinding(binding)
        return out.float()


def _np_dtype(tensor: Any) -> Any:
    return {"torch.float32": np.float32, "torch.float16": np.float16, "torch.int64": np.int64}[
        str(tensor.dtype)
    ]


class OnnxModel(LoadedModel):
    def __init__(self, spec: ModelSpec, folder: Path, manifest: dict[str, Any], device: str):
        import onnxruntime as ort
        from diffusers import EulerDiscreteScheduler
        from transformers import CLIPTokenizer

        self.spec = spec
        self.folder = folder
        self.manifest = manifest
        self.providers = pick_providers(device)
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.dtype = "fp16" if manifest.get("fp16") else "fp32"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's idle pool threads spin by default: they starve torch and the network threads
        # that share these cores between two runs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.graphs = {
            name: Graph(folder / rel, self.providers, options)
            for name, rel in manifest["components"].items()
        }
        self.tokenizer = CLIPTokenizer.from_pretrained(
            str(folder / manifest["tokenizer"]), local_files_only=True
        )
        config = dict(manifest["scheduler"])
        if spec.scheduler == "euler-trailing":
            config["timestep_spacing"] = "trailing"
        self.scheduler = EulerDiscreteScheduler.from_config(config)
        self.scaling = float(manifest["scaling_factor"])
        self.scale = int(manifest["vae_scale_factor"])
        self.channels = int(manifest["latent_channels"])
        self.hidden = int(self.graphs["text_encoder"].session.get_outputs()[0].shape[-1])
        self.wraps = manifest.get("padding") == "circular"
        try:
            meta = read_meta(folder)
        except ValueError as exc:
            raise InvalidArgument("model", str(exc)) from None
        self.preview_factors = (
            preview.factors_from(meta.preview_matrix, meta.preview_bias) if meta else None
        )

    def memory_bytes(self) -> int:
        """The weights' size on disk (the sessions hold about as much)."""
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    def unload(self) -> None:
        self.graphs.clear()

    def encode(self, prompt: str, count: int) -> Any:
        """Text embeddings (count, 77, D): the pipeline's encode_prompt, without clip_skip."""
        import torch

        max_length = int(self.tokenizer.model_max_length)
        ids = self.tokenizer(
            [prompt], padding="max_length", max_length=max_length, truncation=True
        ).input_ids
        input_ids = torch.tensor(ids, dtype=torch.int64)
        embeds = self.graphs["text_encoder"]((1, max_length, self.hidden), input_ids=input_ids)
        return embeds.repeat(count, 1, 1)

    def generate(
        self, request: GenerationRequest, inputs: DecodedInputs, hooks: StepHooks
    ) -> list[np.ndarray]:
        import torch

        if request.tiling is not Tiling.NONE and not self.wraps:
            raise InvalidArgument("tiling", "not supported by the onnx backend (fixed padding)")
        try:
            with torch.inference_mode():
                images = self._generate(request, inputs, hooks)
        except MemoryError:
            raise ResourceExhausted("out of memory; try a smaller size or fewer images") from None
        if request.mode != "txt2img":
            return images
        # What the diffusers backend does after a txt2img call of the same model.
        if self.spec.variation_mirror:
            seed = request.seed or 0
            images = variation.mirror(images, [seed + i for i in range(len(images))])
        if self.wraps and request.tiling is Tiling.NONE:
            images = [torus.center_subject(img) for img in images]
        return images

    def _generate(
        self, request: GenerationRequest, inputs: DecodedInputs, hooks: StepHooks
    ) -> list[np.ndarray]:
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        assert request.seed is not None and request.guidance_scale is not None
        n, guidance = request.num_images, request.guidance_scale
        generators = [
            torch.Generator(device="cpu").manual_seed((request.seed + i) % 2**64) for i in range(n)
        ]
        cfg = guidance > 1.0
        embeds = self.encode(request.prompt, n)
        if cfg:
            embeds = torch.cat([self.encode(request.negative_prompt, n), embeds])
        scheduler = self.scheduler
        scheduler.set_timesteps(request.steps, device="cpu")
        timesteps = scheduler.timesteps
        shape = (n, self.channels, request.height // self.scale, request.width // self.scale)
        blend = None
        if request.mode != "txt2img":
            assert request.strength is not None
            t_start = request.steps - min(int(request.steps * request.strength), request.steps)
            timesteps = timesteps[t_start * scheduler.order :]
            scheduler.set_begin_index(t_start * scheduler.order)
            init, mean = self._init_latents(request, inputs, generators)
            noise = randn_tensor(shape, generator=generators, dtype=torch.float32)
            latents = scheduler.add_noise(init, noise, timesteps[:1].repeat(n))
            if inputs.mask is not None:  # inpainting: blend under the mask at every step
                seeds = [request.seed + i for i in range(n)]
                blend = inpaint.LatentBlend(mean, inputs.mask, seeds, then=None)
        elif self.spec.variation_low_freq:  # as the diffusers backend draws them
            low_freq = self.spec.variation_low_freq
            latents = variation.initial_latents(generators, shape[1:], low_freq)
            latents = latents * scheduler.init_noise_sigma
        else:
            latents = randn_tensor(shape, generator=generators, dtype=torch.float32)
            latents = latents * scheduler.init_noise_sigma
        total = len(timesteps)
        for i, t in enumerate(timesteps):
            model_in = torch.cat([latents] * 2) if cfg else latents
            model_in = scheduler.scale_model_input(model_in, t)
            noise_pred = self.graphs["unet"](
                tuple(model_in.shape),
                sample=model_in,
                timestep=t.reshape(1).expand(model_in.shape[0]).float(),
                encoder_hidden_states=embeds,
            ).cpu()
            if cfg:
                uncond, text = noise_pred.chunk(2)
                noise_pred = uncond + guidance * (text - uncond)
            latents = scheduler.step(
                noise_pred, t, latents, generator=generators, return_dict=False
            )[0]
            if blend is not None:
                latents = blend.blend(scheduler, i, latents)
            if hooks.on_step(i + 1, total):  # raises Cancelled: no decode
                side = request.preview.max_side
                own = self.preview_factors
                latent = latents.numpy()
                hooks.on_preview(i + 1, preview.project(latent, self.spec.family, side, own))
        image = self.graphs["vae_decoder"](
            (n, 3, request.height, request.width), latents=latents / self.scaling
        ).cpu()
        image = (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        return [np.asarray(img, dtype=np.float32) for img in image]

    def _init_latents(
        self, request: GenerationRequest, inputs: DecodedInputs, generators: list[Any]
    ) -> tuple[Any, Any]:
        """The img2img pipeline's ``prepare_latents``: encode once, sample per generator.
        Returns the samples and the posterior's mean (1, C, h, w), both scaled."""
        import torch
        from diffusers.utils.torch_utils import randn_tensor
        from PIL import Image

        assert inputs.init_rgb is not None
        size = (request.width, request.height)
        pil = Image.fromarray(inputs.init_rgb).resize(size, Image.Resampling.LANCZOS)
        pixels = np.asarray(pil.convert("RGB")).astype(np.float32) / 255.0
        image = torch.from_numpy(pixels * 2.0 - 1.0).permute(2, 0, 1)[None]
        latent_shape = (
            1,
            2 * self.channels,
            request.height // self.scale,
            request.width // self.scale,
        )
        moments = self.graphs["vae_encoder"](latent_shape, image=image).cpu()
        mean, logvar = moments.chunk(2, dim=1)
        std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
        samples = [
            mean + std * randn_tensor(mean.shape, generator=g, dtype=mean.dtype) for g in generators
        ]
        return self.scaling * torch.cat(samples), self.scaling * mean


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / ONNX_MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NotFound(f"no readable ONNX export at {folder} ({type(exc).__name__})") from None
    missing = [c for c in manifest.get("components", {}).values() if not (folder / c).is_file()]
    if missing or "components" not in manifest:
        raise NotFound(f"ONNX export at {folder} is incomplete (missing {', '.join(missing)})")
    return manifest


class OnnxBackend:
    name = "onnx"

    def load(self, spec: ModelSpec, options: LoadOptions) -> LoadedModel:
        folder = Path(spec.source).expanduser()
        manifest = read_manifest(folder)
        if importlib.util.find_spec("onnxruntime") is None:
            raise FailedPrecondition(
                "onnx: ONNX Runtime is not installed: pip install 'pixelkiln[cpu]' "
                "(or 'pixelkiln[cuda]' on NVIDIA GPUs; never both)"
            )
        if manifest.get("family", "sd") != "sd":
            raise NotFound(f"the onnx backend runs SD-family exports; {folder} is not one")
        model = OnnxModel(spec, folder, manifest, options.device)
        log.info("loaded %s from %s with %s", spec.name, folder, model.providers[0])
        return model
