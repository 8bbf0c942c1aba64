"""Loading a diffusers pipeline: device and dtype, the source (hub id with the local cache
first, folder, single file), the scheduler preset, and what a folder's ``pixelkiln.json`` asks
for (circular padding as trained)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..catalogue import DIT_FAMILIES, ModelSpec
from ..errors import NotFound, PermissionDenied
from ..folder_meta import FolderMeta, read_meta
from . import tiling
from .base import LoadOptions
from .folder_faults import folder_failure, is_local_path
from .load_errors import hub_failure, not_cached_offline


def _mps_available(torch: Any) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(preference: str = "auto") -> str:
    """The device for ``--device auto``: CUDA (Windows, Linux), else MPS (Apple Silicon,
    macOS 12.3+), else the CPU (every OS). Any other preference is taken as given."""
    import torch

    if preference != "auto":
        return preference
    if torch.cuda.is_available():
        return "cuda"
    if _mps_available(torch):
        return "mps"
    return "cpu"


def auto_devices() -> list[str]:
    """The devices for ``--devices auto``, one runner each: every CUDA device
    (``["cuda:0", "cuda:1"]``), else ``["mps"]`` (one GPU on a Mac), else ``["cpu"]``."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available(torch):
        return ["mps"]
    return ["cpu"]


def mps_supports_bf16() -> bool:
    """bf16 on MPS needs macOS 14 (Sonoma) or newer: torch refuses it before ("MPS BFloat16 is
    only supported on MacOS 14 or newer"), and M1/M2 emulate it (no speed gain)."""
    import platform

    release = platform.mac_ver()[0]
    try:
        return int(release.split(".")[0]) >= 14
    except ValueError:  # not macOS
        return False


def device_total_memory(device: str) -> int | None:
    """Total memory of a CUDA device in bytes; None elsewhere."""
    import torch

    if not device.startswith("cuda"):
        return None
    return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)


def pick_dtype(device: str, family: str, preference: str = "auto") -> Any:
    """``auto``: fp16 for UNet families on CUDA and MPS; bf16 for DiT families (FLUX, Z-Image:
    fp16 overflows in them) on CUDA that supports it and on MPS from macOS 14, else fp32 on
    MPS; fp32 on the CPU."""
    import torch

    named = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if preference != "auto":
        if preference not in named:
            raise ValueError(f"dtype must be one of auto, {', '.join(named)}; got {preference!r}")
        return named[preference]
    if device.startswith("cuda"):
        if family in DIT_FAMILIES and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    if device == "mps":
        if family in DIT_FAMILIES:
            return torch.bfloat16 if mps_supports_bf16() else torch.float32
        return torch.float16
    return torch.float32


def dtype_name(dtype: Any) -> str:
    return {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}.get(
        str(dtype), str(dtype)
    )


def _offline(options: LoadOptions) -> bool:
    return options.offline or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false")


def apply_scheduler(pipe: Any, preset: str) -> None:
    if preset == "euler-trailing":
        from diffusers import EulerDiscreteScheduler

        pipe.scheduler = EulerDiscreteScheduler.from_config(
            pipe.scheduler.config, timestep_spacing="trailing"
        )


# torch's CPU allocator aligns to 64 bytes; MKL's sgemm sums in another order when a weight
# is not 16-byte aligned (a Linear's output moved by ~2e-6 at 4-byte alignment, measured with
# torch 2.13 on AVX-512), so the same weights at another address gave other pixels.
WEIGHT_ALIGNMENT = 64


def align_weights(pipe: Any) -> int:
    """Copy every parameter and buffer of the pipeline's modules that is not at a 64-byte
    aligned address into memory of its own; returns how many were copied.

    ``from_single_file`` hands the model the tensors of ``safetensors.torch.load_file``, which
    (safetensors 0.8) sit at 4-byte alignment, whereas a folder load copies into aligned
    parameters: without this the same checkpoint gave other bytes from a single file than
    from a folder."""
    import torch

    copied = 0
    for component in getattr(pipe, "components", {}).values():
        if not isinstance(component, torch.nn.Module):
            continue
        tensors = [*component.parameters(), *component.buffers()]
        for tensor in tensors:
            if tensor.device.type == "cpu" and tensor.data_ptr() % WEIGHT_ALIGNMENT:
                tensor.data = tensor.data.clone(memory_format=torch.preserve_format)
                copied += 1
    return copied


def load_pipeline(spec: ModelSpec, dtype: Any, options: LoadOptions) -> Any:
    """The pipeline of ``spec`` with its weights at aligned addresses (see ``align_weights``)."""
    pipe = _load_pipeline(spec, dtype, options)
    align_weights(pipe)
    return pipe


def _load_pipeline(spec: ModelSpec, dtype: Any, options: LoadOptions) -> Any:
    import diffusers

    kwargs: dict[str, Any] = {"torch_dtype": dtype}
    if spec.family == "sd":
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    # The daemon's own guarantee, below the front's policy: safetensors weights only.
    pickled = spec.single_file and not spec.source.endswith(".safetensors")
    if pickled and not options.allow_pickle:
        raise PermissionDenied(
            f"{spec.source} is a pickle-based checkpoint; convert it to .safetensors or "
            "start the daemon with --allow-pickle"
        )
    if spec.single_file:
        cls = (
            diffusers.StableDiffusionXLPipeline
            if spec.family == "sdxl"
            else diffusers.StableDiffusionPipeline
        )
        if spec.config:
            kwargs["config"] = spec.config
        try:
            return cls.from_single_file(spec.source, local_files_only=_offline(options), **kwargs)
        except (OSError, ValueError) as exc:
            raise NotFound(
                f"cannot load {spec.source} as a single-file checkpoint ({type(exc).__name__}); "
                "put its config folder beside it as <name>/ or run online once"
            ) from exc
    local = Path(spec.source).is_dir()
    if not local and is_local_path(spec.source):
        # A registered folder gone since: never a hub id (diffusers would ask the hub for it).
        raise folder_failure(spec, None, options.allow_pickle)
    if not options.allow_pickle:
        # diffusers passes it on to every component (0.42; not in 0.30, its issue #11601).
        kwargs["use_safetensors"] = True
    if spec.revision and not local:
        kwargs["revision"] = spec.revision
    auto = diffusers.AutoPipelineForText2Image
    # The local cache first, so a model downloaded once never touches the network again.
    try:
        return auto.from_pretrained(spec.source, local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        if local:
            # What is wrong with the folder itself: the hub's advice cannot help it.
            raise folder_failure(spec, exc, options.allow_pickle) from exc
        if _offline(options):
            raise not_cached_offline(spec) from exc
    try:
        return auto.from_pretrained(spec.source, **kwargs)
    except Exception as exc:
        # diffusers turns a 404, a gated repo and an unreachable hub into OSError
        # (EnvironmentError) over huggingface_hub's own error; none is the daemon's fault.
        if not from_hub(exc):
            raise
        raise hub_failure(spec, exc) from exc


def from_hub(exc: BaseException) -> bool:
    """Whether ``exc`` is a download's failure (an OSError or ValueError from diffusers,
    huggingface_hub's errors, a transport error of httpx or requests), not a bug."""
    from huggingface_hub.errors import EntryNotFoundError

    if isinstance(exc, OSError | ValueError | EntryNotFoundError):
        return True
    return type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3")


def folder_meta(spec: ModelSpec) -> FolderMeta | None:
    """The ``pixelkiln.json`` of a folder source; None for other sources."""
    folder = Path(spec.source)
    if spec.single_file or not folder.is_dir():
        return None
    try:
        return read_meta(folder)
    except ValueError as exc:
        raise NotFound(f"cannot load {spec.name!r}: {exc}") from None


def apply_padding(pipe: Any, meta: FolderMeta | None) -> int:
    """Circular padding on the UNet and the VAE when the folder says the model was trained
    so. Returns how many convolutions were switched."""
    if meta is None or meta.padding != "circular":
        return 0
    parts = (getattr(pipe, "unet", None), getattr(pipe, "vae", None))
    return tiling.set_circular(*(m for m in parts if m is not None))
