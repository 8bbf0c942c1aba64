"""A corpus of bad inputs, generated in code, shared by tests/test_bad_inputs.py and the fuzz
tests: each with the status code(s) it must get and the words its message must contain (the
field, and the limit where there is one)."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import image_pb2 as img_pb

INVALID = "INVALID_ARGUMENT"
MAX_SEED = 2**64 - 1
MAX_U32 = 2**32 - 1


@dataclass(frozen=True)
class Case:
    """``kind``: generate (``body`` a GenerateRequest), live (a LiveInput), load / unload (a
    model name), cancel (a request id)."""

    id: str
    kind: str
    body: Any
    codes: frozenset[str]
    words: tuple[str, ...] = field(default=())


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


RGB64 = np.full((64, 64, 3), 120, np.uint8)
PNG64 = _encode(RGB64, "PNG")
PNG100 = _encode(np.zeros((100, 100, 3), np.uint8), "PNG")  # not a multiple of 8
MASK64 = _encode(np.full((64, 64), 255, np.uint8), "PNG")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header declares ``width`` x ``height`` (a
    decompression bomb: decoding it would allocate width * height pixels)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * 4096)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def gif_declaring(width: int, height: int) -> bytes:
    data = bytearray(_encode(np.zeros((8, 8, 3), np.uint8), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)  # the logical screen size
    # ...and the first image descriptor's size, which is what Pillow reports
    at = data.index(b",", 13)
    data[at + 5 : at + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_declaring(width: int, height: int) -> bytes:
    data = bytearray(_encode(np.zeros((8, 8, 3), np.uint8), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


BOMBS = {"png": png_declaring, "gif": gif_declaring, "bmp": bmp_declaring}


def _undecodable() -> dict[str, bytes]:
    tiff = _encode(RGB64, "TIFF")
    return {
        "random bytes": bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)),
        "png signature only": PNG64[:8],
        "truncated png": PNG64[: len(PNG64) // 2],
        "png with a broken crc": PNG64[:29] + b"\0\0\0\0" + PNG64[33:],
        "jpeg header only": _encode(RGB64, "JPEG")[:20],
        "truncated jpeg": _encode(RGB64, "JPEG")[:200],
        "webp header only": _encode(RGB64, "WEBP")[:16],
        "tiff (not accepted)": tiff,
        "text": b"hello, this is not an image",
        "a zero byte": b"\0",
        "empty": b"",
    }


def gen(**fields: Any) -> gen_pb.GenerateRequest:
    """A GenerateRequest that is valid except for what ``fields`` set (1 step, 64x64)."""
    values: dict[str, Any] = {"prompt": "a prompt", "steps": 1, "width": 64, "height": 64}
    values.update(fields)
    return gen_pb.GenerateRequest(**values)


def _image(data: bytes, **extra: Any) -> img_pb.Image:
    return img_pb.Image(data=data, **extra)


def generate_cases() -> list[Case]:
    cases: list[Case] = []

    def add(id: str, body: Any, words: tuple[str, ...], codes: tuple[str, ...] = (INVALID,)):
        cases.append(Case(id, "generate", body, frozenset(codes), words))

    for side in ("width", "height"):
        for value in (1, 7, 9, 63, 65, 100, 1001, 4095):
            add(f"{side} {value} not a multiple of 8", gen(**{side: value}), (side, "multiple"))
        for value in (8, 16, 32, 56):
            add(f"{side} {value} too small", gen(**{side: value}), (side, "between 64"))
        for value in (4104, 8192, 65536, MAX_U32 - 7):
            add(f"{side} {value} too large", gen(**{side: value}), (side, "4096"))
    for w, h in ((4096, 2048), (2048, 4096), (4096, 4096), (2048, 2056), (3072, 3072)):
        add(f"{w}x{h} too many pixels", gen(width=w, height=h), ("pixels", "4194304"))
    for steps in (51, 100, 1000, MAX_U32):
        add(f"steps {steps}", gen(steps=steps), ("steps", "between 1 and"))
    for g in (-1.0, -0.001, 30.5, 1e9, float("nan"), float("inf"), float("-inf")):
        add(f"guidance {g}", gen(guidance_scale=g), ("guidance_scale", "between 0 and 30"))
    for n in (9, 100, MAX_U32):
        add(f"num_images {n}", gen(num_images=n), ("num_images", "between 1 and 8"))
    for seed, n in ((MAX_SEED, 2), (MAX_SEED - 1, 3), (MAX_SEED - 6, 8), (MAX_SEED - 3, 5)):
        add(
            f"seed {seed} with {n} images wraps",
            gen(seed=seed, num_images=n),
            ("seed", str(MAX_SEED)),
        )
    for s in (0.5, 1.0, 0.0):
        add(f"strength {s} without init_image", gen(strength=s), ("strength", "init_image"))
    init = _image(PNG64)
    for s in (0.0, -0.1, 1.5, float("nan"), float("inf"), float("-inf")):
        add(f"strength {s}", gen(init_image=init, strength=s), ("strength", "(0, 1]"))
    add(
        "strength rounds to 0 steps",
        gen(init_image=init, strength=0.1, steps=2),
        ("steps * strength",),
    )
    for prompt in ("", " ", "\n\t  "):
        add(f"prompt {prompt!r} for txt2img", gen(prompt=prompt), ("prompt", "empty"))
    for n in (4001, 10_000, 100_000):
        add(f"prompt of {n} characters", gen(prompt="x" * n), ("prompt", "4000"))
        add(
            f"negative_prompt of {n} characters",
            gen(negative_prompt="x" * n),
            ("negative_prompt", "4000"),
        )
    for n in (129, 1000):
        add(
            f"client_request_id of {n}",
            gen(client_request_id="c" * n),
            ("client_request_id", "128"),
        )
    for side in (1, 4, 7, 1025, 5000, MAX_U32):
        preview = gen_pb.PreviewSettings(every_n_steps=1, max_side=side)
        add(f"preview.max_side {side}", gen(preview=preview), ("preview.max_side", "1024"))
    preview = gen_pb.PreviewSettings(every_n_steps=2, result_only=True)
    add(
        "result_only with previews",
        gen(preview=preview),
        ("preview.result_only", "preview.every_n_steps"),
    )
    add("mask without init_image", gen(mask=_image(MASK64)), ("mask", "init_image"))
    # The size comes from the image: name it, not width (which the caller never set).
    add(
        "init_image of 100x100",
        gen(init_image=_image(PNG100), strength=1.0, width=0, height=0),
        ("init_image: is 100x100", "width and height"),
    )
    other = _encode(np.zeros((72, 64), np.uint8), "PNG")
    add(
        "mask of another size", gen(init_image=init, mask=_image(other)), ("mask", "64x72", "64x64")
    )
    for name, data in _undecodable().items():
        words = ("init_image", "empty") if not data else ("init_image", "decode")
        add(f"init_image: {name}", gen(init_image=_image(data)), words)
        mwords = ("mask", "empty") if not data else ("mask", "decode")
        add(f"mask: {name}", gen(init_image=init, mask=_image(data)), mwords)
    for fmt, make in BOMBS.items():
        for w, h in ((60000, 60000), (65535, 65535), (5000, 5000), (4097, 4097), (20000, 1000)):
            bomb = make(w, h)
            add(
                f"init_image: {fmt} declaring {w}x{h}",
                gen(init_image=_image(bomb)),
                ("init_image", "16777216"),
            )
            add(
                f"mask: {fmt} declaring {w}x{h}",
                gen(init_image=init, mask=_image(bomb)),
                ("mask", "16777216"),
            )
    raw = img_pb.ENCODING_RAW_RGBA8
    for w, h, n in ((8, 8, 10), (8, 8, 257), (64, 64, 0), (0, 8, 4), (8, 0, 4), (60000, 60000, 16)):
        body = gen(init_image=_image(b"\0" * n, encoding=raw, width=w, height=h))
        add(f"raw RGBA8 {w}x{h} with {n} bytes", body, ("init_image",))
    add(
        "maps with JPEG output",
        gen(maps=[gen_pb.MAP_KIND_NORMAL], output_encoding=img_pb.ENCODING_JPEG),
        ("maps", "lossless"),
    )
    for kind in (0, 99, 12345):
        add(f"unknown map kind {kind}", gen(maps=[kind]), ("maps", "unknown kind"))
    for name, value in (
        ("height_blur", 65.0),
        ("normal_strength", 0.0),
        ("normal_strength", 101.0),
        ("ao_radius", 0.0),
        ("ao_radius", 65.0),
        ("ao_strength", 11.0),
        ("ao_strength", -1.0),
        ("height_blur", float("nan")),
    ):
        settings = gen_pb.MapSettings(**{name: value})
        add(
            f"map_settings.{name} {value}",
            gen(maps=[gen_pb.MAP_KIND_NORMAL], map_settings=settings),
            ("map_settings",),
        )
    add("atlas with one image", gen(atlas=True), ("atlas", "num_images >= 2"))
    add(
        "transparent JPEG",
        gen(background=gen_pb.BACKGROUND_TRANSPARENT, output_encoding=img_pb.ENCODING_JPEG),
        ("output_encoding", "transparency"),
    )
    add("trim without transparency", gen(sprite=gen_pb.SpriteSettings(trim=True)), ("sprite.trim",))
    add(
        "padding without trim",
        gen(background=gen_pb.BACKGROUND_TRANSPARENT, sprite=gen_pb.SpriteSettings(padding=4)),
        ("sprite.padding", "needs sprite.trim"),
    )
    for pad in (257, 10_000):
        body = gen(
            background=gen_pb.BACKGROUND_TRANSPARENT,
            sprite=gen_pb.SpriteSettings(trim=True, padding=pad),
        )
        add(f"sprite.padding {pad}", body, ("sprite.padding", "256"))
    add("unknown LoRA adapter", gen(loras={"nope": 1.0}), ("loras",))
    add(
        "17 map entries",
        gen(maps=[gen_pb.MAP_KIND_NORMAL] * 17),
        ("maps", "at most 16 entries (normal, height, roughness, ao), got 17"),
    )
    add(  # counted before conversion: 60 million of them once stalled the event loop 26 s
        "a million map entries",
        gen(maps=[gen_pb.MAP_KIND_AO] * 1_000_000),
        ("maps", "got 1,000,000"),
    )
    add(
        "17 LoRA adapters",
        gen(loras={f"a{i}": 1.0 for i in range(17)}),
        ("loras", "at most 16 adapters in one request, got 17"),
    )
    # An over-long adapter name is refused without being repeated (100,000 characters echoed
    # in the message once overflowed gRPC's metadata: RESOURCE_EXHAUSTED).
    for n in (129, 1000, 100_000):
        add(
            f"LoRA adapter name of {n} characters",
            gen(loras={"l" * n: 1.0}),
            ("loras", "adapter names are at most 128 characters", f"got {n}"),
        )
    add(
        "unknown LoRA adapter of 128 characters",
        gen(loras={"n" * 128: 1.0}),
        ("loras", "n" * 64 + "'…(128 chars)"),
    )
    # Enum numbers the proto does not define are refused, never served as the default.
    encodings = "allowed: PNG, JPEG, WEBP, RAW_RGBA8"
    for value in (5, 99, -1):
        add(
            f"output_encoding {value}",
            gen(output_encoding=value),
            ("output_encoding", f"unknown value {value}", encodings),
        )
    for value in (5, 99):
        add(
            f"preview.encoding {value}",
            gen(preview=gen_pb.PreviewSettings(encoding=value)),
            ("preview.encoding", f"unknown value {value}", encodings),
        )
        add(
            f"init_image.encoding {value}",
            gen(init_image=_image(PNG64, encoding=value)),
            ("init_image.encoding", f"unknown value {value}", encodings),
        )
        add(
            f"mask.encoding {value}",
            gen(init_image=init, mask=_image(MASK64, encoding=value)),
            ("mask.encoding", f"unknown value {value}", encodings),
        )
    # LIVE is the class of live frames, served before everything: not for Generate.
    add("priority LIVE", gen(priority=gen_pb.PRIORITY_LIVE), ("priority", "live sessions"))
    for value in (3, 99):
        add(
            f"priority {value}",
            gen(priority=value),
            ("priority", f"unknown value {value}", "allowed: INTERACTIVE, BATCH"),
        )
    for value in (4, 99):
        add(
            f"tiling {value}",
            gen(tiling=value),
            ("tiling", f"unknown value {value}", "allowed: NONE, X, Y, XY"),
        )
    for value in (2, 99):
        add(
            f"background {value}",
            gen(background=value),
            ("background", f"unknown value {value}", "allowed: OPAQUE, TRANSPARENT"),
        )
    # Names: over-long or malformed ones are INVALID_ARGUMENT whatever the loading policy;
    # names of models that are not there are the policy's to answer.
    for name, words in _bad_names("model"):
        add(f"model {name[:24]!r}... ({len(name)} chars)", gen(model=name), words)
    for name in ("no-such-model", "nobody/does-not-exist", "/nonexistent/folder", "../../etc"):
        add(f"model {name!r}", gen(model=name), ("model",), ("NOT_FOUND", "PERMISSION_DENIED"))
    return cases


def _bad_names(field: str) -> list[tuple[str, tuple[str, ...]]]:
    return [
        ("a" * 256, (field, "255")),
        ("b" * 300, (field, "255")),
        ("owner/" + "c" * 256, (field, "255")),
        ("/tmp/" + "d" * 300, (field, "255")),
        ("é" * 200, (field, "255")),  # 400 bytes of UTF-8 in one part
        ("x/" * 600, (field, "1024")),
        ("e" * 5000, (field, "1024")),
        ("tiny\x00random", (field, "control")),
        ("tiny\nrandom", (field, "control")),
        ("\x7f", (field, "control")),
    ]


def other_cases() -> list[Case]:
    cases = [Case("cancel without an id", "cancel", "", frozenset({INVALID}), ("request_id",))]
    for op in ("load", "unload"):
        cases.append(Case(f"{op} without a name", op, "", frozenset({INVALID}), ("name",)))
        for name, words in _bad_names("name"):
            cases.append(
                Case(
                    f"{op} {name[:24]!r}... ({len(name)} chars)",
                    op,
                    name,
                    frozenset({INVALID}),
                    words,
                )
            )
    live = [
        ("width 100", gen_pb.LiveSettings(width=100), ("width", "multiple")),
        ("steps 51", gen_pb.LiveSettings(steps=51), ("steps",)),
        ("strength 1.5", gen_pb.LiveSettings(strength=1.5), ("strength",)),
        # These once reached the frame's step count first: NaN answered INTERNAL, and 0 or
        # less named steps (1000 of them), a field the caller never set.
        ("strength nan", gen_pb.LiveSettings(strength=float("nan")), ("strength", "(0, 1]")),
        ("strength 0", gen_pb.LiveSettings(strength=0.0), ("strength", "(0, 1]")),
        ("strength -1", gen_pb.LiveSettings(strength=-1.0), ("strength", "(0, 1]")),
        ("model too long", gen_pb.LiveSettings(model="m" * 300), ("model", "255")),
        ("prompt too long", gen_pb.LiveSettings(prompt="p" * 4001), ("prompt", "4000")),
        ("guidance nan", gen_pb.LiveSettings(guidance_scale=float("nan")), ("guidance_scale",)),
        (
            "similar threshold 1.5",
            gen_pb.LiveSettings(similar_skip_threshold=1.5),
            ("similar_skip_threshold", "between 0 and 1"),
        ),
        (
            "similar threshold -0.1",
            gen_pb.LiveSettings(similar_skip_threshold=-0.1),
            ("similar_skip_threshold", "between 0 and 1"),
        ),
        (
            "similar threshold nan",
            gen_pb.LiveSettings(similar_skip_threshold=float("nan")),
            ("similar_skip_threshold",),
        ),
        (
            "similar max 1001",
            gen_pb.LiveSettings(similar_skip_max=1001),
            ("similar_skip_max", "1000"),
        ),
        (
            "tiling 99",
            gen_pb.LiveSettings(tiling=99),
            ("tiling", "unknown value 99", "allowed: NONE, X, Y, XY"),
        ),
        (
            "output_encoding 99",
            gen_pb.LiveSettings(output_encoding=99),
            ("output_encoding", "unknown value 99", "allowed: PNG, JPEG, WEBP, RAW_RGBA8"),
        ),
    ]
    live.append(
        # One img2img step would need 1,000,000 steps: strength is named, not steps.
        ("strength 1e-6", gen_pb.LiveSettings(strength=1e-6), ("strength", "raise strength"))
    )
    for name, settings, words in live:
        body = gen_pb.LiveInput(seq=1, image=_image(PNG64), settings=settings)
        cases.append(Case(f"live {name}", "live", body, frozenset({INVALID}), words))
    body = gen_pb.LiveInput(seq=1, image=_image(PNG100))  # a resized editor canvas
    cases.append(
        Case("live image of 100x100", "live", body, frozenset({INVALID}), ("image: is 100x100",))
    )
    body = gen_pb.LiveInput(seq=1, image=_image(PNG64, encoding=99))
    cases.append(
        Case(
            "live image.encoding 99",
            "live",
            body,
            frozenset({INVALID}),
            ("image.encoding", "unknown value 99"),
        )
    )
    for name, data in list(_undecodable().items())[:6]:
        body = gen_pb.LiveInput(seq=1, image=_image(data), settings=gen_pb.LiveSettings(prompt="x"))
        cases.append(Case(f"live image: {name}", "live", body, frozenset({INVALID}), ("image: ",)))
    bomb = gen_pb.LiveInput(seq=1, image=_image(png_declaring(60000, 60000)))
    cases.append(
        Case("live image: png bomb", "live", bomb, frozenset({INVALID}), ("image: ", "16777216"))
    )
    return cases


def all_cases() -> list[Case]:
    return generate_cases() + other_cases()
