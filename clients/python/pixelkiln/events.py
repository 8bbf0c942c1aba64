"""What the client hands back: events of a generation and its final result.

Plain dataclasses over the protobuf messages, so scripts need no protobuf knowledge.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._files import write_atomically
from .v1 import generator_pb2 as gen_pb
from .v1 import image_pb2 as img_pb

ENCODING_NAMES = {
    img_pb.ENCODING_PNG: "png",
    img_pb.ENCODING_JPEG: "jpeg",
    img_pb.ENCODING_WEBP: "webp",
    img_pb.ENCODING_RAW_RGBA8: "raw_rgba8",
}


# The PNG text chunk holding a result's recipe: the daemon's (imaging/codec.py RECIPE_PNG_KEY),
# which load_recipe reads and Image.save writes when it encodes raw pixels as PNG.
RECIPE_PNG_KEY = "pixelkiln"

# Image.save: the encoding each suffix writes, and how Pillow re-encodes to it (the daemon's
# qualities, imaging/codec.py).
SAVE_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
_PIL_SAVE: dict[str, tuple[str, dict[str, Any]]] = {
    "png": ("PNG", {"compress_level": 1}),
    "jpeg": ("JPEG", {"quality": 85}),
    "webp": ("WEBP", {"quality": 80}),
}


def _pillow(purpose: str) -> Any:
    """PIL.Image, or an ImportError that says what needed it and what to install."""
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise ImportError(f"{purpose} needs Pillow: pip install 'pixelkiln[images]'") from None
    return PILImage


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def _images_summary(images: list[Image] | list[ResultImage]) -> str:
    """E.g. ``1 image 64x64 jpeg 3.1 KB`` or ``2 images 64x64 png 12.4 KB`` (bytes in total)."""
    if not images:
        return "no image"
    shapes = sorted({f"{i.width}x{i.height} {i.encoding}" for i in images})
    total = sum(len(i.data) for i in images)
    noun = "image" if len(images) == 1 else "images"
    return f"{len(images)} {noun} {', '.join(shapes)} {_size(total)}"


@dataclass(frozen=True)
class Image:
    """Encoded image bytes with their size. ``to_pil()`` and ``to_numpy()`` need Pillow/numpy."""

    data: bytes
    encoding: str
    width: int
    height: int

    @classmethod
    def from_pb(cls, msg: img_pb.Image) -> Image:
        return cls(msg.data, ENCODING_NAMES.get(msg.encoding, "png"), msg.width, msg.height)

    def to_pil(self) -> Any:
        PILImage = _pillow("Image.to_pil()")  # noqa: N806 - the module, as PIL names it
        if self.encoding == "raw_rgba8":
            self._check_raw()
            return PILImage.frombuffer("RGBA", (self.width, self.height), self.data, "raw")
        return PILImage.open(io.BytesIO(self.data))

    def to_numpy(self) -> Any:
        """(height, width, channels) uint8. A raw RGBA8 image is a read-only view of the
        received bytes (no copy, no Pillow): ``frame.image.to_numpy()[..., :3]`` is RGB."""
        import numpy as np

        if self.encoding == "raw_rgba8":
            self._check_raw()
            return np.frombuffer(self.data, dtype=np.uint8).reshape(self.height, self.width, 4)
        return np.asarray(self.to_pil())

    def _check_raw(self) -> None:
        expected = self.width * self.height * 4
        if len(self.data) != expected:
            raise ValueError(
                f"raw RGBA8 image of {self.width}x{self.height} needs {expected} bytes, "
                f"got {len(self.data)}"
            )

    def save(self, path: str | Path, *, durable: bool = True) -> Path:
        """Write the image in the format its suffix names: .png, .jpg/.jpeg or .webp (any
        other: ValueError). Bytes already in that format are written as they came (a PNG
        keeps its recipe); others are re-encoded with Pillow (``pip install
        'pixelkiln[images]'``), keeping the alpha channel in PNG and WebP. JPEG has none: an
        image with transparent pixels is refused (ValueError), an opaque RGBA one is written
        as RGB.

        A result image that came as raw RGBA8 and is saved as .png carries its recipe too, as
        the daemon's PNGs do (``pixelkiln replay`` and ``Client.replay`` read it).

        Written to a temporary file first and renamed (``_files.write_atomically``), so a
        crash or a full disk never leaves half a file and an existing file stays whole until
        the new one is. ``durable=False`` skips the flush to disk (a live preview's frames)."""
        path = Path(path)
        wanted = SAVE_SUFFIXES.get(path.suffix.lower())
        if wanted is None:
            what = f"cannot write {path.suffix} files" if path.suffix else "needs a file suffix"
            allowed = ", ".join(SAVE_SUFFIXES)
            raise ValueError(f"save: {what} ({path}); allowed: {allowed}")
        data = self.data if wanted == self.encoding else self._encode(wanted, path)
        return write_atomically(path, lambda f: f.write(data), durable=durable)

    def _encode(self, encoding: str, path: Path) -> bytes:
        """This image re-encoded as ``encoding`` ("png", "jpeg" or "webp") for ``path``."""
        _pillow(f"saving a {self.encoding} image as {path.name} (re-encoding it)")
        pil = self.to_pil()
        if pil.mode == "P" or "transparency" in pil.info:
            pil = pil.convert("RGBA")
        has_alpha = "A" in pil.getbands()
        if encoding == "jpeg" and has_alpha:
            if pil.getchannel("A").getextrema()[0] < 255:
                raise ValueError(
                    f"save: {path}: JPEG has no alpha channel and this image has transparent "
                    "pixels; save it as .png or .webp, or flatten it yourself "
                    "(image.to_pil().convert('RGB'))"
                )
            pil = pil.convert("RGB")  # opaque: nothing is lost
        elif encoding != "png" and pil.mode not in ("RGB", "RGBA", "L"):
            pil = pil.convert("RGBA" if has_alpha else "RGB")
        kind, options = _PIL_SAVE[encoding]
        if encoding == "png" and self._recipe_text():
            from PIL import PngImagePlugin

            info = PngImagePlugin.PngInfo()
            info.add_itxt(RECIPE_PNG_KEY, self._recipe_text())
            options = {**options, "pnginfo": info}
        buf = io.BytesIO()
        pil.save(buf, format=kind, **options)
        return buf.getvalue()

    def _recipe_text(self) -> str:
        """The recipe a PNG of this image carries ("" for previews, maps, live frames)."""
        return ""

    def __repr__(self) -> str:
        return f"Image({self.width}x{self.height} {self.encoding} {_size(len(self.data))})"


MAP_NAMES = {1: "normal", 2: "height", 3: "roughness", 4: "ao"}


@dataclass(frozen=True)
class ResultImage(Image):
    seed: int = 0
    index: int = 0
    # Derived maps by kind ("normal", "height", "roughness", "ao").
    maps: dict[str, Image] = field(default_factory=dict)
    # With tiling: {"edge", "interior", "ratio"} (ratio about 1 = no visible seam).
    seam: dict[str, float] | None = None
    # Trimmed sprites: (x, y, width, height) of the kept box in the generated canvas.
    trim_box: tuple[int, int, int, int] | None = None
    # The recipe a PNG of this image carries (the batch's, with this image's ``image_index``
    # in a batch of several), written by ``save`` when it encodes raw pixels as PNG.
    recipe_json: str = field(default="", repr=False, compare=False)

    def _recipe_text(self) -> str:
        return self.recipe_json

    def __repr__(self) -> str:
        parts = [f"{self.width}x{self.height} {self.encoding} {_size(len(self.data))}"]
        parts.append(f"seed={self.seed}")
        if self.maps:
            parts.append(f"maps={','.join(self.maps)}")
        if self.seam is not None:
            parts.append(f"seam ratio {self.seam.get('ratio', 0):.2f}")
        if self.trim_box is not None:
            parts.append(f"trim_box={self.trim_box}")
        return f"ResultImage({', '.join(parts)})"


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
    request_id: str
    position: int
    queue_depth: int


@dataclass(frozen=True)
class Progress:
    request_id: str
    step: int
    total: int
    elapsed_ms: float

    def __repr__(self) -> str:
        step = f"{self.step}/{self.total}"
        return f"Progress({self.request_id!r}, step={step}, {self.elapsed_ms:.0f} ms)"


@dataclass(frozen=True)
class Preview:
    request_id: str
    step: int
    images: list[Image]

    def __repr__(self) -> str:
        return f"Preview(step={self.step}, {_images_summary(self.images)})"


@dataclass(frozen=True)
class Result:
    request_id: str
    images: list[ResultImage]
    recipe_json: str
    timings: dict[str, float] = field(default_factory=dict)
    atlas: Image | None = None
    # TexturePacker "JSON (Hash)" frame map of the atlas.
    atlas_frames: dict[str, Any] | None = None
    # What the model will not do as asked (unknown prompt words, a size above its trained
    # size); the request was still served.
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        parts = [f"{self.request_id!r}", _images_summary(self.images)]
        seeds = [i.seed for i in self.images]
        if seeds:
            parts.append(f"seed={seeds[0]}" if len(seeds) == 1 else f"seeds={seeds}")
        maps = sorted({kind for i in self.images for kind in i.maps})
        if maps:
            parts.append(f"maps={','.join(maps)}")
        if self.atlas is not None:
            parts.append(f"atlas {self.atlas.width}x{self.atlas.height}")
        if "total_ms" in self.timings:
            parts.append(f"{self.timings['total_ms']:.0f} ms")
        if self.warnings:
            parts.append(f"{len(self.warnings)} warning(s)")
        return f"Result({', '.join(parts)})"

    @property
    def recipe(self) -> dict[str, Any]:
        return json.loads(self.recipe_json) if self.recipe_json else {}

    @property
    def image(self) -> ResultImage:
        return self.images[0]


Event = Accepted | Queued | Progress | Preview | Result


@dataclass(frozen=True)
class LiveFrame:
    """A live session's answer to input ``seq``. ``image`` is None when ``unchanged`` (the
    input equalled the last one processed, or was ``similar`` to it with the similar-frame
    skip on; keep showing the previous frame). With stream batch, ``seq`` names the earlier
    input the image comes from. ``stream_batch`` / ``tiny_autoencoder``: whether the daemon
    applied them to this frame (the model's backend may not support them). ``graph_calls``:
    how many of the frame's model calls were replayed from recorded graphs (on the CPU: all of
    them from a size's second frame on; 0 on a GPU)."""

    seq: int
    image: Image | None
    unchanged: bool
    seed: int
    skipped: int
    timings: dict[str, float]
    similar: bool = False
    stream_batch: bool = False
    tiny_autoencoder: bool = False
    graph_calls: int = 0

    def __repr__(self) -> str:
        image = "unchanged" if self.image is None else _images_summary([self.image])
        if self.similar:
            image = "similar"
        ms = self.timings.get("total_ms", 0.0)
        applied = (("stream_batch", self.stream_batch), ("tiny_ae", self.tiny_autoencoder))
        flags = "".join(f", {name}" for name, on in applied if on)
        if self.graph_calls:
            flags += f", {self.graph_calls} graph calls"
        return (
            f"LiveFrame(seq={self.seq}, {image}, seed={self.seed}, skipped={self.skipped}, "
            f"{ms:.0f} ms{flags})"
        )

    @classmethod
    def from_pb(cls, msg: gen_pb.LiveFrame) -> LiveFrame:
        t = msg.timings
        return cls(
            seq=msg.seq,
            image=Image.from_pb(msg.image) if msg.image.data else None,
            unchanged=msg.unchanged,
            seed=msg.seed,
            skipped=msg.skipped,
            timings={
                "queue_ms": t.queue_ms,
                "model_ms": t.model_ms,
                "encode_ms": t.encode_ms,
                "total_ms": t.total_ms,
            },
            similar=msg.similar,
            stream_batch=msg.stream_batch,
            tiny_autoencoder=msg.tiny_autoencoder,
            graph_calls=msg.graph_calls,
        )


def event_from_pb(msg: gen_pb.GenerateEvent) -> Event:
    kind = msg.WhichOneof("event")
    rid = msg.request_id
    if kind == "accepted":
        a = msg.accepted
        return Accepted(
            a.request_id,
            a.client_request_id,
            a.model,
            a.seed,
            a.width,
            a.height,
            a.steps,
            a.guidance_scale,
            a.num_images,
        )
    if kind == "queued":
        return Queued(rid, msg.queued.position, msg.queued.queue_depth)
    if kind == "progress":
        p = msg.progress
        return Progress(rid, p.step, p.total, p.elapsed_ms)
    if kind == "preview":
        return Preview(rid, msg.preview.step, [Image.from_pb(i) for i in msg.preview.images])
    if kind == "result":
        r = msg.result
        images = [
            _result_image(g, _indexed(r.recipe.json, g.index, len(r.images))) for g in r.images
        ]
        t = r.timings
        timings = {
            "queue_ms": t.queue_ms,
            "model_ms": t.model_ms,
            "encode_ms": t.encode_ms,
            "total_ms": t.total_ms,
        }
        atlas = Image.from_pb(r.atlas.image) if r.HasField("atlas") else None
        frames = json.loads(r.atlas.frames_json) if r.HasField("atlas") else None
        return Result(rid, images, r.recipe.json, timings, atlas, frames, tuple(r.warnings))
    raise ValueError(f"unknown event {kind!r} (newer daemon?)")


def _indexed(recipe_json: str, index: int, count: int) -> str:
    """The recipe one image of a batch carries: the batch's with its ``image_index``, as the
    daemon writes into each PNG of a batch (server assets._indexed)."""
    if not recipe_json or count < 2:
        return recipe_json
    try:
        recipe = json.loads(recipe_json)
    except ValueError:
        return recipe_json
    if not isinstance(recipe, dict):
        return recipe_json
    recipe["image_index"] = index
    return json.dumps(recipe, sort_keys=True, separators=(",", ":"))


def _result_image(g: gen_pb.GeneratedImage, recipe_json: str = "") -> ResultImage:
    seam = None
    if g.HasField("seam"):
        seam = {"edge": g.seam.edge, "interior": g.seam.interior, "ratio": g.seam.ratio}
    box = None
    if g.HasField("trim_box"):
        b = g.trim_box
        box = (b.x, b.y, b.width, b.height)
    return ResultImage(
        g.image.data,
        ENCODING_NAMES.get(g.image.encoding, "png"),
        g.image.width,
        g.image.height,
        seed=g.seed,
        index=g.index,
        maps={MAP_NAMES.get(m.kind, str(m.kind)): Image.from_pb(m.image) for m in g.maps},
        seam=seam,
        trim_box=box,
        recipe_json=recipe_json,
    )
