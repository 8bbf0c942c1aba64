"""Game-ready outputs: transparent sprites, derived maps, seam reports, atlases.

Runs on the worker after the model: float images in, encoded outputs out. The model sees
:func:`model_prompt` (the prompt plus the key-colour background for sprites); the recipe
keeps the client's own prompt, so a replay takes the same path.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from .errors import InvalidArgument
from .imaging import atlas as atlases
from .imaging import codec, matte, seam
from .imaging import maps as pbr
from .types import (
    MAP_KINDS,
    AtlasImage,
    Background,
    Encoding,
    GenerationRequest,
    OutputImage,
    SeamInfo,
    Tiling,
)

LOSSLESS = (Encoding.PNG, Encoding.RAW_RGBA8)
WITH_ALPHA = (Encoding.PNG, Encoding.WEBP, Encoding.RAW_RGBA8)
MAX_TRIM_PADDING = 256


def validate(req: GenerationRequest, tiling_method: str) -> GenerationRequest:
    """Reject asset options that cannot be honoured; returns the request with maps deduped
    (first occurrence kept, in order: ``normal,normal,height`` derives two maps, not three)."""
    maps = unique_maps(req.maps)
    if maps != req.maps:
        req = replace(req, maps=maps)
    unknown = [m for m in req.maps if m not in MAP_KINDS]
    if unknown:
        raise InvalidArgument("maps", f"unknown kind {unknown[0]}; allowed: {', '.join(MAP_KINDS)}")
    if req.maps and req.output_encoding not in LOSSLESS:
        raise InvalidArgument(
            "maps",
            f"derived maps need a lossless output_encoding (PNG or RAW_RGBA8), got "
            f"{req.output_encoding.value.upper()}",
        )
    try:
        options(req).validate()
    except ValueError as exc:
        raise InvalidArgument("map_settings", str(exc)) from None
    if req.background is Background.TRANSPARENT and req.output_encoding not in WITH_ALPHA:
        raise InvalidArgument(
            "output_encoding", "JPEG cannot carry transparency; use PNG, WEBP or RAW_RGBA8"
        )
    if req.trim and req.background is not Background.TRANSPARENT:
        raise InvalidArgument("sprite.trim", "only applies with background TRANSPARENT")
    if req.trim_padding and not req.trim:
        raise InvalidArgument(
            "sprite.padding",
            f"pads the trimmed sprite, so it needs sprite.trim; got padding "
            f"{req.trim_padding} without trim",
        )
    if not 0 <= req.trim_padding <= MAX_TRIM_PADDING:
        raise InvalidArgument(
            "sprite.padding", f"must be between 0 and {MAX_TRIM_PADDING}, got {req.trim_padding}"
        )
    if req.atlas and req.num_images < 2:
        raise InvalidArgument("atlas", f"needs num_images >= 2, got {req.num_images}")
    if req.tiling is not Tiling.NONE and req.mask is not None and tiling_method != "circular":
        raise InvalidArgument(
            "mask",
            "tiling on this model family inpaints the seam cross itself and cannot also honour "
            "an inpainting mask; drop the mask or the tiling",
        )
    return req


def unique_maps(maps: tuple[str, ...]) -> tuple[str, ...]:
    """``maps`` without repeats, in the order first asked for."""
    return tuple(dict.fromkeys(maps))


def options(req: GenerationRequest) -> pbr.MapOptions:
    s = req.map_settings
    return pbr.MapOptions(
        s.height_blur, s.normal_strength, s.convention, s.ao_radius, s.ao_strength
    )


def model_prompt(req: GenerationRequest) -> str:
    if req.background is Background.TRANSPARENT:
        return req.prompt + matte.key_prompt_suffix(matte.choose_key_color(req.prompt))
    return req.prompt


def _seam(rgb: np.ndarray, tiling: Tiling) -> SeamInfo | None:
    if tiling is Tiling.NONE:
        return None
    report = seam.seam_metric(rgb, tiling.value)
    scale = 255.0 if rgb.dtype != np.uint8 else 1.0
    return SeamInfo(report.edge * scale, report.interior * scale, report.ratio)


def _indexed(text: dict[str, str] | None, index: int, count: int) -> dict[str, str] | None:
    """Each image of a batch carries the batch's recipe with its own ``image_index``: a replay
    of one PNG runs the batch it came from (its pixels depend on it) and keeps that image."""
    if text is None or count < 2 or codec.RECIPE_PNG_KEY not in text:
        return text
    recipe = json.loads(text[codec.RECIPE_PNG_KEY])
    recipe["image_index"] = index
    return {**text, codec.RECIPE_PNG_KEY: json.dumps(recipe, sort_keys=True, separators=(",", ":"))}


def build_outputs(
    req: GenerationRequest, images: list[np.ndarray], text: dict[str, str], wraps: bool = False
) -> tuple[list[OutputImage], AtlasImage | None]:
    """Encode each image (with its maps, seam report, matte and trim) and the atlas if asked.
    ``wraps``: the model's every output tiles (the shipped one: circular padding), so its maps
    are derived across the edges as with ``tiling`` XY (else the albedo tiled and the normal
    map showed a seam)."""
    assert req.seed is not None
    outputs: list[OutputImage] = []
    pixels_for_atlas: list[np.ndarray] = []
    sources: list[tuple[int, int]] = []  # each image's size before a trim
    png_text = text if req.output_encoding is Encoding.PNG else None
    for index, image in enumerate(images):
        rgb = codec.to_uint8(image)
        pixels = rgb
        trim_box = None
        if req.background is Background.TRANSPARENT:
            pixels = matte.KeyColorMatter()(rgb, req.prompt)
            if req.trim:
                pixels, trim_box = matte.trim(pixels, req.trim_padding)
        derived = {}
        if req.maps:
            wrap_x, wrap_y = req.tiling.wrap_x or wraps, req.tiling.wrap_y or wraps
            maps = pbr.derive_maps(rgb, list(req.maps), options(req), wrap_x, wrap_y)
            derived = {kind: codec.encode(m, req.output_encoding) for kind, m in maps.items()}
        outputs.append(
            OutputImage(
                image=codec.encode(
                    np.ascontiguousarray(pixels),
                    req.output_encoding,
                    text=_indexed(png_text, index, len(images)),
                ),
                seed=(req.seed + index) % 2**64,
                index=index,
                maps=derived,
                seam=_seam(rgb, req.tiling),
                trim_box=trim_box,
            )
        )
        pixels_for_atlas.append(pixels)
        sources.append((rgb.shape[1], rgb.shape[0]))
    atlas = None
    if req.atlas:
        names = [f"frame_{o.index:03d}" for o in outputs]
        trims = [
            (o.trim_box, source) if o.trim_box is not None else None
            for o, source in zip(outputs, sources, strict=True)
        ]
        sheet, frames = atlases.pack_atlas(
            pixels_for_atlas, names, [o.seed for o in outputs], trims=trims
        )
        atlas = AtlasImage(
            image=codec.encode(sheet, Encoding.PNG, text=text),
            frames_json=json.dumps(frames, sort_keys=True),
        )
    return outputs, atlas
