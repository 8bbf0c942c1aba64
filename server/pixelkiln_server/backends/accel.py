"""Speed options of a diffusers model (:class:`~pixelkiln_server.model_options.ModelOptions`),
applied by ``diffusers_backend`` while the model loads, in this order:

1. :func:`check` fails fast, before any weights load, on what this device or this install
   cannot do (the error names the option).
2. LoRA adapters (``lora.py``), so that everything after sees the final modules.
3. :func:`apply_modules`: the attention processor (``sdpa``: AttnProcessor2_0 on UNet families;
   DiT families dispatch to SDPA natively), fused QKV projections, channels_last.
4. :func:`quantize` the denoiser with torchao (``fp8-dynamic``, ``int8-dynamic``,
   ``int8-weight``, ``nf4``), on the device (before offloading hooks when offloading).
5. :func:`place`: ``pipe.to(device)``, or CPU offload (``model``: whole components move to the
   GPU when used; ``sequential``: layer by layer, slowest, least memory).
6. :func:`compile_denoiser` (``mode="max-autotune-no-cudagraphs"`` on CUDA,
   ``"reduce-overhead"`` with ``cuda_graphs``, inductor's default mode on the CPU), then the
   backend warms it up with one call at the native size. Shapes stay static: another size,
   batch or CFG setting recompiles once when first seen; tiled requests (circular padding)
   recompile once per tiling mode; a new LoRA scale combination may recompile.

The tiny VAE (:func:`load_tiny_vae`, a TAESD-family ``AutoencoderTiny`` folder) stays beside
the pipeline: it decodes step previews, and with ``tiny_vae_decode`` the final latents of
live-priority requests.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..catalogue import DIT_FAMILIES
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..model_options import ModelOptions
from . import lora

log = logging.getLogger(__name__)

FP8_MIN_CAPABILITY = (8, 9)
# torchao's NF4 tensor quantizes blocks of 64 values with 256 scalers per block of scalers.
NF4_BLOCK = 64 * 256


def resolve(options: ModelOptions, device: str) -> ModelOptions:
    """Automatic (None) settings made concrete for a device: channels_last and fuse_qkv on
    CUDA (fuse_qkv off with LoRA adapters), sdpa everywhere."""
    cuda = device.startswith("cuda")
    return replace(
        options,
        channels_last=cuda if options.channels_last is None else options.channels_last,
        fuse_qkv=(cuda and not options.loras) if options.fuse_qkv is None else options.fuse_qkv,
        sdpa=True if options.sdpa is None else options.sdpa,
    )


def check(options: ModelOptions, device: str) -> None:
    """Refuse, naming the option, what this device or install cannot do."""
    cuda = device.startswith("cuda")
    if options.cuda_graphs and not cuda:
        raise FailedPrecondition(f"cuda_graphs: needs a CUDA device; this model runs on {device}")
    if options.offload and not cuda:
        raise FailedPrecondition(
            f"offload: CPU offload needs a CUDA device; this model runs on {device}"
        )
    if options.quantize:
        _check_quantize(options.quantize, device)
    if options.loras:
        lora.check_available()
    if options.tiny_vae and not (Path(options.tiny_vae).expanduser() / "config.json").is_file():
        raise NotFound(
            f"tiny_vae: no AutoencoderTiny folder at {options.tiny_vae} (config.json missing)"
        )


def _check_quantize(mode: str, device: str) -> None:
    try:
        import torchao  # noqa: F401
    except ImportError:
        raise FailedPrecondition(
            f"quantize: {mode} needs torchao (pip install 'pixelkiln[quant]'); not installed"
        ) from None
    if mode == "fp8-dynamic":
        import torch

        if not device.startswith("cuda"):
            raise FailedPrecondition(
                "quantize: fp8-dynamic needs a CUDA GPU of compute capability 8.9+ (Ada, "
                f"Hopper); this model runs on {device}"
            )
        capability = torch.cuda.get_device_capability(device)
        if capability < FP8_MIN_CAPABILITY:
            raise FailedPrecondition(
                "quantize: fp8-dynamic needs compute capability 8.9+ (Ada, Hopper); "
                f"{torch.cuda.get_device_name(device)} has {capability[0]}.{capability[1]}"
            )
    elif not (device.startswith("cuda") or device == "cpu"):
        raise FailedPrecondition(f"quantize: {mode} runs on CUDA or the CPU, not on {device}")


def denoiser(pipe: Any) -> Any:
    """The UNet or the transformer: the part that runs once per step."""
    return getattr(pipe, "unet", None) or pipe.transformer


def load_tiny_vae(path: str, dtype: Any) -> Any:
    from diffusers import AutoencoderTiny

    try:
        vae = AutoencoderTiny.from_pretrained(str(Path(path).expanduser()), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise NotFound(f"tiny_vae: cannot load an AutoencoderTiny from {path}: {exc}") from exc
    return vae.to(dtype=dtype).eval()


def check_tiny_vae(pipe: Any, tiny_vae: Any) -> None:
    """The tiny VAE must speak the model's latent space (taesd for SD, taesdxl for SDXL,
    taef1 for FLUX's 16 channels)."""
    want = getattr(getattr(pipe, "vae", None), "config", None)
    want_channels = getattr(want, "latent_channels", None)
    have = tiny_vae.config.latent_channels
    if want_channels is not None and have != want_channels:
        raise InvalidArgument(
            "tiny_vae",
            f"has {have} latent channels; this model's VAE has {want_channels} (taesd for SD, "
            "taesdxl for SDXL, taef1 for FLUX)",
        )


def apply_modules(pipe: Any, options: ModelOptions, family: str, tiny_vae: Any) -> ModelOptions:
    """Attention processor, fused QKV, channels_last (``options`` resolved); returns the
    options as applied (fuse_qkv off where the denoiser cannot fuse)."""
    import torch

    unet_family = family not in DIT_FAMILIES and getattr(pipe, "unet", None) is not None
    vae = getattr(pipe, "vae", None)
    if unet_family:
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        processor = AttnProcessor2_0 if options.sdpa else AttnProcessor
        pipe.unet.set_attn_processor(processor())
        if vae is not None and hasattr(vae, "set_attn_processor"):
            vae.set_attn_processor(processor())
    else:
        options = replace(options, sdpa=True)  # DiT attention dispatches to SDPA itself
    if options.fuse_qkv:
        if unet_family:
            pipe.fuse_qkv_projections()
        elif hasattr(denoiser(pipe), "fuse_qkv_projections"):
            denoiser(pipe).fuse_qkv_projections()
        else:
            log.info("fuse_qkv: %s cannot fuse; left off", type(denoiser(pipe)).__name__)
            options = replace(options, fuse_qkv=False)
    if options.channels_last:
        for module in (getattr(pipe, "unet", None), vae, tiny_vae):
            if module is not None:
                module.to(memory_format=torch.channels_last)
    return options


def quantize(module: Any, mode: str) -> str:
    """Quantize ``module``'s linear layers in place with torchao; returns what was done."""
    import torch
    from torchao import quantization as q

    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    if mode == "nf4":
        # Weight-only 4-bit storage (NF4, as QLoRA); dequantized on the fly in each matmul.
        done = 0
        for layer in linears:
            if layer.weight.numel() % NF4_BLOCK == 0:
                nf4 = q.to_nf4(layer.weight.detach())
                layer.weight = torch.nn.Parameter(nf4, requires_grad=False)
                done += 1
        return f"nf4 ({done} of {len(linears)} linear layers)"
    configs = {
        "fp8-dynamic": q.Float8DynamicActivationFloat8WeightConfig,
        "int8-dynamic": q.Int8DynamicActivationInt8WeightConfig,
        "int8-weight": q.Int8WeightOnlyConfig,
    }

    def eligible(layer: Any, _fqn: str) -> bool:
        # fp8 matmuls want both dimensions divisible by 16.
        return isinstance(layer, torch.nn.Linear) and (
            mode != "fp8-dynamic" or (layer.in_features % 16 == 0 and layer.out_features % 16 == 0)
        )

    done = sum(1 for layer in linears if eligible(layer, ""))
    q.quantize_(module, configs[mode](), filter_fn=eligible)
    return f"{mode} ({done} of {len(linears)} linear layers)"


def place(pipe: Any, options: ModelOptions, device: str) -> None:
    if options.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif options.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)


def compile_mode(options: ModelOptions, device: str) -> str:
    if options.cuda_graphs:
        return "reduce-overhead"
    return "max-autotune-no-cudagraphs" if device.startswith("cuda") else "default"


def compile_denoiser(pipe: Any, options: ModelOptions, device: str) -> None:
    """torch.compile the denoiser in place (the module keeps its type, so from_pipe, tiling
    and LoRA keep working); the backend's warm-up call compiles it."""
    mode = compile_mode(options, device)
    log.info("compiling the denoiser (mode=%s); the warm-up call compiles it", mode)
    denoiser(pipe).compile(mode=mode)


def report(options: ModelOptions, device: str, quantized: str = "") -> dict[str, str]:
    """The active options as strings, for Status (keys as the CLI's flags, in snake_case)."""

    def flag(value: bool | None) -> str:
        return "true" if value else "false"

    return {
        "channels_last": flag(options.channels_last),
        "fuse_qkv": flag(options.fuse_qkv),
        "sdpa": flag(options.sdpa),
        "compile": compile_mode(options, device) if options.compile else "false",
        "cuda_graphs": flag(options.cuda_graphs),
        "quantize": quantized or options.quantize,
        "tiny_vae": options.tiny_vae,
        "tiny_vae_decode": flag(options.tiny_vae_decode),
        "offload": options.offload,
        "loras": ",".join(f"{a.name}={a.scale:g}" for a in options.loras),
    }
