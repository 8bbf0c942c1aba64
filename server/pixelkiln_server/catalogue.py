"""The model catalogue: named presets, plus any diffusers checkpoint by hub id or path."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import NotFound

TINY_RANDOM_SOURCE = "builtin:tiny-random"
DIT_FAMILIES = ("flux", "z-image")

# diffusers pipeline class -> family
_FAMILY_BY_CLASS = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionImg2ImgPipeline": "sd",
    "StableDiffusionInpaintPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "FluxPipeline": "flux",
    "ZImagePipeline": "z-image",
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

    @property
    def tiling_method(self) -> str:
        """Circular padding works on UNet families; DiT families shift and inpaint the seam."""
        if self.tiling:
            return self.tiling
        return "offset-inpaint" if self.family in DIT_FAMILIES else "circular"

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
        family = "sdxl" if "xl" in source.lower() else "sd"
    else:
        raise NotFound(
            f"model {source!r} is not a preset ({', '.join(sorted(PRESETS))}), "
            "a folder, a .safetensors file or a hub id"
        )
    native = 1024 if family in ("sdxl", "flux", "z-image") else 512
    return ModelSpec(
        name=name,
        family=family,
        source=str(path) if path.exists() else source,
        native_width=native,
        native_height=native,
        config=config,
    )


def lookup(name: str, extra: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """A preset or registered model by name, else a spec for ``name`` as a source."""
    if extra and name in extra:
        return extra[name]
    if name in PRESETS:
        return PRESETS[name]
    return spec_for_source(name, name)


def with_source(spec: ModelSpec, source: str) -> ModelSpec:
    return replace(spec, source=source)
