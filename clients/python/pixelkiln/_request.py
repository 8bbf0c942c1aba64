"""Build a GenerateRequest from keyword arguments (shared by Client and AsyncClient)."""

from __future__ import annotations

import difflib
import io
import numbers
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, NoReturn

from .v1 import generator_pb2 as gen_pb
from .v1 import image_pb2 as img_pb

ENCODINGS = {
    "png": img_pb.ENCODING_PNG,
    "jpeg": img_pb.ENCODING_JPEG,
    "jpg": img_pb.ENCODING_JPEG,
    "webp": img_pb.ENCODING_WEBP,
    "raw": img_pb.ENCODING_RAW_RGBA8,
    "raw_rgba8": img_pb.ENCODING_RAW_RGBA8,
}
TILINGS: dict[str, Any] = {
    "none": gen_pb.TILING_NONE,
    "x": gen_pb.TILING_X,
    "y": gen_pb.TILING_Y,
    "xy": gen_pb.TILING_XY,
}
MAP_KINDS: dict[str, Any] = {
    "normal": gen_pb.MAP_KIND_NORMAL,
    "height": gen_pb.MAP_KIND_HEIGHT,
    "roughness": gen_pb.MAP_KIND_ROUGHNESS,
    "ao": gen_pb.MAP_KIND_AO,
}
CONVENTIONS: dict[str, Any] = {
    "opengl": gen_pb.NORMAL_CONVENTION_OPENGL,
    "directx": gen_pb.NORMAL_CONVENTION_DIRECTX,
}
PRIORITIES = {
    "interactive": gen_pb.PRIORITY_INTERACTIVE,
    "batch": gen_pb.PRIORITY_BATCH,
}

ImageInput = str | Path | bytes | Any  # a path, encoded bytes, a PIL image or a numpy array


# The containers the daemon decodes (server imaging/codec.py INPUT_FORMATS), by magic bytes.
INPUT_KINDS = ("PNG", "JPEG", "WebP", "GIF", "BMP")


def image_kind(head: bytes) -> str | None:
    """Which of :data:`INPUT_KINDS` the first 12 bytes of a file are, or None."""
    if head.startswith(b"\x89PNG"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"BM"):
        return "BMP"
    return None


def _sniff(data: bytes) -> Any:
    if data.startswith(b"\x89PNG"):
        return img_pb.ENCODING_PNG
    if data.startswith(b"\xff\xd8"):
        return img_pb.ENCODING_JPEG
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return img_pb.ENCODING_WEBP
    return img_pb.ENCODING_PNG


def image_to_pb(value: ImageInput, field: str = "image") -> img_pb.Image:
    """Accepts a file path, encoded bytes, a PIL image, or a uint8 numpy array; TypeError
    naming ``field`` for anything else."""
    if isinstance(value, img_pb.Image):
        return value
    if isinstance(value, str | Path):
        value = Path(value).read_bytes()
    if isinstance(value, bytes | bytearray):
        return img_pb.Image(data=bytes(value), encoding=_sniff(bytes(value)))
    if hasattr(value, "__array_interface__") and not hasattr(value, "save"):
        from PIL import Image

        value = Image.fromarray(value)
    if hasattr(value, "save"):
        buf = io.BytesIO()
        value.save(buf, format="PNG", compress_level=1)
        return img_pb.Image(
            data=buf.getvalue(),
            encoding=img_pb.ENCODING_PNG,
            width=value.width,
            height=value.height,
        )
    raise TypeError(
        f"{field}: cannot send {type(value).__name__} as an image; pass a file path, encoded "
        "bytes, a PIL image or a uint8 numpy array"
    )


def unsigned(field: str, value: int | None, bits: int = 32) -> None:
    """Counts, sizes and seeds travel as unsigned protobuf integers: refuse what cannot."""
    if value is not None and value < 0:
        raise ValueError(f"{field}: must be 0 or more; got {value}")
    if value is not None and value >= 2**bits:
        raise ValueError(f"{field}: must be below {2**bits}; got {value}")


def choice(field: str, value: str, table: dict[str, Any]) -> Any:
    """``table[value]`` (case-insensitive), or a ValueError naming the field and the choices
    (TypeError when ``value`` is not a str)."""
    allowed = ", ".join(table)
    if not isinstance(value, str):
        _wrong(field, value, f"a str, one of {allowed}")
    try:
        return table[value.lower()]
    except KeyError:
        raise ValueError(f"{field}: unknown value {value!r}; allowed: {allowed}") from None


def _wrong(field: str, value: object, expected: str, hint: str = "") -> NoReturn:
    raise TypeError(f"{field}: expected {expected}, got {type(value).__name__} {value!r:.80}{hint}")


def _whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# What each keyword of build_request takes, checked before anything is built so that a wrong
# type is a TypeError naming the keyword (not protobuf's or a comparison's words).
_TEXT = ("prompt", "model", "negative_prompt", "client_request_id")
_WHOLE = ("width", "height", "steps", "num_images", "padding", "preview_every", "preview_max_side")
_REAL = ("guidance_scale", "strength", "height_blur", "normal_strength", "ao_radius", "ao_strength")
_FLAGS = ("progress", "result_only", "transparent", "trim", "atlas", "tiny_autoencoder")
_SIZE_HINT = "; use width= and height= for other shapes"


def _check_types(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (build_request's arguments) with None in place of a keyword's default
    replaced by the default and numbers as plain int/float; TypeError naming the first
    keyword whose value is of the wrong type."""
    defaults = build_request.__kwdefaults__ or {}
    out = dict(values)
    for name, value in values.items():
        if value is None:
            out[name] = defaults.get(name, "")  # the default ("" for the prompt)
        elif name in _TEXT and not isinstance(value, str):
            _wrong(name, value, "a str")
        elif name in _WHOLE or name == "seed":
            out[name] = int(value) if _whole(value) else _wrong(name, value, "an int")
        elif name == "size":
            what = "an int (the side of a square image)"
            out[name] = int(value) if _whole(value) else _wrong(name, value, what, _SIZE_HINT)
        elif name in _REAL:
            out[name] = (
                float(value)
                if _real(value)
                else _wrong(name, value, "a number (an int or a float)")
            )
        elif name in _FLAGS and not isinstance(value, bool):
            _wrong(name, value, "True or False")
        elif name == "maps" and not (
            isinstance(value, str)
            or (isinstance(value, list | tuple) and all(isinstance(m, str) for m in value))
        ):
            _wrong(name, value, f"a str or a list of str ({', '.join(MAP_KINDS)})")
        elif name == "loras":
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and _real(v) for k, v in value.items()
            ):
                _wrong(name, value, "a dict of adapter name to scale (a number)")
            out[name] = {k: float(v) for k, v in value.items()}
    return out


# Names a user of the command line may reach for, and the keyword that does it.
KEYWORD_HINTS = {
    "tile": "'tiling'",
    "count": "'num_images'",
    "negative": "'negative_prompt'",
    "guidance": "'guidance_scale'",
    "init": "'init_image'",
    "directx": 'normal_convention="directx"',
}


def keywords() -> frozenset[str]:
    """The keywords of ``Client.generate`` / ``stream`` (those of :func:`build_request`)."""
    return frozenset(build_request.__kwdefaults__ or {}) | {"prompt"}


def check_keywords(call: str, options: Mapping[str, Any], extra: Collection[str] = ()) -> None:
    """TypeError for the first keyword of ``options`` that ``call`` does not take, with the
    likeliest one meant (a CLI flag's name, or a close spelling)."""
    known = keywords() | set(extra)
    for name in options:
        if name not in known:
            raise TypeError(f"{call}(): unknown keyword {name!r}; {_meant(name, known)}")


def _meant(name: str, known: Collection[str]) -> str:
    """``did you mean ...?`` with the keyword of ``known`` likeliest meant by ``name`` (a CLI
    flag's name, or a close spelling), else the list of them."""
    hint = KEYWORD_HINTS.get(name)
    if hint is not None and hint.strip("'").split("=")[0] not in known:
        hint = None
    if hint is None:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = repr(close[0]) if close else None
    return f"did you mean {hint}?" if hint else f"keywords: {', '.join(sorted(known))}"


def live_keywords() -> frozenset[str]:
    """The settings of a live input (:func:`build_live_input`'s keywords)."""
    return frozenset(gen_pb.LiveSettings.DESCRIPTOR.fields_by_name) | {
        "size",
        "tiling",
        "output_encoding",
    }


def check_live_settings(settings: Mapping[str, Any]) -> None:
    """TypeError for the first name of ``settings`` that is no live setting, with the
    likeliest one meant (as :func:`check_keywords` for ``generate``)."""
    known = live_keywords()
    for name in settings:
        if name not in known:
            raise TypeError(f"unknown live setting {name!r}; {_meant(name, known)}")


def quiet_defaults(options: dict[str, Any]) -> None:
    """What ``generate()`` asks for when it has no ``on_event`` to show events to: no Progress
    events and, unless progress or previews were asked for, the Result alone (one message)."""
    options.setdefault("progress", False)
    if not options["progress"] and not options.get("preview_every"):
        options.setdefault("result_only", True)


def build_request(
    prompt: str = "",
    *,
    model: str = "",
    negative_prompt: str = "",
    width: int = 0,
    height: int = 0,
    size: int | None = None,
    steps: int = 0,
    guidance_scale: float | None = None,
    seed: int | None = None,
    num_images: int = 1,
    init_image: ImageInput | None = None,
    strength: float | None = None,
    mask: ImageInput | None = None,
    output_encoding: str = "png",
    preview_every: int = 0,
    preview_max_side: int = 0,
    preview_encoding: str = "jpeg",
    progress: bool = True,
    result_only: bool = False,
    client_request_id: str = "",
    priority: str = "interactive",
    tiling: str = "none",
    transparent: bool = False,
    trim: bool = False,
    padding: int = 0,
    maps: str | list[str] | tuple[str, ...] = (),
    height_blur: float | None = None,
    normal_strength: float | None = None,
    normal_convention: str = "opengl",
    ao_radius: float | None = None,
    ao_strength: float | None = None,
    atlas: bool = False,
    loras: dict[str, float] | None = None,
    tiny_autoencoder: bool = False,
) -> gen_pb.GenerateRequest:
    """Keyword arguments of ``Client.generate`` -> the protobuf request. ``size`` sets
    width and height where they are not given (``size=64, width=128``: 128x64). Zero/None
    means the model's default (None for any keyword: its default). A value of the wrong type
    is a TypeError naming the keyword, one out of range a ValueError.

    Assets: ``tiling`` "x" | "y" | "xy"; ``transparent=True`` for an RGBA sprite (``trim``
    and ``padding`` crop it); ``maps`` "normal,height,roughness,ao" (or a list) with the map
    settings; ``atlas=True`` with ``num_images`` >= 2 packs a sprite sheet.
    ``tiny_autoencoder=True`` (img2img): the model's tiny autoencoder, as a live frame that
    asked for it used (its recipe replays with it). ``progress=False``: no Progress events;
    ``result_only=True``: no events at all but the Result (see :func:`quiet_defaults`)."""
    o = _check_types(locals())
    if o["size"] is not None:  # the side not given as width/height
        o["width"] = o["width"] or o["size"]
        o["height"] = o["height"] or o["size"]
    if o["num_images"] < 1:  # the wire's 0 would mean the default, 1: refused, not guessed
        raise ValueError(f"num_images: must be 1 or more; got {o['num_images']}")
    for field in _WHOLE:
        unsigned(field, o[field])
    unsigned("seed", o["seed"], 64)
    encoding = choice("output_encoding", o["output_encoding"], ENCODINGS)
    preview_enc = choice("preview_encoding", o["preview_encoding"], ENCODINGS)
    prio = choice("priority", o["priority"], PRIORITIES)
    tile = choice("tiling", o["tiling"], TILINGS)
    maps = o["maps"]
    map_list = maps.split(",") if isinstance(maps, str) else list(maps)
    map_kinds = [choice("maps", m.strip(), MAP_KINDS) for m in map_list if m.strip()]
    convention = choice("normal_convention", o["normal_convention"], CONVENTIONS)
    background = gen_pb.BACKGROUND_TRANSPARENT if o["transparent"] else gen_pb.BACKGROUND_OPAQUE
    msg = gen_pb.GenerateRequest(
        model=o["model"],
        prompt=o["prompt"],
        negative_prompt=o["negative_prompt"],
        width=o["width"],
        height=o["height"],
        steps=o["steps"],
        num_images=o["num_images"],
        output_encoding=encoding,
        preview=gen_pb.PreviewSettings(
            every_n_steps=o["preview_every"],
            max_side=o["preview_max_side"],
            encoding=preview_enc,
            no_progress=not o["progress"],
            result_only=o["result_only"],
        ),
        client_request_id=o["client_request_id"],
        priority=prio,
        tiling=tile,
        background=background,
        sprite=gen_pb.SpriteSettings(trim=o["trim"], padding=o["padding"]),
        maps=map_kinds,
        atlas=o["atlas"],
        tiny_autoencoder=o["tiny_autoencoder"],
    )
    settings = msg.map_settings
    settings.convention = convention
    for name in ("height_blur", "normal_strength", "ao_radius", "ao_strength"):
        if o[name] is not None:
            setattr(settings, name, o[name])
    for name in ("guidance_scale", "seed", "strength"):
        if o[name] is not None:
            setattr(msg, name, o[name])
    for name in ("init_image", "mask"):
        if o[name] is not None:
            getattr(msg, name).CopyFrom(image_to_pb(o[name], name))
    msg.loras.update(o["loras"] or {})
    return msg


def build_live_input(
    seq: int,
    image: ImageInput | None = None,
    *,
    size: int | None = None,
    tiling: str | None = None,
    output_encoding: str | None = None,
    **settings: Any,
) -> gen_pb.LiveInput:
    """A LiveInput: ``image`` plus any settings to change (model, prompt, negative_prompt,
    strength, seed, steps, width, height, size, guidance_scale, tiling, output_encoding
    ("raw_rgba8" or "jpeg" skip the PNG encode), stream_batch, tiny_autoencoder,
    similar_skip_threshold (0..1), similar_skip_max)."""
    msg = gen_pb.LiveInput(seq=seq)
    if image is not None:
        msg.image.CopyFrom(image_to_pb(image))
    if size is not None:  # the side not given as width/height
        settings["width"] = settings.get("width") or size
        settings["height"] = settings.get("height") or size
    check_live_settings(settings)
    target = msg.settings
    for name, value in settings.items():
        if value is None:
            continue
        if name in ("seed", "steps", "width", "height", "similar_skip_max"):
            unsigned(name, value, 64 if name == "seed" else 32)
        setattr(target, name, value)
    if tiling is not None:
        target.tiling = choice("tiling", tiling, TILINGS)
    if output_encoding is not None:
        target.output_encoding = choice("output_encoding", output_encoding, ENCODINGS)
    return msg
