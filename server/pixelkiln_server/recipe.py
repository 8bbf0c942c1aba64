"""Recipes: the resolved request plus what else decides the pixels, as canonical JSON.

The same JSON travels in Result.recipe.json, in the PNG's "pixelkiln" text chunk, and into
``pixelkiln replay``; :func:`request_from_dict` turns it back into a request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields, is_dataclass, replace
from enum import Enum
from typing import Any

from . import __version__
from .types import (
    Background,
    EncodedImage,
    Encoding,
    GenerationRequest,
    MapSettings,
    PreviewOptions,
    Recipe,
    Tiling,
)

RECIPE_FORMAT = "pixelkiln.recipe/1"
# Request fields that do not change the pixels, left out of the recipe.
_NOT_IN_RECIPE = {
    "init_image",
    "mask",
    "preview",
    "client_request_id",
    "priority",
    "stream_id",
}


def sha256(image: EncodedImage | None) -> str:
    return hashlib.sha256(image.data).hexdigest() if image is not None else ""


def make_recipe(
    request: GenerationRequest,
    revision: str,
    device: str,
    dtype: str,
    batch_images: int = 1,
    runtime: str = "torch",
) -> Recipe:
    return Recipe(
        request=replace(request, init_image=None, mask=None),
        model_revision=revision,
        pixelkiln_version=__version__,
        device=device,
        dtype=dtype,
        init_image_sha256=sha256(request.init_image),
        mask_sha256=sha256(request.mask),
        batch_images=batch_images,
        runtime=runtime,
    )


def _plain(value: Any) -> Any:
    """``dataclasses.asdict``'s form of one field's value (only what a recipe keeps is
    converted: asdict of the whole request deep-copied its images and previews first)."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, tuple | list):
        return type(value)(_plain(v) for v in value)
    return value


def to_dict(recipe: Recipe) -> dict[str, Any]:
    request = recipe.request
    req = {}
    for f in fields(request):
        if f.name in _NOT_IN_RECIPE:
            continue
        v = _plain(getattr(request, f.name))
        req[f.name] = v.value if isinstance(v, Enum) else list(v) if isinstance(v, tuple) else v
    # LoRA scales by adapter name; absent when the model has no adapters (older recipes).
    req.pop("loras", None)
    if recipe.request.loras:
        req["loras"] = dict(recipe.request.loras)
    out: dict[str, Any] = {
        "format": RECIPE_FORMAT,
        "request": req,
        "model_revision": recipe.model_revision,
        "pixelkiln_version": recipe.pixelkiln_version,
        "device": recipe.device,
        "dtype": recipe.dtype,
        "init_image_sha256": recipe.init_image_sha256,
        "mask_sha256": recipe.mask_sha256,
    }
    if recipe.batch_images > 1:  # only micro-batched results carry it
        out["batch_images"] = recipe.batch_images
    if recipe.runtime != "torch":  # only results of ONNX Runtime carry it
        out["runtime"] = recipe.runtime
    return out


def to_json(recipe: Recipe) -> str:
    return json.dumps(to_dict(recipe), sort_keys=True, separators=(",", ":"))


def from_dict(data: dict[str, Any]) -> Recipe:
    if data.get("format") != RECIPE_FORMAT:
        raise ValueError(f"not a PixelKiln recipe (format {data.get('format')!r})")
    return Recipe(
        request=request_from_dict(data["request"]),
        model_revision=data.get("model_revision", ""),
        pixelkiln_version=data.get("pixelkiln_version", ""),
        device=data.get("device", ""),
        dtype=data.get("dtype", ""),
        init_image_sha256=data.get("init_image_sha256", ""),
        mask_sha256=data.get("mask_sha256", ""),
        batch_images=int(data.get("batch_images", 1)),
        runtime=str(data.get("runtime", "torch")),
    )


def request_from_dict(data: dict[str, Any]) -> GenerationRequest:
    known = {f.name for f in fields(GenerationRequest)} - _NOT_IN_RECIPE
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown recipe fields: {', '.join(sorted(unknown))}")
    values = dict(data)
    if "output_encoding" in values:
        values["output_encoding"] = Encoding(values["output_encoding"])
    if "tiling" in values:
        values["tiling"] = Tiling(values["tiling"])
    if "background" in values:
        values["background"] = Background(values["background"])
    if "maps" in values:
        values["maps"] = tuple(values["maps"])
    if "map_settings" in values:
        values["map_settings"] = MapSettings(**values["map_settings"])
    if "loras" in values:
        values["loras"] = tuple(sorted((str(k), float(v)) for k, v in values["loras"].items()))
    return GenerationRequest(preview=PreviewOptions(), **values)
