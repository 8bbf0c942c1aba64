"""Refusals at the door that tests/bad_inputs.py also sends over both transports, checked
here where they are made: over-long LoRA adapter names (never echoed whole) and enum numbers
the proto does not define (never served as the default)."""

from __future__ import annotations

import pytest

from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import image_pb2 as img_pb
from pixelkiln_server import convert, validation
from pixelkiln_server.backends import lora
from pixelkiln_server.catalogue import PRESETS
from pixelkiln_server.config import Limits
from pixelkiln_server.errors import InvalidArgument
from pixelkiln_server.model_options import LoraAdapter
from pixelkiln_server.types import Background, Encoding, GenerationRequest, Priority, Tiling

SPEC = PRESETS["tiny-random"]


@pytest.mark.parametrize("n", [129, 1000, 100_000])
def test_long_lora_names_are_refused_without_the_name(n: int) -> None:
    request = GenerationRequest(prompt="x", loras=(("a" * n, 1.0),))
    with pytest.raises(InvalidArgument) as info:
        validation.resolve(request, SPEC, Limits())
    assert info.value.field == "loras"
    assert info.value.message == f"loras: adapter names are at most 128 characters, got {n}"


def test_a_128_character_lora_name_passes_validation() -> None:
    request = GenerationRequest(prompt="x", loras=(("a" * 128, 1.0),))
    resolved, _ = validation.resolve(request, SPEC, Limits())
    assert resolved.loras == (("a" * 128, 1.0),)


@pytest.mark.parametrize("n", [65, 128, 100_000])
def test_resolve_scales_shows_at_most_64_characters_of_a_name(n: int) -> None:
    name = "z" * n
    adapters = (LoraAdapter(name="detail", path="/x", scale=1.0),)
    with pytest.raises(InvalidArgument) as info:
        lora.resolve_scales(((name, 1.0),), adapters, "m")
    message = info.value.message
    assert "z" * 64 in message and "z" * 65 not in message
    assert f"({n} chars)" in message and "detail" in message
    with pytest.raises(InvalidArgument) as info:
        lora.resolve_scales((("detail", float("nan")), ("q" * n, 1.0)), adapters, "m")
    assert len(info.value.message) < 200


def test_short_lora_names_are_shown_whole() -> None:
    with pytest.raises(InvalidArgument) as info:
        lora.resolve_scales((("nope", 1.0),), (), "m")
    assert "has no LoRA adapter 'nope' (loaded: none)" in info.value.message


def test_known_enum_values_and_unspecified_convert() -> None:
    msg = gen_pb.GenerateRequest(prompt="x")
    req = convert.request_from_pb(msg)
    assert (req.output_encoding, req.preview.encoding) == (Encoding.PNG, Encoding.JPEG)
    assert (req.priority, req.tiling, req.background) == (
        Priority.INTERACTIVE,
        Tiling.NONE,
        Background.OPAQUE,
    )
    msg = gen_pb.GenerateRequest(
        prompt="x",
        output_encoding=img_pb.ENCODING_WEBP,
        preview=gen_pb.PreviewSettings(encoding=img_pb.ENCODING_PNG),
        priority=gen_pb.PRIORITY_BATCH,
        tiling=gen_pb.TILING_XY,
        background=gen_pb.BACKGROUND_TRANSPARENT,
    )
    req = convert.request_from_pb(msg)
    assert (req.output_encoding, req.preview.encoding) == (Encoding.WEBP, Encoding.PNG)
    assert (req.priority, req.tiling, req.background) == (
        Priority.BATCH,
        Tiling.XY,
        Background.TRANSPARENT,
    )


@pytest.mark.parametrize(
    ("fields", "field", "allowed"),
    [
        ({"output_encoding": 99}, "output_encoding", "PNG, JPEG, WEBP, RAW_RGBA8"),
        ({"preview": {"encoding": 99}}, "preview.encoding", "PNG, JPEG, WEBP, RAW_RGBA8"),
        ({"init_image": {"data": b"x", "encoding": 99}}, "init_image.encoding", "PNG, JPEG"),
        ({"mask": {"data": b"x", "encoding": 99}}, "mask.encoding", "PNG, JPEG"),
        ({"priority": 99}, "priority", "INTERACTIVE, BATCH"),
        ({"tiling": 99}, "tiling", "NONE, X, Y, XY"),
        ({"background": 99}, "background", "OPAQUE, TRANSPARENT"),
    ],
)
def test_unknown_enum_values_are_refused(
    fields: dict[str, object], field: str, allowed: str
) -> None:
    msg = gen_pb.GenerateRequest(prompt="x", **fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as info:
        convert.request_from_pb(msg)
    assert info.value.field == field
    assert info.value.message.startswith(f"{field}: unknown value 99; allowed: {allowed}")
    assert "UNSPECIFIED" not in info.value.message


@pytest.mark.parametrize(
    ("settings", "field"),
    [({"tiling": 99}, "tiling"), ({"output_encoding": 99}, "output_encoding")],
)
def test_unknown_live_enum_values_are_refused(settings: dict[str, object], field: str) -> None:
    msg = gen_pb.LiveInput(seq=1, settings=settings)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as info:
        convert.live_input_from_pb(msg)
    assert info.value.message.startswith(f"{field}: unknown value 99; allowed: ")


def test_live_enum_values_unset_or_known() -> None:
    update = convert.live_input_from_pb(gen_pb.LiveInput(seq=1)).settings
    assert update.tiling is None and update.output_encoding is None
    msg = gen_pb.LiveInput(
        seq=1, settings=gen_pb.LiveSettings(tiling=gen_pb.TILING_X, output_encoding=0)
    )
    update = convert.live_input_from_pb(msg).settings
    assert update.tiling is Tiling.X and update.output_encoding is Encoding.PNG


def test_a_result_exactly_at_the_message_limit_is_refused_before_it_is_made() -> None:
    """512x512 RGBA8 is exactly 1 MiB raw: with --max-message-mib 1 it was accepted, made, then
    refused by gRPC ("Sent message larger than max"); the recipe and framing need room too."""
    limits = Limits(max_result_bytes=2**20)
    exact = GenerationRequest(prompt="x", width=512, height=512, num_images=1)
    with pytest.raises(InvalidArgument) as info:
        validation._check_request_size(exact, limits)
    assert info.value.field == "num_images" and "message limit" in info.value.message
    validation._check_request_size(GenerationRequest(prompt="x", width=496, height=512), limits)
