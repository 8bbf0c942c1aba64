"""Protobuf <-> domain conversion: the one place that knows both. Protobuf stops here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import image_pb2 as img_pb
from pixelkiln.v1 import models_pb2 as models_pb

from . import recipe as recipes
from .errors import InvalidArgument
from .types import (
    MAP_KINDS,
    Accepted,
    Background,
    DaemonStatus,
    EncodedImage,
    Encoding,
    Event,
    GenerationRequest,
    LiveFrame,
    LiveInput,
    LiveUpdate,
    MapSettings,
    ModelInfo,
    Preview,
    PreviewOptions,
    Priority,
    Progress,
    Queued,
    Recipe,
    Result,
    Tiling,
    UnloadResult,
)
from .validation import check_lora_count

_ENCODING_TO_PB = {
    Encoding.PNG: img_pb.ENCODING_PNG,
    Encoding.JPEG: img_pb.ENCODING_JPEG,
    Encoding.WEBP: img_pb.ENCODING_WEBP,
    Encoding.RAW_RGBA8: img_pb.ENCODING_RAW_RGBA8,
}
_ENCODING_FROM_PB: dict[int, Encoding] = {v: k for k, v in _ENCODING_TO_PB.items()}
_PRIORITY_FROM_PB = {
    gen_pb.PRIORITY_INTERACTIVE: Priority.INTERACTIVE,
    gen_pb.PRIORITY_BATCH: Priority.BATCH,
    gen_pb.PRIORITY_LIVE: Priority.LIVE,
}
_PRIORITY_TO_PB = {v: k for k, v in _PRIORITY_FROM_PB.items()}
_TILING_FROM_PB = {
    gen_pb.TILING_NONE: Tiling.NONE,
    gen_pb.TILING_X: Tiling.X,
    gen_pb.TILING_Y: Tiling.Y,
    gen_pb.TILING_XY: Tiling.XY,
}
_TILING_TO_PB = {v: k for k, v in _TILING_FROM_PB.items()}
_BACKGROUND_FROM_PB = {
    gen_pb.BACKGROUND_OPAQUE: Background.OPAQUE,
    gen_pb.BACKGROUND_TRANSPARENT: Background.TRANSPARENT,
}
_MAP_TO_PB = {
    "normal": gen_pb.MAP_KIND_NORMAL,
    "height": gen_pb.MAP_KIND_HEIGHT,
    "roughness": gen_pb.MAP_KIND_ROUGHNESS,
    "ao": gen_pb.MAP_KIND_AO,
}
_MAP_FROM_PB: dict[int, str] = {v: k for k, v in _MAP_TO_PB.items()}
_CONVENTIONS: dict[int, str] = {
    gen_pb.NORMAL_CONVENTION_OPENGL: "opengl",
    gen_pb.NORMAL_CONVENTION_DIRECTX: "directx",
}
_DEFAULT_MAPS = MapSettings()
T = TypeVar("T")


def _allowed(enum: Any, prefix: str) -> str:
    """The proto enum's names without their prefix, UNSPECIFIED left out: ``PNG, JPEG``."""
    names = [v.name.removeprefix(prefix) for v in enum.DESCRIPTOR.values]
    names = [n for n in names if n != "UNSPECIFIED"]
    return ", ".join(names)


_ALLOWED = {
    "encoding": _allowed(img_pb.Encoding, "ENCODING_"),
    "priority": _allowed(gen_pb.Priority, "PRIORITY_"),
    "tiling": _allowed(gen_pb.Tiling, "TILING_"),
    "background": _allowed(gen_pb.Background, "BACKGROUND_"),
}


def _known(field: str, value: int, table: Mapping[Any, T], allowed: str) -> T:
    """``table[value]``; a number the proto does not define (a typo, or a newer client's
    value) is refused naming the field, never served as the default."""
    try:
        return table[value]
    except KeyError:
        raise InvalidArgument(field, f"unknown value {value}; allowed: {allowed}") from None


def _map_name(value: int) -> str:
    # An unknown kind (UNSPECIFIED, or a newer client's) is kept as its number so that
    # validation can name it in the error instead of dropping it silently.
    return _MAP_FROM_PB.get(value, f"#{value}")


def map_settings_from_pb(msg: gen_pb.MapSettings) -> MapSettings:
    d = _DEFAULT_MAPS
    return MapSettings(
        height_blur=msg.height_blur if msg.HasField("height_blur") else d.height_blur,
        normal_strength=(
            msg.normal_strength if msg.HasField("normal_strength") else d.normal_strength
        ),
        convention=_CONVENTIONS.get(msg.convention, f"#{msg.convention}"),
        ao_radius=msg.ao_radius if msg.HasField("ao_radius") else d.ao_radius,
        ao_strength=msg.ao_strength if msg.HasField("ao_strength") else d.ao_strength,
    )


def map_settings_to_pb(settings: MapSettings) -> gen_pb.MapSettings:
    conventions: dict[str, Any] = {v: k for k, v in _CONVENTIONS.items()}
    return gen_pb.MapSettings(
        height_blur=settings.height_blur,
        normal_strength=settings.normal_strength,
        convention=conventions.get(settings.convention, gen_pb.NORMAL_CONVENTION_OPENGL),
        ao_radius=settings.ao_radius,
        ao_strength=settings.ao_strength,
    )


def encoding_from_pb(value: int, default: Encoding, field: str = "encoding") -> Encoding:
    """UNSPECIFIED is ``default``; a number the proto does not define is InvalidArgument."""
    if value == img_pb.ENCODING_UNSPECIFIED:
        return default
    return _known(field, value, _ENCODING_FROM_PB, _ALLOWED["encoding"])


def image_from_pb(
    msg: img_pb.Image, default: Encoding = Encoding.PNG, field: str = "image"
) -> EncodedImage:
    return EncodedImage(
        data=msg.data,
        encoding=encoding_from_pb(msg.encoding, default, f"{field}.encoding"),
        width=msg.width,
        height=msg.height,
    )


def image_to_pb(image: EncodedImage) -> img_pb.Image:
    return img_pb.Image(
        data=image.data,
        encoding=_ENCODING_TO_PB[image.encoding],
        width=image.width,
        height=image.height,
    )


# Repeated fields are counted before anything is built from them: 60 million packed `maps`
# entries (57 MiB) once took the event loop 26 s to turn into a tuple, stalling every client.
MAX_MAP_ENTRIES = 16  # four kinds; a repeat is allowed (and derived once)


def _check_counts(msg: gen_pb.GenerateRequest) -> None:
    if len(msg.maps) > MAX_MAP_ENTRIES:
        raise InvalidArgument(
            "maps",
            f"at most {MAX_MAP_ENTRIES} entries ({', '.join(MAP_KINDS)}), got {len(msg.maps):,}",
        )
    check_lora_count(len(msg.loras))


def request_from_pb(msg: gen_pb.GenerateRequest) -> GenerationRequest:
    _check_counts(msg)
    preview = msg.preview
    return GenerationRequest(
        model=msg.model,
        prompt=msg.prompt,
        negative_prompt=msg.negative_prompt,
        width=msg.width,
        height=msg.height,
        steps=msg.steps,
        guidance_scale=msg.guidance_scale if msg.HasField("guidance_scale") else None,
        seed=msg.seed if msg.HasField("seed") else None,
        num_images=msg.num_images or 1,
        init_image=(
            image_from_pb(msg.init_image, field="init_image")
            if msg.HasField("init_image")
            else None
        ),
        strength=msg.strength if msg.HasField("strength") else None,
        mask=image_from_pb(msg.mask, field="mask") if msg.HasField("mask") else None,
        output_encoding=encoding_from_pb(msg.output_encoding, Encoding.PNG, "output_encoding"),
        preview=PreviewOptions(
            every_n_steps=preview.every_n_steps,
            max_side=preview.max_side,
            encoding=encoding_from_pb(preview.encoding, Encoding.JPEG, "preview.encoding"),
            progress=not preview.no_progress,
            result_only=preview.result_only,
        ),
        client_request_id=msg.client_request_id,
        priority=_known("priority", msg.priority, _PRIORITY_FROM_PB, _ALLOWED["priority"]),
        tiling=_known("tiling", msg.tiling, _TILING_FROM_PB, _ALLOWED["tiling"]),
        background=_known(
            "background", msg.background, _BACKGROUND_FROM_PB, _ALLOWED["background"]
        ),
        trim=msg.sprite.trim,
        trim_padding=msg.sprite.padding,
        maps=tuple(_map_name(m) for m in msg.maps),
        map_settings=map_settings_from_pb(msg.map_settings),
        atlas=msg.atlas,
        loras=tuple(sorted(msg.loras.items())),
        tiny_autoencoder=msg.tiny_autoencoder,
    )


def request_to_pb(req: GenerationRequest) -> gen_pb.GenerateRequest:
    msg = gen_pb.GenerateRequest(
        model=req.model,
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        width=req.width,
        height=req.height,
        steps=req.steps,
        num_images=req.num_images,
        output_encoding=_ENCODING_TO_PB[req.output_encoding],
        preview=gen_pb.PreviewSettings(
            every_n_steps=req.preview.every_n_steps,
            max_side=req.preview.max_side,
            encoding=_ENCODING_TO_PB[req.preview.encoding],
            no_progress=not req.preview.progress,
            result_only=req.preview.result_only,
        ),
        client_request_id=req.client_request_id,
        priority=_PRIORITY_TO_PB[req.priority],
        tiling=_TILING_TO_PB[req.tiling],
        background=(
            gen_pb.BACKGROUND_TRANSPARENT
            if req.background is Background.TRANSPARENT
            else gen_pb.BACKGROUND_OPAQUE
        ),
        sprite=gen_pb.SpriteSettings(trim=req.trim, padding=req.trim_padding),
        maps=[_MAP_TO_PB[m] for m in req.maps if m in _MAP_TO_PB],
        map_settings=map_settings_to_pb(req.map_settings),
        atlas=req.atlas,
        loras=dict(req.loras),
        tiny_autoencoder=req.tiny_autoencoder,
    )
    if req.guidance_scale is not None:
        msg.guidance_scale = req.guidance_scale
    if req.seed is not None:
        msg.seed = req.seed
    if req.strength is not None:
        msg.strength = req.strength
    if req.init_image is not None:
        msg.init_image.CopyFrom(image_to_pb(req.init_image))
    if req.mask is not None:
        msg.mask.CopyFrom(image_to_pb(req.mask))
    return msg


def recipe_to_pb(recipe: Recipe, json_text: str = "") -> gen_pb.Recipe:
    """``json_text``: the recipe's JSON when the runner already made it (Result.recipe_json)."""
    return gen_pb.Recipe(
        request=request_to_pb(recipe.request),
        model_revision=recipe.model_revision,
        pixelkiln_version=recipe.pixelkiln_version,
        device=recipe.device,
        dtype=recipe.dtype,
        init_image_sha256=recipe.init_image_sha256,
        mask_sha256=recipe.mask_sha256,
        json=json_text or recipes.to_json(recipe),
    )


def event_to_pb(request_id: str, event: Event) -> gen_pb.GenerateEvent:
    msg = gen_pb.GenerateEvent(request_id=request_id)
    if isinstance(event, Accepted):
        msg.accepted.CopyFrom(
            gen_pb.Accepted(
                request_id=event.request_id,
                client_request_id=event.client_request_id,
                model=event.model,
                seed=event.seed,
                width=event.width,
                height=event.height,
                steps=event.steps,
                guidance_scale=event.guidance_scale,
                num_images=event.num_images,
            )
        )
    elif isinstance(event, Queued):
        msg.queued.position = event.position
        msg.queued.queue_depth = event.queue_depth
    elif isinstance(event, Progress):
        msg.progress.step = event.step
        msg.progress.total = event.total
        msg.progress.elapsed_ms = event.elapsed_ms
    elif isinstance(event, Preview):
        msg.preview.step = event.step
        msg.preview.images.extend(image_to_pb(img) for img in event.images)
    elif isinstance(event, Result):
        result = msg.result
        for out in event.images:
            item = result.images.add(image=image_to_pb(out.image), seed=out.seed, index=out.index)
            for kind, image in out.maps.items():
                item.maps.add(kind=_MAP_TO_PB[kind], image=image_to_pb(image))
            if out.seam is not None:
                item.seam.edge = out.seam.edge
                item.seam.interior = out.seam.interior
                item.seam.ratio = out.seam.ratio
            if out.trim_box is not None:
                x, y, w, h = out.trim_box
                item.trim_box.CopyFrom(gen_pb.Rect(x=x, y=y, width=w, height=h))
        if event.atlas is not None:
            result.atlas.image.CopyFrom(image_to_pb(event.atlas.image))
            result.atlas.frames_json = event.atlas.frames_json
        result.recipe.CopyFrom(recipe_to_pb(event.recipe, event.recipe_json))
        result.warnings.extend(event.warnings)
        t = event.timings
        result.timings.queue_ms = t.queue_ms
        result.timings.model_ms = t.model_ms
        result.timings.encode_ms = t.encode_ms
        result.timings.total_ms = t.total_ms
    else:
        raise TypeError(f"not a streamable event: {type(event).__name__}")
    return msg


def model_info_to_pb(info: ModelInfo) -> models_pb.ModelInfo:
    return models_pb.ModelInfo(
        name=info.name,
        family=info.family,
        backend=info.backend,
        native_width=info.native_width,
        native_height=info.native_height,
        default_steps=info.default_steps,
        default_guidance=info.default_guidance,
        loaded=info.loaded,
        source=info.source,
        available_locally=info.available_locally,
        max_steps=info.max_steps,
    )


def models_to_pb(models: list[ModelInfo], default_model: str) -> models_pb.ListModelsResponse:
    return models_pb.ListModelsResponse(
        models=[model_info_to_pb(m) for m in models], default_model=default_model
    )


def status_to_pb(status: DaemonStatus) -> models_pb.StatusResponse:
    return models_pb.StatusResponse(
        version=status.version,
        device=status.device,
        dtype=status.dtype,
        memory_used_bytes=status.memory_used_bytes,
        loaded_models=status.loaded_models,
        default_model=status.default_model,
        queue_depth=status.queue_depth,
        queue_capacity=status.queue_capacity,
        running=status.running,
        ready=status.ready,
        max_message_bytes=status.max_message_bytes,
        models=[
            models_pb.LoadedModel(
                name=m.name,
                device=m.device,
                dtype=m.dtype,
                memory_bytes=m.memory_bytes,
                options=m.options,
                last_used_unix_ms=m.last_used_unix_ms,
            )
            for m in status.models
        ],
        memory_budget_bytes=status.memory_budget_bytes,
        runners=[
            models_pb.RunnerStatus(
                name=r.name,
                device=r.device,
                state=r.state,
                loaded_models=r.loaded_models,
                memory_bytes=r.memory_bytes,
                running=r.running,
                restarts=r.restarts,
                last_error=r.last_error,
                pid=r.pid,
                jobs_run=r.jobs_run,
            )
            for r in status.runners
        ],
    )


def unload_to_pb(result: UnloadResult) -> models_pb.UnloadModelResponse:
    return models_pb.UnloadModelResponse(unloaded=result.unloaded, freed_bytes=result.freed_bytes)


def live_input_from_pb(msg: gen_pb.LiveInput) -> LiveInput:
    s = msg.settings

    def opt(name: str) -> object:
        return getattr(s, name) if s.HasField(name) else None

    tiling = None
    if s.HasField("tiling"):
        tiling = _known("tiling", s.tiling, _TILING_FROM_PB, _ALLOWED["tiling"])
    encoding = None
    if s.HasField("output_encoding"):
        encoding = encoding_from_pb(s.output_encoding, Encoding.PNG, "output_encoding")
    update = LiveUpdate(
        model=opt("model"),  # type: ignore[arg-type]
        prompt=opt("prompt"),  # type: ignore[arg-type]
        negative_prompt=opt("negative_prompt"),  # type: ignore[arg-type]
        strength=opt("strength"),  # type: ignore[arg-type]
        seed=opt("seed"),  # type: ignore[arg-type]
        steps=opt("steps"),  # type: ignore[arg-type]
        width=opt("width"),  # type: ignore[arg-type]
        height=opt("height"),  # type: ignore[arg-type]
        guidance_scale=opt("guidance_scale"),  # type: ignore[arg-type]
        tiling=tiling,
        output_encoding=encoding,
        stream_batch=opt("stream_batch"),  # type: ignore[arg-type]
        tiny_autoencoder=opt("tiny_autoencoder"),  # type: ignore[arg-type]
        similar_skip_threshold=opt("similar_skip_threshold"),  # type: ignore[arg-type]
        similar_skip_max=opt("similar_skip_max"),  # type: ignore[arg-type]
    )
    image = image_from_pb(msg.image) if msg.HasField("image") and msg.image.data else None
    return LiveInput(seq=msg.seq, image=image, settings=update)


def live_frame_to_pb(frame: LiveFrame, into: gen_pb.LiveFrame | None = None) -> gen_pb.LiveFrame:
    """The frame as protobuf, filled ``into`` a message in place when given (an Envelope's
    live_frame: no second copy of the image bytes)."""
    msg = gen_pb.LiveFrame() if into is None else into
    msg.seq = frame.seq
    msg.unchanged = frame.unchanged
    msg.seed = frame.seed
    msg.skipped = frame.skipped
    msg.similar = frame.similar
    msg.stream_batch = frame.stream_batch
    msg.tiny_autoencoder = frame.tiny_autoencoder
    msg.graph_calls = frame.graph_calls
    if frame.image is not None:
        # Set in place: image_to_pb + CopyFrom copied the bytes twice.
        image = frame.image
        msg.image.data = image.data
        msg.image.encoding = _ENCODING_TO_PB[image.encoding]
        msg.image.width = image.width
        msg.image.height = image.height
    t = frame.timings
    msg.timings.queue_ms = t.queue_ms
    msg.timings.model_ms = t.model_ms
    msg.timings.encode_ms = t.encode_ms
    msg.timings.total_ms = t.total_ms
    return msg
