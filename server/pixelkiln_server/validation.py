"""Validate a request against a model and the daemon's limits, filling in every default.

Every error names the field and the allowed range, and maps to INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import replace

from . import assets
from .catalogue import ModelSpec
from .config import Limits
from .errors import InvalidArgument
from .imaging import codec
from .types import DecodedInputs, GenerationRequest, PreviewOptions

MIN_SIDE = 64
SIZE_MULTIPLE = 8
MAX_GUIDANCE = 30.0
MAX_SEED = 2**64 - 1
MAX_CLIENT_ID_CHARS = 128
DEFAULT_IMG2IMG_STRENGTH = 0.5
DEFAULT_PREVIEW_SIDE = 256


def _check_side(field: str, value: int, limits: Limits) -> None:
    if value % SIZE_MULTIPLE or not MIN_SIDE <= value <= limits.max_side:
        raise InvalidArgument(
            field,
            f"must be a multiple of {SIZE_MULTIPLE} between {MIN_SIDE} and {limits.max_side} "
            f"(0 for the model's native size), got {value}",
        )


def _resolve_size(
    req: GenerationRequest, spec: ModelSpec, inputs: DecodedInputs, limits: Limits
) -> tuple[int, int]:
    width, height = req.width, req.height
    if inputs.init_rgb is not None:
        init_h, init_w = inputs.init_rgb.shape[:2]
        width = width or init_w
        height = height or init_h
    width = width or spec.native_width
    height = height or spec.native_height
    _check_side("width", width, limits)
    _check_side("height", height, limits)
    if width * height > limits.max_pixels:
        raise InvalidArgument(
            "width",
            f"{width}x{height} = {width * height} pixels exceeds the limit of "
            f"{limits.max_pixels} pixels",
        )
    return width, height


def _decode_inputs(req: GenerationRequest, limits: Limits) -> DecodedInputs:
    inputs = DecodedInputs()
    if req.mask is not None and req.init_image is None:
        raise InvalidArgument("mask", "inpainting needs init_image as well")
    if req.init_image is not None:
        inputs.init_rgb = codec.decode(
            req.init_image, "init_image", max_pixels=limits.max_input_pixels
        )
    if req.mask is not None:
        inputs.mask = codec.decode(req.mask, "mask", max_pixels=limits.max_input_pixels, mode="L")
        assert inputs.init_rgb is not None
        if inputs.mask.shape != inputs.init_rgb.shape[:2]:
            mh, mw = inputs.mask.shape
            ih, iw = inputs.init_rgb.shape[:2]
            raise InvalidArgument(
                "mask", f"is {mw}x{mh} but init_image is {iw}x{ih}; sizes must match"
            )
    return inputs


def _resolve_strength(req: GenerationRequest, steps: int) -> float | None:
    if req.strength is None:
        if req.init_image is None:
            return None
        strength = 1.0 if req.mask is not None else DEFAULT_IMG2IMG_STRENGTH
    else:
        strength = req.strength
        if req.init_image is None:
            raise InvalidArgument("strength", "needs init_image (strength only applies to img2img)")
    if not (math.isfinite(strength) and 0.0 < strength <= 1.0):
        raise InvalidArgument("strength", f"must be in (0, 1], got {strength}")
    if int(steps * strength) < 1:
        raise InvalidArgument(
            "strength",
            f"steps * strength must be at least 1 (steps={steps}, strength={strength}); "
            "raise steps or strength",
        )
    return strength


def _resolve_preview(preview: PreviewOptions, limits: Limits) -> PreviewOptions:
    side = preview.max_side or DEFAULT_PREVIEW_SIDE
    if not 8 <= side <= limits.max_preview_side:
        raise InvalidArgument(
            "preview.max_side", f"must be between 8 and {limits.max_preview_side}, got {side}"
        )
    if preview.every_n_steps < 0:
        raise InvalidArgument("preview.every_n_steps", "must be >= 0")
    return replace(preview, max_side=side)


def resolve(
    req: GenerationRequest, spec: ModelSpec, limits: Limits
) -> tuple[GenerationRequest, DecodedInputs]:
    """Return the request with every default filled in, and its decoded input images."""
    prompt = req.prompt
    if len(prompt) > limits.max_prompt_chars:
        raise InvalidArgument(
            "prompt", f"is {len(prompt)} characters; the limit is {limits.max_prompt_chars}"
        )
    if len(req.negative_prompt) > limits.max_prompt_chars:
        raise InvalidArgument(
            "negative_prompt",
            f"is {len(req.negative_prompt)} characters; the limit is {limits.max_prompt_chars}",
        )
    if not prompt.strip() and req.init_image is None:
        raise InvalidArgument("prompt", "must not be empty for text-to-image")
    if len(req.client_request_id) > MAX_CLIENT_ID_CHARS:
        raise InvalidArgument("client_request_id", f"is longer than {MAX_CLIENT_ID_CHARS} chars")

    num_images = req.num_images or 1
    if not 1 <= num_images <= limits.max_images:
        raise InvalidArgument(
            "num_images", f"must be between 1 and {limits.max_images}, got {num_images}"
        )
    steps = req.steps or spec.default_steps
    if not 1 <= steps <= spec.max_steps:
        raise InvalidArgument(
            "steps", f"must be between 1 and {spec.max_steps} for {spec.name}, got {steps}"
        )
    guidance = spec.default_guidance if req.guidance_scale is None else req.guidance_scale
    if not (math.isfinite(guidance) and 0.0 <= guidance <= MAX_GUIDANCE):
        raise InvalidArgument(
            "guidance_scale", f"must be between 0 and {MAX_GUIDANCE}, got {guidance}"
        )
    seed = secrets.randbelow(2**32) if req.seed is None else req.seed
    if not 0 <= seed <= MAX_SEED:
        raise InvalidArgument("seed", f"must be between 0 and {MAX_SEED}, got {seed}")

    inputs = _decode_inputs(req, limits)
    width, height = _resolve_size(req, spec, inputs, limits)
    strength = _resolve_strength(req, steps)
    preview = _resolve_preview(req.preview, limits)
    resolved = replace(
        req,
        model=spec.name,
        width=width,
        height=height,
        steps=steps,
        guidance_scale=float(guidance),
        seed=seed,
        num_images=num_images,
        strength=strength,
        preview=preview,
    )
    return assets.validate(resolved, spec.tiling_method), inputs
