"""The domain: generation requests, model descriptions, events and results.

Imported by the engine, the backends and the services alike; imports nothing of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Encoding(str, Enum):
    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    RAW_RGBA8 = "raw_rgba8"


class Priority(str, Enum):
    LIVE = "live"
    INTERACTIVE = "interactive"
    BATCH = "batch"

    @property
    def rank(self) -> int:
        """Lower runs first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LIVE: 0, Priority.INTERACTIVE: 1, Priority.BATCH: 2}


class Tiling(str, Enum):
    NONE = "none"
    X = "x"
    Y = "y"
    XY = "xy"

    @property
    def wrap_x(self) -> bool:
        return self in (Tiling.X, Tiling.XY)

    @property
    def wrap_y(self) -> bool:
        return self in (Tiling.Y, Tiling.XY)


class Background(str, Enum):
    OPAQUE = "opaque"
    TRANSPARENT = "transparent"


MAP_KINDS = ("normal", "height", "roughness", "ao")


@dataclass(frozen=True)
class MapSettings:
    height_blur: float = 1.0
    normal_strength: float = 2.0
    convention: str = "opengl"
    ao_radius: float = 4.0
    ao_strength: float = 1.0


@dataclass(frozen=True)
class EncodedImage:
    """Image bytes as they travel: PNG/JPEG/WEBP, or raw RGBA8 rows."""

    data: bytes
    encoding: Encoding
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class PreviewOptions:
    every_n_steps: int = 0
    max_side: int = 256
    encoding: Encoding = Encoding.JPEG
    progress: bool = True  # Progress events (PreviewSettings.no_progress turns them off)
    result_only: bool = False  # only the Result (or the error) goes to the caller


@dataclass(frozen=True)
class GenerationRequest:
    """One generation, as the client asked for it. Zero/None fields mean "model default";
    :func:`pixelkiln_server.validation.resolve` returns a copy with every default filled in."""

    prompt: str = ""
    model: str = ""
    negative_prompt: str = ""
    width: int = 0
    height: int = 0
    steps: int = 0
    guidance_scale: float | None = None
    seed: int | None = None
    num_images: int = 1
    init_image: EncodedImage | None = None
    strength: float | None = None
    mask: EncodedImage | None = None
    output_encoding: Encoding = Encoding.PNG
    preview: PreviewOptions = field(default_factory=PreviewOptions)
    client_request_id: str = ""
    priority: Priority = Priority.INTERACTIVE
    tiling: Tiling = Tiling.NONE
    background: Background = Background.OPAQUE
    trim: bool = False
    trim_padding: int = 0
    maps: tuple[str, ...] = ()
    map_settings: MapSettings = field(default_factory=MapSettings)
    atlas: bool = False
    # LoRA scales by adapter name, for adapters loaded with the model (``serve --lora``).
    # Resolved requests list every adapter of the model with its scale, sorted by name.
    loras: tuple[tuple[str, float], ...] = ()
    # Live only (LiveSettings): batch consecutive frames' denoising steps into one UNet call
    # (one frame of lag), and encode/decode with the model's tiny autoencoder. A backend that
    # cannot says so in Result.applied; the request is still served.
    stream_batch: bool = False
    tiny_autoencoder: bool = False
    # The stream a stream-batch job belongs to (the live session's id; not in the recipe):
    # the runner keeps one pipeline of in-flight frames per stream.
    stream_id: str = ""

    @property
    def mode(self) -> str:
        if self.mask is not None:
            return "inpaint"
        if self.init_image is not None:
            return "img2img"
        return "txt2img"


@dataclass(frozen=True)
class ModelInfo:
    """What a client sees of a model in the catalogue."""

    name: str
    family: str
    backend: str
    source: str
    native_width: int
    native_height: int
    default_steps: int
    default_guidance: float
    max_steps: int = 50
    loaded: bool = False
    available_locally: bool = False
    revision: str = ""


@dataclass
class DecodedInputs:
    """Input images decoded once, during validation: RGB uint8 (H,W,3) and mask uint8 (H,W)."""

    init_rgb: np.ndarray | None = None
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class Accepted:
    request_id: str
    client_request_id: str
    model: str
    seed: int
    width: int
    height: int
    steps: int
    guidance_scale: float
    num_images: int


@dataclass(frozen=True)
class Queued:
    position: int
    queue_depth: int


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    elapsed_ms: float


@dataclass(frozen=True)
class Preview:
    step: int
    images: list[EncodedImage]


@dataclass(frozen=True)
class SeamInfo:
    edge: float
    interior: float
    ratio: float


@dataclass(frozen=True)
class OutputImage:
    image: EncodedImage
    seed: int
    index: int
    maps: dict[str, EncodedImage] = field(default_factory=dict)
    seam: SeamInfo | None = None
    trim_box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class AtlasImage:
    image: EncodedImage
    frames_json: str


@dataclass(frozen=True)
class Timings:
    queue_ms: float = 0.0
    model_ms: float = 0.0
    encode_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class Recipe:
    """The resolved request (image bytes dropped) plus what else decides the pixels."""

    request: GenerationRequest
    model_revision: str
    pixelkiln_version: str
    device: str
    dtype: str
    init_image_sha256: str = ""
    mask_sha256: str = ""
    # Images computed in the same pipeline call (micro-batching). Above 1, batched kernels
    # summed in another order: a solo replay can differ by one level in rare pixels.
    batch_images: int = 1
    # "torch" or "onnx" (ONNX Runtime, serve --runtime): the two agree to float rounding, so a
    # replay on the other runtime can differ by one level in rare pixels.
    runtime: str = "torch"


@dataclass(frozen=True)
class Result:
    images: list[OutputImage]
    recipe: Recipe
    timings: Timings
    atlas: AtlasImage | None = None
    # What the model will not do as asked (advice.py); the request was still served.
    warnings: tuple[str, ...] = ()
    # Live options the backend applied to this result: "lean", "stream_batch",
    # "tiny_autoencoder". One asked for but absent was not applied (a warning says why).
    applied: tuple[str, ...] = ()
    # Stream batch: the client_request_id of the input the image comes from ("": this job's
    # own), and how many inputs the stream still holds. No images: no frame yet.
    answers: str = ""
    held: int = 0
    # Model calls replayed from recorded graphs (the lean live path; backends/traced.py).
    graph_calls: int = 0
    # The recipe as JSON, as the runner wrote it into the PNG (made once, sent as it is).
    recipe_json: str = ""


@dataclass(frozen=True)
class Failed:
    """Terminal event carrying a :class:`pixelkiln_server.errors.PixelKilnError`."""

    error: Exception


Event = Accepted | Queued | Progress | Preview | Result | Failed


@dataclass(frozen=True)
class LiveUpdate:
    """A live input's settings: None leaves a setting as it is."""

    model: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    strength: float | None = None
    seed: int | None = None
    steps: int | None = None
    width: int | None = None
    height: int | None = None
    guidance_scale: float | None = None
    tiling: Tiling | None = None
    output_encoding: Encoding | None = None
    stream_batch: bool | None = None
    tiny_autoencoder: bool | None = None
    # Session-only (never part of a GenerationRequest): see LiveSession.
    similar_skip_threshold: float | None = None
    similar_skip_max: int | None = None


@dataclass(frozen=True)
class LiveInput:
    seq: int
    image: EncodedImage | None = None
    settings: LiveUpdate = field(default_factory=LiveUpdate)


@dataclass(frozen=True)
class LiveFrame:
    seq: int
    image: EncodedImage | None
    unchanged: bool
    seed: int
    skipped: int
    timings: Timings
    # Skipped as similar to the last processed input (``unchanged`` is set too).
    similar: bool = False
    # Whether stream batch / the tiny autoencoder were applied to this frame.
    stream_batch: bool = False
    tiny_autoencoder: bool = False
    # How many of its model calls were replayed from recorded graphs.
    graph_calls: int = 0


@dataclass(frozen=True)
class LoadedModelStatus:
    """One loaded model: where it lives, what it holds, its active options, when last used."""

    name: str
    device: str
    dtype: str
    memory_bytes: int
    options: dict[str, str]
    last_used_unix_ms: int


@dataclass(frozen=True)
class UnloadResult:
    """``freed_bytes``: memory measured as released (tensors gone, or the CUDA allocator's
    drop), not the model's size as assumed."""

    unloaded: bool
    freed_bytes: int = 0


@dataclass(frozen=True)
class RunnerInfo:
    """One model runner as Status reports it."""

    name: str
    device: str
    state: str
    loaded_models: list[str]
    memory_bytes: int
    running: int
    restarts: int
    last_error: str
    pid: int
    jobs_run: int


@dataclass(frozen=True)
class DaemonStatus:
    version: str
    device: str
    dtype: str
    memory_used_bytes: int
    loaded_models: list[str]
    default_model: str
    queue_depth: int
    queue_capacity: int
    running: int
    ready: bool
    max_message_bytes: int
    models: list[LoadedModelStatus] = field(default_factory=list)
    # 0: unlimited.
    memory_budget_bytes: int = 0
    runners: list[RunnerInfo] = field(default_factory=list)
