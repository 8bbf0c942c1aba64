"""The model catalogue: named presets, plus any diffusers checkpoint by hub id or path."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from .capabilities import Capabilities, declared
from .errors import InvalidArgument, NotFound
from .folder_meta import read_meta
from .model_options import ModelOptions

TINY_RANDOM_SOURCE = "builtin:tiny-random"
# PixelKiln's own model, shipped inside the package (tools/train_texture_model.py made it):
# the default, because it needs no download and makes real pictures on a CPU.
SHIPPED_MODEL = "pixelkiln-textures"
SHIPPED_FOLDER = Path(__file__).resolve().parent / "weights" / SHIPPED_MODEL
ONNX_MANIFEST = "pixelkiln_onnx.json"
DIT_FAMILIES = ("flux", "z-image", "flux2")

# diffusers pipeline class -> family
_FAMILY_BY_CLASS = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionImg2ImgPipeline": "sd",
    "StableDiffusionInpaintPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "FluxPipeline": "flux",
    "ZImagePipeline": "z-image",
    "Flux2KleinPipeline": "flux2",
}


@dataclass(frozen=True)
class ModelSpec:
    """How to load and drive one model. ``scheduler`` names a preset in the backend."""

    name: str
    family: str
    source: str
    backend: str = "diffusers"
    native_width: int = 512
    native_height: int = 512
    default_steps: int = 25
    default_guidance: float = 7.5
    max_steps: int = 50
    scheduler: str = ""
    revision: str = ""
    # Single-file checkpoints: a local folder with the pipeline's configs (no weights needed).
    config: str = ""
    # "" picks by family; "circular" or "offset-inpaint" force a tiling method.
    tiling: str = ""
    # Documentation for operators (not used to load): the diffusers pipeline class, and the
    # weights' memory in GB at the dtype the daemon picks on a GPU (activations come on top).
    pipeline: str = ""
    memory_gb: float = 0.0
    # Seed variations of txt2img (backends/variation.py): a per-seed global share of the
    # initial noise, and a per-seed mirror for models trained on randomly mirrored samples.
    variation_low_freq: float = 0.0
    variation_mirror: bool = False
    # Speed and memory options (compile, quantize, tiny VAE, offload, LoRA adapters, ...).
    options: ModelOptions = field(default_factory=ModelOptions)

    @property
    def tiling_method(self) -> str:
        """Circular padding works on UNet families; DiT families shift and inpaint the seam."""
        if self.tiling:
            return self.tiling
        return "offset-inpaint" if self.family in DIT_FAMILIES else "circular"

    @property
    def capabilities(self) -> Capabilities:
        """What its backend declares a model of this spec can serve (capabilities.py)."""
        return declared(self)

    @property
    def single_file(self) -> bool:
        return self.source.endswith((".safetensors", ".ckpt"))


PRESETS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="tiny-random",
            family="sd",
            source=TINY_RANDOM_SOURCE,
            backend="tiny-random",
            native_width=64,
            native_height=64,
            default_steps=4,
            default_guidance=0.0,
            max_steps=50,
            scheduler="euler-trailing",
            revision="tiny-random-v1-seed0",
            pipeline="StableDiffusionPipeline",
        ),
        # Tiny random-weight variants of the other families, built in code (tiny_families.py).
        ModelSpec(
            name="tiny-sdxl",
            family="sdxl",
            source="builtin:tiny-sdxl",
            backend="tiny-sdxl",
            native_width=64,
            native_height=64,
            default_steps=2,
            default_guidance=0.0,
            scheduler="euler-trailing",
            revision="tiny-sdxl-v1-seed0",
            pipeline="StableDiffusionXLPipeline",
        ),
        ModelSpec(
            name="tiny-flux",
            family="flux",
            source="builtin:tiny-flux",
            backend="tiny-flux",
            native_width=64,
            native_height=64,
            default_steps=2,
            default_guidance=0.0,
            revision="tiny-flux-v1-seed0",
            pipeline="FluxPipeline",
        ),
        ModelSpec(
            name="tiny-flux2-klein",
            family="flux2",
            source="builtin:tiny-flux2-klein",
            backend="tiny-flux2-klein",
            native_width=64,
            native_height=64,
            default_steps=2,
            default_guidance=1.0,
            revision="tiny-flux2-v1-seed0",
            pipeline="Flux2KleinPipeline",
        ),
        ModelSpec(
            name="tiny-z-image",
            family="z-image",
            source="builtin:tiny-z-image",
            backend="tiny-z-image",
            native_width=64,
            native_height=64,
            default_steps=2,
            default_guidance=0.0,
            revision="tiny-z-image-v1-seed0",
            pipeline="ZImagePipeline",
        ),
        # 64x64 native (fully convolutional: larger sizes work), 8 steps, guidance 4, circular
        # padding applied on load (its pixelkiln.json says so), its own preview factors.
        ModelSpec(
            name=SHIPPED_MODEL,
            family="sd",
            source=str(SHIPPED_FOLDER),
            native_width=64,
            native_height=64,
            default_steps=8,
            default_guidance=4.0,
            max_steps=50,
            pipeline="StableDiffusionPipeline",
            memory_gb=0.03,
            # Its variations collapsed (4-7/255 apart for sprites): see backends/variation.py.
            variation_low_freq=0.35,
            variation_mirror=True,
        ),
        ModelSpec(
            name="sd-turbo",
            family="sd",
            source="stabilityai/sd-turbo",
            native_width=512,
            native_height=512,
            default_steps=1,
            default_guidance=0.0,
            max_steps=50,
            scheduler="euler-trailing",
            pipeline="StableDiffusionPipeline",
            memory_gb=2.6,  # fp16: UNet 0.87B, OpenCLIP-H text 0.35B, VAE 0.08B
        ),
        ModelSpec(
            name="sdxl-turbo",
            family="sdxl",
            source="stabilityai/sdxl-turbo",
            native_width=512,
            native_height=512,
            default_steps=1,
            default_guidance=0.0,
            max_steps=50,
            scheduler="euler-trailing",
            pipeline="StableDiffusionXLPipeline",
            memory_gb=6.9,  # fp16: UNet 2.57B, CLIP-L 0.12B + OpenCLIP-bigG 0.69B, VAE 0.08B
        ),
        # FLUX.1-schnell: FluxPipeline, the repo's FlowMatchEulerDiscreteScheduler (shift 1, no
        # dynamic shifting), 1024x1024, 4 steps, guidance 0 (no guidance embedding). Latents
        # are packed (B, seq, 64) and unpacked to (B, 16, h, w) for previews (16-channel map).
        # Tiling: offset-inpaint (FluxInpaintPipeline via from_pipe). bf16 weights: transformer
        # 11.9B (23.8 GB), T5-XXL 4.8B (9.5 GB), CLIP-L 0.12B, VAE 0.08B.
        ModelSpec(
            name="flux.1-schnell",
            family="flux",
            source="black-forest-labs/FLUX.1-schnell",
            native_width=1024,
            native_height=1024,
            default_steps=4,
            default_guidance=0.0,
            max_steps=50,
            pipeline="FluxPipeline",
            memory_gb=33.7,
        ),
        # Z-Image-Turbo: ZImagePipeline, FlowMatchEulerDiscreteScheduler (shift 3) from the repo,
        # 1024x1024, 8 steps = 8 DiT forwards (the card's num_inference_steps=9 predates
        # diffusers' z-image sigmas; in 0.42, 9 steps run 9 forwards), guidance 0. Latents are
        # (B, 16, h, w); previews use the 16-channel map. Tiling: offset-inpaint
        # (ZImageInpaintPipeline). bf16 weights: transformer 6.2B (12.3 GB), Qwen3-4B text
        # encoder (8.0 GB), VAE 0.08B.
        ModelSpec(
            name="z-image-turbo",
            family="z-image",
            source="Tongyi-MAI/Z-Image-Turbo",
            native_width=1024,
            native_height=1024,
            default_steps=8,
            default_guidance=0.0,
            max_steps=50,
            pipeline="ZImagePipeline",
            memory_gb=20.5,
        ),
        # FLUX.2 [klein] 4B (2026-01, Apache-2.0): Flux2KleinPipeline (diffusers 0.37+),
        # step- and guidance-distilled, 4 steps, 1024x1024; a Qwen3-4B text encoder (three of
        # its hidden layers stacked), a 32-channel VAE, latents packed 2x2 to 128 channels.
        # Served here for text-to-image only: its editing takes reference images (``image=``),
        # not PixelKiln's img2img strength, and is not wired yet. bf16 weights: transformer
        # about 3.9B (7.8 GB), Qwen3-4B (8.0 GB), VAE 0.08B.
        ModelSpec(
            name="flux.2-klein",
            family="flux2",
            source="black-forest-labs/FLUX.2-klein-4B",
            native_width=1024,
            native_height=1024,
            default_steps=4,
            default_guidance=1.0,
            max_steps=50,
            pipeline="Flux2KleinPipeline",
            memory_gb=16.0,
        ),
    )
}


def family_of_folder(folder: Path) -> str:
    """Family from a diffusers folder's model_index.json; "sd" when it cannot tell."""
    index = folder / "model_index.json"
    try:
        class_name = json.loads(index.read_text()).get("_class_name", "")
    except (OSError, ValueError):
        return "sd"
    return _FAMILY_BY_CLASS.get(class_name, "sd")


def single_file_config(checkpoint: Path) -> Path | None:
    """The config folder of a single-file checkpoint: ``<stem>/`` or ``<stem>.config/`` beside
    it, holding model_index.json and the component configs. Without one, diffusers fetches the
    reference configs from the hub (or its cache)."""
    for candidate in (checkpoint.with_suffix(""), checkpoint.with_suffix(".config")):
        if (candidate / "model_index.json").is_file():
            return candidate
    return None


def spec_for_source(name: str, source: str) -> ModelSpec:
    """A spec for a checkpoint outside the presets: a folder, a single file or a hub id."""
    path = Path(source).expanduser()
    config = ""
    if path.is_dir() and (path / ONNX_MANIFEST).is_file():
        return _onnx_spec(name, path)
    if path.is_dir():
        family = family_of_folder(path)
    elif path.suffix in (".safetensors", ".ckpt"):
        if not path.is_file():
            raise NotFound(f"model file {source!r} does not exist")
        config_dir = single_file_config(path)
        if config_dir is not None:
            config = str(config_dir)
            family = family_of_folder(config_dir)
        else:
            family = "sdxl" if "xl" in path.name.lower() else "sd"
    elif "/" in source and not source.startswith((".", "/", "~")):
        family = _family_of_hub_id(source)
    else:
        raise NotFound(
            f"model {source!r} is not a preset ({', '.join(sorted(PRESETS))}), "
            "a folder, a .safetensors file or a hub id"
        )
    native = 1024 if family in ("sdxl", *DIT_FAMILIES) else 512
    spec = ModelSpec(
        name=name,
        family=family,
        source=str(path) if path.exists() else source,
        native_width=native,
        native_height=native,
        config=config,
    )
    return _with_folder_defaults(spec, path) if path.is_dir() else spec


def _with_folder_defaults(spec: ModelSpec, folder: Path) -> ModelSpec:
    """Serving defaults from the folder's pixelkiln.json, where it has one."""
    try:
        meta = read_meta(folder)
    except ValueError as exc:
        raise InvalidArgument("model", str(exc)) from None
    if meta is None:
        return spec
    changes: dict[str, object] = {}
    if meta.native_size:
        changes.update(native_width=meta.native_size, native_height=meta.native_size)
    if meta.default_steps:
        changes["default_steps"] = meta.default_steps
    if meta.default_guidance is not None:
        changes["default_guidance"] = meta.default_guidance
    return replace(spec, **changes)  # type: ignore[arg-type]


def _onnx_spec(name: str, folder: Path) -> ModelSpec:
    """An ONNX export (``pixelkiln export-onnx``): the onnx backend, with the family and the
    serving defaults its manifest kept from the source model."""
    try:
        manifest = json.loads((folder / ONNX_MANIFEST).read_text())
        fields = {k: v for k, v in manifest.get("spec", {}).items() if k in _ONNX_SPEC_FIELDS}
        family = str(manifest.get("family", "sd"))
    except (OSError, ValueError, AttributeError):
        raise NotFound(f"{folder / ONNX_MANIFEST} is not a readable ONNX manifest") from None
    return ModelSpec(name=name, family=family, source=str(folder), backend="onnx", **fields)


_ONNX_SPEC_FIELDS = frozenset(
    {"native_width", "native_height", "default_steps", "default_guidance", "max_steps"}
    | {"scheduler", "revision", "variation_mirror", "variation_low_freq", "tiling"}
)


def _family_of_hub_id(source: str) -> str:
    lowered = source.lower()
    if "flux.2" in lowered or "flux2" in lowered:
        return "flux2"
    if "flux" in lowered:
        return "flux"
    if "z-image" in lowered:
        return "z-image"
    return "sdxl" if "xl" in lowered else "sd"


MAX_MODEL_NAME_CHARS = 1024
MAX_PATH_PART_BYTES = 255  # a file name's limit on every common file system


def check_model_name(name: str, field: str = "model") -> None:
    """Refuse a model name that no preset, folder, file or hub id can have, naming ``field``
    and the limit (1,024 characters; 255 bytes of UTF-8 per ``/``-separated part; no control
    characters)."""
    if len(name) > MAX_MODEL_NAME_CHARS:
        raise InvalidArgument(
            field, f"is {len(name)} characters; the limit is {MAX_MODEL_NAME_CHARS}"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidArgument(field, "must not contain control characters")
    for part in name.replace("\\", "/").split("/"):
        size = len(part.encode("utf-8", "surrogatepass"))
        if size > MAX_PATH_PART_BYTES:
            raise InvalidArgument(
                field,
                f"has a part of {size} bytes ({part[:16]!r}...); the limit is "
                f"{MAX_PATH_PART_BYTES} bytes per '/'-separated part",
            )


def lookup(name: str, extra: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """A preset or registered model by name, else a spec for ``name`` as a source."""
    if extra and name in extra:
        return extra[name]
    if name in PRESETS:
        return PRESETS[name]
    check_model_name(name)
    try:
        return spec_for_source(name, name)
    except (OSError, RuntimeError) as exc:  # unreadable, or "~user" of no user (RuntimeError)
        raise NotFound(
            f"model {name!r} is not a preset, a readable folder or file, or a hub id "
            f"({type(exc).__name__})"
        ) from None


def with_source(spec: ModelSpec, source: str) -> ModelSpec:
    return replace(spec, source=source)
