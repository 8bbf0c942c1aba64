"""Validate a request against a model and the daemon's limits, filling in every default.

Every error names the field and the allowed range, and maps to INVALID_ARGUMENT. A request the
model cannot serve (its backend's declared capabilities: img2img, inpainting, tiling, LoRA,
sizes) is refused here, before it is accepted and queued.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import replace

from . import assets
from .capabilities import Capabilities
from .catalogue import ModelSpec
from .config import Limits
from .errors import InvalidArgument
from .imaging import codec
from .types import DecodedInputs, GenerationRequest, LiveUpdate, PreviewOptions, Tiling

MAX_GUIDANCE = 30.0
MAX_SEED = 2**64 - 1
PICKED_SEEDS = 2**31  # an unset seed is picked below this (image i's seed too)
MAX_CLIENT_ID_CHARS = 128
MAX_LORA_NAME_CHARS = 128
MAX_LORAS = 16  # adapters in one request (a pipeline fuses a handful; more is a mistake)
DEFAULT_IMG2IMG_STRENGTH = 0.5
DEFAULT_PREVIEW_SIDE = 256
MAX_SIMILAR_SKIP = 1000


def _check_side(field: str, value: int, limits: Limits, caps: Capabilities, name: str) -> None:
    multiple, low = caps.side_multiple, caps.min_side
    high = min(limits.max_side, caps.max_side) if caps.max_side else limits.max_side
    if value % multiple or not low <= value <= high:
        raise InvalidArgument(
            field,
            f"must be a multiple of {multiple} between {low} and {high} for {name} "
            f"(0 for the model's native size), got {value}",
        )


def check_lora_count(count: int) -> None:
    """A request names at most MAX_LORAS adapters (convert.py counts them before converting)."""
    if count > MAX_LORAS:
        raise InvalidArgument(
            "loras", f"at most {MAX_LORAS} adapters in one request, got {count:,}"
        )


def _check_lora_names(req: GenerationRequest) -> None:
    """Adapter names are short: the longest is refused without repeating it (a 100,000-character
    name echoed in the message once overflowed gRPC's metadata limit: RESOURCE_EXHAUSTED), and
    a request names at most MAX_LORAS of them."""
    check_lora_count(len(req.loras))
    longest = max((len(name) for name, _ in req.loras), default=0)
    if longest > MAX_LORA_NAME_CHARS:
        raise InvalidArgument(
            "loras",
            f"adapter names are at most {MAX_LORA_NAME_CHARS} characters, got {longest}",
        )


def _check_capabilities(req: GenerationRequest, spec: ModelSpec, caps: Capabilities) -> None:
    """Refuse what the model's backend declares it cannot do, naming the field."""
    by = f"the {spec.backend} backend (model {spec.name!r})"
    if req.mask is not None and not caps.inpainting:
        raise InvalidArgument("mask", f"inpainting is not supported by {by}; use img2img")
    if req.init_image is not None and not caps.img2img:
        raise InvalidArgument("init_image", f"img2img is not supported by {by}")
    if req.tiling is not Tiling.NONE and not caps.tiling:
        raise InvalidArgument("tiling", f"not supported by {by}; it cannot tile")
    if req.loras and not caps.lora:
        raise InvalidArgument("loras", f"LoRA adapters are not supported by {by}")


def _resolve_size(
    req: GenerationRequest,
    spec: ModelSpec,
    inputs: DecodedInputs,
    limits: Limits,
    caps: Capabilities,
) -> tuple[int, int]:
    width, height = req.width, req.height
    if inputs.init_rgb is not None:
        init_h, init_w = inputs.init_rgb.shape[:2]
        width = width or init_w
        height = height or init_h
    width = width or spec.native_width
    height = height or spec.native_height
    try:
        _check_side("width", width, limits, caps, spec.name)
        _check_side("height", height, limits, caps, spec.name)
    except InvalidArgument as exc:
        if inputs.init_rgb is None or (req.width and req.height):
            raise
        # A side taken from the init image: name the image, not a field the caller never set.
        init_h, init_w = inputs.init_rgb.shape[:2]
        raise InvalidArgument(
            "init_image",
            f"is {init_w}x{init_h}, and the size is taken from it: {exc.message}; resize "
            "it, or give width and height",
        ) from None
    if width * height > limits.max_pixels:
        raise InvalidArgument(
            "width",
            f"{width}x{height} = {width * height} pixels exceeds the limit of "
            f"{limits.max_pixels} pixels",
        )
    return width, height


def decode_inputs(req: GenerationRequest, limits: Limits) -> DecodedInputs:
    """The request's input images decoded (and checked against the input limit)."""
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


def shown(value: float) -> str:
    """A float the wire carried in 32 bits, as the caller wrote it: 0.05, not
    0.05000000074505806 (seven significant digits are all a float32 holds)."""
    return f"{value:.7g}"


def check_strength(strength: float) -> None:
    if not (math.isfinite(strength) and 0.0 < strength <= 1.0):
        raise InvalidArgument("strength", f"must be in (0, 1], got {shown(strength)}")


def _resolve_strength(req: GenerationRequest, steps: int) -> float | None:
    if req.strength is None:
        if req.init_image is None:
            return None
        strength = 1.0 if req.mask is not None else DEFAULT_IMG2IMG_STRENGTH
    else:
        strength = req.strength
        if req.init_image is None:
            raise InvalidArgument("strength", "needs init_image (strength only applies to img2img)")
    check_strength(strength)
    if int(steps * strength) < 1:
        raise InvalidArgument(
            "strength",
            f"steps * strength must be at least 1 (steps={steps}, strength={shown(strength)}); "
            "raise steps or strength",
        )
    return strength


def _resolve_preview(preview: PreviewOptions, limits: Limits, longest: int) -> PreviewOptions:
    """``longest``: the result's longer side, which a preview never exceeds (previews of a
    64x64 texture were drawn at 256x256: 16x the pixels to send, no more detail)."""
    side = preview.max_side or DEFAULT_PREVIEW_SIDE
    if not 8 <= side <= limits.max_preview_side:
        raise InvalidArgument(
            "preview.max_side", f"must be between 8 and {limits.max_preview_side}, got {side}"
        )
    side = min(side, max(longest, 8))
    if preview.every_n_steps < 0:
        raise InvalidArgument("preview.every_n_steps", "must be >= 0")
    if preview.result_only and preview.every_n_steps:
        raise InvalidArgument(
            "preview.result_only",
            "cannot be combined with preview.every_n_steps > 0: previews are events, and "
            "result_only sends none",
        )
    # result_only: no Progress messages from the runner either; no one would see them.
    progress = preview.progress and not preview.result_only
    return replace(preview, max_side=side, progress=progress)


RESULT_OVERHEAD = 16 * 1024  # the recipe, atlas frames, protobuf framing


def _check_request_size(req: GenerationRequest, limits: Limits) -> None:
    """Refuse what would take too much memory, or could not be delivered in one message."""
    pixels = req.width * req.height * req.num_images
    if pixels > limits.max_request_pixels:
        raise InvalidArgument(
            "num_images",
            f"{req.num_images} x {req.width}x{req.height} = {pixels:,} pixels exceeds the "
            f"limit of {limits.max_request_pixels:,} pixels per request "
            "(--max-request-megapixels); ask for fewer or smaller images",
        )
    # The result is one message: each image, each derived map and the atlas, at most RGBA8 raw.
    # A map asked for twice is derived once (assets.validate drops the repeats).
    maps = assets.unique_maps(req.maps)
    planes = 1 + len(maps) + (1 if req.atlas else 0)
    raw = pixels * 4 * planes
    # Beside the pixels the message carries the recipe, the atlas frames and its framing, and a
    # PNG of noise can come out a little larger than raw: a result exactly at the limit was
    # accepted, made, then refused by gRPC ("Sent message larger than max").
    needed = raw + raw // 256 + RESULT_OVERHEAD
    if needed > limits.max_result_bytes:
        what = " with maps " + ",".join(maps) if maps else ""
        what += " and an atlas" if req.atlas else ""
        raise InvalidArgument(
            "num_images",
            f"{req.num_images} x {req.width}x{req.height}{what} needs up to {needed:,} bytes "
            f"(raw RGBA8 and the recipe), over the message limit of "
            f"{limits.max_result_bytes:,} bytes (--max-message-mib): the result could not be "
            "delivered; ask for fewer or smaller images",
        )


def resolve(
    req: GenerationRequest, spec: ModelSpec, limits: Limits, decoded: DecodedInputs | None = None
) -> tuple[GenerationRequest, DecodedInputs]:
    """Return the request with every default filled in, and its decoded input images
    (``decoded``: already decoded by :func:`decode_inputs`, e.g. by a live session)."""
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
    _check_lora_names(req)

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
            "guidance_scale", f"must be between 0 and {MAX_GUIDANCE}, got {shown(guidance)}"
        )
    # A seed the daemon picks leaves every image's seed (seed + i) below 2^31: editors show
    # and take seeds in signed 32-bit fields (Blender's IntProperty, Godot's SpinBox).
    picked = PICKED_SEEDS - num_images + 1
    seed = secrets.randbelow(picked) if req.seed is None else req.seed
    if not 0 <= seed <= MAX_SEED:
        raise InvalidArgument("seed", f"must be between 0 and {MAX_SEED}, got {seed}")
    if seed + num_images - 1 > MAX_SEED:
        # Image i uses seed + i; past 2**64 - 1 it would wrap to small seeds, silently.
        raise InvalidArgument(
            "seed",
            f"image i uses seed + i, so seed + num_images - 1 must be at most {MAX_SEED}; "
            f"got seed {seed} with num_images {num_images}",
        )

    caps = spec.capabilities
    _check_capabilities(req, spec, caps)
    inputs = decoded if decoded is not None else decode_inputs(req, limits)
    width, height = _resolve_size(req, spec, inputs, limits, caps)
    strength = _resolve_strength(req, steps)
    preview = _resolve_preview(req.preview, limits, max(width, height))
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
    _check_request_size(resolved, limits)
    return assets.validate(resolved, caps.tiling[0] if caps.tiling else ""), inputs


def check_live_update(update: LiveUpdate) -> None:
    """The live session's own settings, and strength (it sets a frame's steps before the
    frame's request is checked); the rest is checked with each frame's request."""
    if update.strength is not None:
        check_strength(update.strength)
    threshold = update.similar_skip_threshold
    if threshold is not None and not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise InvalidArgument(
            "similar_skip_threshold",
            f"must be between 0 and 1 (a fraction of full scale; 0: only exact repeats are "
            f"skipped), got {shown(threshold)}",
        )
    most = update.similar_skip_max
    if most is not None and not 0 <= most <= MAX_SIMILAR_SKIP:
        raise InvalidArgument(
            "similar_skip_max", f"must be between 0 (no limit) and {MAX_SIMILAR_SKIP}, got {most}"
        )
