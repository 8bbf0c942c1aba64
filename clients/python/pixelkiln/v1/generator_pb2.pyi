from pixelkiln.v1 import image_pb2 as _image_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_INTERACTIVE: _ClassVar[Priority]
    PRIORITY_BATCH: _ClassVar[Priority]
    PRIORITY_LIVE: _ClassVar[Priority]

class Tiling(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TILING_NONE: _ClassVar[Tiling]
    TILING_X: _ClassVar[Tiling]
    TILING_Y: _ClassVar[Tiling]
    TILING_XY: _ClassVar[Tiling]

class Background(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKGROUND_OPAQUE: _ClassVar[Background]
    BACKGROUND_TRANSPARENT: _ClassVar[Background]

class MapKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MAP_KIND_UNSPECIFIED: _ClassVar[MapKind]
    MAP_KIND_NORMAL: _ClassVar[MapKind]
    MAP_KIND_HEIGHT: _ClassVar[MapKind]
    MAP_KIND_ROUGHNESS: _ClassVar[MapKind]
    MAP_KIND_AO: _ClassVar[MapKind]

class NormalConvention(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMAL_CONVENTION_OPENGL: _ClassVar[NormalConvention]
    NORMAL_CONVENTION_DIRECTX: _ClassVar[NormalConvention]
PRIORITY_INTERACTIVE: Priority
PRIORITY_BATCH: Priority
PRIORITY_LIVE: Priority
TILING_NONE: Tiling
TILING_X: Tiling
TILING_Y: Tiling
TILING_XY: Tiling
BACKGROUND_OPAQUE: Background
BACKGROUND_TRANSPARENT: Background
MAP_KIND_UNSPECIFIED: MapKind
MAP_KIND_NORMAL: MapKind
MAP_KIND_HEIGHT: MapKind
MAP_KIND_ROUGHNESS: MapKind
MAP_KIND_AO: MapKind
NORMAL_CONVENTION_OPENGL: NormalConvention
NORMAL_CONVENTION_DIRECTX: NormalConvention

class PreviewSettings(_message.Message):
    __slots__ = ("every_n_steps", "max_side", "encoding", "no_progress", "result_only")
    EVERY_N_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    NO_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_ONLY_FIELD_NUMBER: _ClassVar[int]
    every_n_steps: int
    max_side: int
    encoding: _image_pb2.Encoding
    no_progress: bool
    result_only: bool
    def __init__(self, every_n_steps: _Optional[int] = ..., max_side: _Optional[int] = ..., encoding: _Optional[_Union[_image_pb2.Encoding, str]] = ..., no_progress: _Optional[bool] = ..., result_only: _Optional[bool] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("model", "prompt", "negative_prompt", "width", "height", "steps", "guidance_scale", "seed", "num_images", "init_image", "strength", "mask", "output_encoding", "preview", "client_request_id", "priority", "tiling", "background", "sprite", "maps", "map_settings", "atlas", "tiny_autoencoder", "loras")
    class LorasEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    NUM_IMAGES_FIELD_NUMBER: _ClassVar[int]
    INIT_IMAGE_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ENCODING_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TILING_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    SPRITE_FIELD_NUMBER: _ClassVar[int]
    MAPS_FIELD_NUMBER: _ClassVar[int]
    MAP_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ATLAS_FIELD_NUMBER: _ClassVar[int]
    TINY_AUTOENCODER_FIELD_NUMBER: _ClassVar[int]
    LORAS_FIELD_NUMBER: _ClassVar[int]
    model: str
    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    guidance_scale: float
    seed: int
    num_images: int
    init_image: _image_pb2.Image
    strength: float
    mask: _image_pb2.Image
    output_encoding: _image_pb2.Encoding
    preview: PreviewSettings
    client_request_id: str
    priority: Priority
    tiling: Tiling
    background: Background
    sprite: SpriteSettings
    maps: _containers.RepeatedScalarFieldContainer[MapKind]
    map_settings: MapSettings
    atlas: bool
    tiny_autoencoder: bool
    loras: _containers.ScalarMap[str, float]
    def __init__(self, model: _Optional[str] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., seed: _Optional[int] = ..., num_images: _Optional[int] = ..., init_image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., strength: _Optional[float] = ..., mask: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., output_encoding: _Optional[_Union[_image_pb2.Encoding, str]] = ..., preview: _Optional[_Union[PreviewSettings, _Mapping]] = ..., client_request_id: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ..., tiling: _Optional[_Union[Tiling, str]] = ..., background: _Optional[_Union[Background, str]] = ..., sprite: _Optional[_Union[SpriteSettings, _Mapping]] = ..., maps: _Optional[_Iterable[_Union[MapKind, str]]] = ..., map_settings: _Optional[_Union[MapSettings, _Mapping]] = ..., atlas: _Optional[bool] = ..., tiny_autoencoder: _Optional[bool] = ..., loras: _Optional[_Mapping[str, float]] = ...) -> None: ...

class SpriteSettings(_message.Message):
    __slots__ = ("trim", "padding")
    TRIM_FIELD_NUMBER: _ClassVar[int]
    PADDING_FIELD_NUMBER: _ClassVar[int]
    trim: bool
    padding: int
    def __init__(self, trim: _Optional[bool] = ..., padding: _Optional[int] = ...) -> None: ...

class MapSettings(_message.Message):
    __slots__ = ("height_blur", "normal_strength", "convention", "ao_radius", "ao_strength")
    HEIGHT_BLUR_FIELD_NUMBER: _ClassVar[int]
    NORMAL_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    CONVENTION_FIELD_NUMBER: _ClassVar[int]
    AO_RADIUS_FIELD_NUMBER: _ClassVar[int]
    AO_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    height_blur: float
    normal_strength: float
    convention: NormalConvention
    ao_radius: float
    ao_strength: float
    def __init__(self, height_blur: _Optional[float] = ..., normal_strength: _Optional[float] = ..., convention: _Optional[_Union[NormalConvention, str]] = ..., ao_radius: _Optional[float] = ..., ao_strength: _Optional[float] = ...) -> None: ...

class GenerateEvent(_message.Message):
    __slots__ = ("request_id", "accepted", "queued", "progress", "preview", "result")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    accepted: Accepted
    queued: Queued
    progress: Progress
    preview: Preview
    result: Result
    def __init__(self, request_id: _Optional[str] = ..., accepted: _Optional[_Union[Accepted, _Mapping]] = ..., queued: _Optional[_Union[Queued, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., preview: _Optional[_Union[Preview, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ...) -> None: ...

class Accepted(_message.Message):
    __slots__ = ("request_id", "client_request_id", "model", "seed", "width", "height", "steps", "guidance_scale", "num_images")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    NUM_IMAGES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    client_request_id: str
    model: str
    seed: int
    width: int
    height: int
    steps: int
    guidance_scale: float
    num_images: int
    def __init__(self, request_id: _Optional[str] = ..., client_request_id: _Optional[str] = ..., model: _Optional[str] = ..., seed: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., num_images: _Optional[int] = ...) -> None: ...

class Queued(_message.Message):
    __slots__ = ("position", "queue_depth")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    position: int
    queue_depth: int
    def __init__(self, position: _Optional[int] = ..., queue_depth: _Optional[int] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("step", "total", "elapsed_ms")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    step: int
    total: int
    elapsed_ms: float
    def __init__(self, step: _Optional[int] = ..., total: _Optional[int] = ..., elapsed_ms: _Optional[float] = ...) -> None: ...

class Preview(_message.Message):
    __slots__ = ("step", "images")
    STEP_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    step: int
    images: _containers.RepeatedCompositeFieldContainer[_image_pb2.Image]
    def __init__(self, step: _Optional[int] = ..., images: _Optional[_Iterable[_Union[_image_pb2.Image, _Mapping]]] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("images", "recipe", "timings", "atlas", "warnings")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    ATLAS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[GeneratedImage]
    recipe: Recipe
    timings: Timings
    atlas: Atlas
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, images: _Optional[_Iterable[_Union[GeneratedImage, _Mapping]]] = ..., recipe: _Optional[_Union[Recipe, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., atlas: _Optional[_Union[Atlas, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class GeneratedImage(_message.Message):
    __slots__ = ("image", "seed", "index", "maps", "seam", "trim_box")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    MAPS_FIELD_NUMBER: _ClassVar[int]
    SEAM_FIELD_NUMBER: _ClassVar[int]
    TRIM_BOX_FIELD_NUMBER: _ClassVar[int]
    image: _image_pb2.Image
    seed: int
    index: int
    maps: _containers.RepeatedCompositeFieldContainer[DerivedMap]
    seam: SeamReport
    trim_box: Rect
    def __init__(self, image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., seed: _Optional[int] = ..., index: _Optional[int] = ..., maps: _Optional[_Iterable[_Union[DerivedMap, _Mapping]]] = ..., seam: _Optional[_Union[SeamReport, _Mapping]] = ..., trim_box: _Optional[_Union[Rect, _Mapping]] = ...) -> None: ...

class DerivedMap(_message.Message):
    __slots__ = ("kind", "image")
    KIND_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    kind: MapKind
    image: _image_pb2.Image
    def __init__(self, kind: _Optional[_Union[MapKind, str]] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ...) -> None: ...

class SeamReport(_message.Message):
    __slots__ = ("edge", "interior", "ratio")
    EDGE_FIELD_NUMBER: _ClassVar[int]
    INTERIOR_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    edge: float
    interior: float
    ratio: float
    def __init__(self, edge: _Optional[float] = ..., interior: _Optional[float] = ..., ratio: _Optional[float] = ...) -> None: ...

class Rect(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Atlas(_message.Message):
    __slots__ = ("image", "frames_json")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_JSON_FIELD_NUMBER: _ClassVar[int]
    image: _image_pb2.Image
    frames_json: str
    def __init__(self, image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., frames_json: _Optional[str] = ...) -> None: ...

class Recipe(_message.Message):
    __slots__ = ("request", "model_revision", "pixelkiln_version", "device", "dtype", "init_image_sha256", "mask_sha256", "json")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    MODEL_REVISION_FIELD_NUMBER: _ClassVar[int]
    PIXELKILN_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    INIT_IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    MASK_SHA256_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    request: GenerateRequest
    model_revision: str
    pixelkiln_version: str
    device: str
    dtype: str
    init_image_sha256: str
    mask_sha256: str
    json: str
    def __init__(self, request: _Optional[_Union[GenerateRequest, _Mapping]] = ..., model_revision: _Optional[str] = ..., pixelkiln_version: _Optional[str] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., init_image_sha256: _Optional[str] = ..., mask_sha256: _Optional[str] = ..., json: _Optional[str] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_ms", "model_ms", "encode_ms", "total_ms")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_MS_FIELD_NUMBER: _ClassVar[int]
    ENCODE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    model_ms: float
    encode_ms: float
    total_ms: float
    def __init__(self, queue_ms: _Optional[float] = ..., model_ms: _Optional[float] = ..., encode_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    def __init__(self, cancelled: _Optional[bool] = ...) -> None: ...

class LiveSettings(_message.Message):
    __slots__ = ("model", "prompt", "negative_prompt", "strength", "seed", "steps", "width", "height", "guidance_scale", "tiling", "output_encoding", "stream_batch", "tiny_autoencoder", "similar_skip_threshold", "similar_skip_max")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    TILING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ENCODING_FIELD_NUMBER: _ClassVar[int]
    STREAM_BATCH_FIELD_NUMBER: _ClassVar[int]
    TINY_AUTOENCODER_FIELD_NUMBER: _ClassVar[int]
    SIMILAR_SKIP_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SIMILAR_SKIP_MAX_FIELD_NUMBER: _ClassVar[int]
    model: str
    prompt: str
    negative_prompt: str
    strength: float
    seed: int
    steps: int
    width: int
    height: int
    guidance_scale: float
    tiling: Tiling
    output_encoding: _image_pb2.Encoding
    stream_batch: bool
    tiny_autoencoder: bool
    similar_skip_threshold: float
    similar_skip_max: int
    def __init__(self, model: _Optional[str] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., strength: _Optional[float] = ..., seed: _Optional[int] = ..., steps: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., tiling: _Optional[_Union[Tiling, str]] = ..., output_encoding: _Optional[_Union[_image_pb2.Encoding, str]] = ..., stream_batch: _Optional[bool] = ..., tiny_autoencoder: _Optional[bool] = ..., similar_skip_threshold: _Optional[float] = ..., similar_skip_max: _Optional[int] = ...) -> None: ...

class LiveInput(_message.Message):
    __slots__ = ("seq", "image", "settings")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    image: _image_pb2.Image
    settings: LiveSettings
    def __init__(self, seq: _Optional[int] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., settings: _Optional[_Union[LiveSettings, _Mapping]] = ...) -> None: ...

class LiveFrame(_message.Message):
    __slots__ = ("seq", "image", "unchanged", "seed", "skipped", "timings", "similar", "stream_batch", "tiny_autoencoder", "graph_calls")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    SIMILAR_FIELD_NUMBER: _ClassVar[int]
    STREAM_BATCH_FIELD_NUMBER: _ClassVar[int]
    TINY_AUTOENCODER_FIELD_NUMBER: _ClassVar[int]
    GRAPH_CALLS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    image: _image_pb2.Image
    unchanged: bool
    seed: int
    skipped: int
    timings: LiveTimings
    similar: bool
    stream_batch: bool
    tiny_autoencoder: bool
    graph_calls: int
    def __init__(self, seq: _Optional[int] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., unchanged: _Optional[bool] = ..., seed: _Optional[int] = ..., skipped: _Optional[int] = ..., timings: _Optional[_Union[LiveTimings, _Mapping]] = ..., similar: _Optional[bool] = ..., stream_batch: _Optional[bool] = ..., tiny_autoencoder: _Optional[bool] = ..., graph_calls: _Optional[int] = ...) -> None: ...

class LiveTimings(_message.Message):
    __slots__ = ("queue_ms", "model_ms", "encode_ms", "total_ms")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_MS_FIELD_NUMBER: _ClassVar[int]
    ENCODE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    model_ms: float
    encode_ms: float
    total_ms: float
    def __init__(self, queue_ms: _Optional[float] = ..., model_ms: _Optional[float] = ..., encode_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...
