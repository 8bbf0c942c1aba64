"""The runner port: messages are plain msgpack (never pickle) and domain types round-trip."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import numpy as np
import pytest

from pixelkiln_server.catalogue import PRESETS
from pixelkiln_server.errors import InvalidArgument, ResourceExhausted
from pixelkiln_server.model_options import LoraAdapter, ModelOptions
from pixelkiln_server.runners import port
from pixelkiln_server.types import (
    AtlasImage,
    Background,
    EncodedImage,
    Encoding,
    GenerationRequest,
    MapSettings,
    OutputImage,
    PreviewOptions,
    Priority,
    Recipe,
    Result,
    SeamInfo,
    Tiling,
    Timings,
)


def full_request() -> GenerationRequest:
    return GenerationRequest(
        prompt="mossy stone",
        model="tiny-random",
        negative_prompt="blur",
        width=128,
        height=64,
        steps=3,
        guidance_scale=2.5,
        seed=2**63 + 5,
        num_images=2,
        init_image=EncodedImage(b"\x89PNG...", Encoding.PNG, 128, 64),
        strength=0.6,
        mask=EncodedImage(b"mask", Encoding.PNG, 128, 64),
        output_encoding=Encoding.WEBP,
        preview=PreviewOptions(every_n_steps=1, max_side=64, encoding=Encoding.JPEG),
        client_request_id="abc",
        priority=Priority.BATCH,
        tiling=Tiling.XY,
        background=Background.TRANSPARENT,
        trim=True,
        trim_padding=4,
        maps=("normal", "height"),
        map_settings=MapSettings(height_blur=2.0, convention="directx"),
        atlas=True,
        loras=(("pixel", 0.5), ("style", 1.0)),
    )


def through(message: port.Message) -> port.Message:
    return port.unpack(port.pack(message))


def test_a_request_round_trips_without_its_input_bytes() -> None:
    request = full_request()
    back = port.request_from_wire(through({"r": port.request_to_wire(request)})["r"])
    assert back == replace(
        request,
        init_image=EncodedImage(b"", Encoding.PNG, 128, 64),
        mask=EncodedImage(b"", Encoding.PNG, 128, 64),
    )


def test_a_spec_with_options_and_adapters_round_trips() -> None:
    options = ModelOptions(compile=True, loras=(LoraAdapter("pixel", "/m/p.safetensors", 0.8),))
    spec = replace(PRESETS["tiny-random"], options=options)
    assert port.spec_from_wire(through({"s": spec})["s"]) == spec


def test_a_result_round_trips() -> None:
    image = EncodedImage(b"\x00\x01" * 100, Encoding.RAW_RGBA8, 10, 5)
    result = Result(
        images=[OutputImage(image, 7, 0, {"normal": image}, SeamInfo(1.0, 2.0, 0.5), (1, 2, 3, 4))],
        recipe=Recipe(
            replace(full_request(), init_image=None, mask=None), "r", "0.1", "cpu", "fp32"
        ),
        timings=Timings(1.0, 2.0, 3.0, 4.0),
        atlas=AtlasImage(image, '{"frames": {}}'),
    )
    assert port.result_from_wire(through({"r": result})["r"]) == result


def test_arrays_travel_with_dtype_and_shape_as_views_of_the_message() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    latents = np.linspace(0, 1, 8, dtype=np.float16).reshape(2, 4)
    back = through({"rgb": rgb, "lat": latents, "none": None})
    assert back["rgb"].dtype == np.uint8 and np.array_equal(back["rgb"], rgb)
    assert back["lat"].dtype == np.float16 and np.array_equal(back["lat"], latents)
    assert back["none"] is None
    assert not back["rgb"].flags.owndata  # a view of the received buffer, not a copy


def test_errors_keep_their_code_message_and_field() -> None:
    back = port.error_from_wire(
        through({"e": port.error_to_wire(InvalidArgument("steps", "too many"))})["e"]
    )
    assert isinstance(back, InvalidArgument)
    assert back.field == "steps" and back.message == "steps: too many"
    exhausted = port.error_from_wire(port.error_to_wire(ResourceExhausted("out of memory")))
    assert isinstance(exhausted, ResourceExhausted) and exhausted.message == "out of memory"


def test_objects_that_are_not_plain_data_are_refused() -> None:
    class Opaque:
        pass

    with pytest.raises(TypeError, match="runner port"):
        port.pack({"x": Opaque()})
    with pytest.raises(ValueError, match="map"):
        port.unpack(msgpack.packb([1, 2, 3]))
