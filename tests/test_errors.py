"""Bad input gets the right status code and a message naming the field and the limit."""

from __future__ import annotations

import tempfile
from typing import Any

import grpc
import numpy as np
import pytest

from pixelkiln import AsyncClient, PixelKilnError
from pixelkiln.v1 import image_pb2 as img_pb
from pixelkiln_server.app import Daemon

from .conftest import png_bytes, runner_models

RGB64 = np.zeros((64, 64, 3), dtype=np.uint8)
INVALID = grpc.StatusCode.INVALID_ARGUMENT

CASES: list[tuple[str, dict[str, Any], grpc.StatusCode, list[str]]] = [
    ("width not multiple of 8", {"width": 100}, INVALID, ["width", "multiple of 8", "100"]),
    ("height too small", {"height": 32}, INVALID, ["height", "between 64 and 4096"]),
    ("too many pixels", {"width": 4096, "height": 2048}, INVALID, ["pixels", "4194304"]),
    ("steps too many", {"steps": 51}, INVALID, ["steps", "between 1 and 50", "51"]),
    ("guidance negative", {"guidance_scale": -1.0}, INVALID, ["guidance_scale", "between 0"]),
    ("guidance nan", {"guidance_scale": float("nan")}, INVALID, ["guidance_scale"]),
    ("too many images", {"num_images": 9}, INVALID, ["num_images", "between 1 and 8"]),
    ("strength without init", {"strength": 0.5}, INVALID, ["strength", "init_image"]),
    (
        "strength above 1",
        {"init_image": png_bytes(RGB64), "strength": 1.5},
        INVALID,
        ["strength", "(0, 1]", "1.5"],
    ),
    (
        "strength rounds to zero steps",
        {"init_image": png_bytes(RGB64), "strength": 0.1, "steps": 2},
        INVALID,
        # The float32 the wire carried, shown as the caller wrote it (not 0.10000000149011612).
        ["strength", "steps * strength", "(steps=2, strength=0.1)"],
    ),
    ("mask without init", {"mask": png_bytes(RGB64[:, :, 0])}, INVALID, ["mask", "init_image"]),
    (
        "mask of another size",
        {"init_image": png_bytes(RGB64), "mask": png_bytes(np.zeros((72, 64), np.uint8))},
        INVALID,
        ["mask", "64x72", "64x64"],
    ),
    ("undecodable image", {"init_image": b"\x89PNG not really"}, INVALID, ["init_image", "decode"]),
    (
        "raw image of the wrong length",
        {"init_image": img_pb.Image(data=b"\0" * 10, encoding=4, width=8, height=8)},
        INVALID,
        ["init_image", "256 bytes", "10"],
    ),
    (
        "preview side",
        {"preview_every": 1, "preview_max_side": 5000},
        INVALID,
        ["preview.max_side", "1024"],
    ),
    ("unknown model", {"model": "no-such-model"}, grpc.StatusCode.NOT_FOUND, ["no-such-model"]),
    (
        "missing model folder",
        # Under the tests' model root (the temporary directory): missing is NOT_FOUND there.
        {"model": f"{tempfile.gettempdir()}/pixelkiln-nonexistent/folder/model.safetensors"},
        grpc.StatusCode.NOT_FOUND,
        ["does not exist"],
    ),
]


@pytest.mark.parametrize(
    ("options", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_input(
    aclient: AsyncClient, options: dict[str, Any], code: grpc.StatusCode, words: list[str]
) -> None:
    with pytest.raises(PixelKilnError) as info:
        await aclient.generate("a prompt", **options)
    assert info.value.code is code, info.value
    for word in words:
        assert word in info.value.message, info.value.message
    assert "Traceback" not in info.value.message


async def test_empty_prompt_for_txt2img(aclient: AsyncClient) -> None:
    with pytest.raises(PixelKilnError) as info:
        await aclient.generate("   ")
    assert info.value.code is INVALID
    assert "prompt" in info.value.message
    # ...but img2img may go without a prompt.
    result = await aclient.generate("", init_image=RGB64, strength=0.5, steps=2, seed=0)
    assert result.images


async def test_prompt_too_long(aclient: AsyncClient) -> None:
    with pytest.raises(PixelKilnError) as info:
        await aclient.generate("x" * 4001)
    assert info.value.code is INVALID and "4000" in info.value.message


@pytest.mark.parametrize("device", ["cuda", "mps"])
async def test_out_of_memory_maps_to_resource_exhausted(
    daemon: Daemon, aclient: AsyncClient, device: str
) -> None:
    """Fault injection: the CPU cannot run out of GPU memory on demand, so the pipeline call is
    made to raise what torch raises on CUDA (OutOfMemoryError) and on Apple's MPS (a plain
    RuntimeError, which became INTERNAL); the daemon answers RESOURCE_EXHAUSTED and serves on."""
    import torch

    model: Any = runner_models(daemon)[0]
    pipe = model._pipes["txt2img"]
    original = type(pipe).__call__

    def oom(*args: Any, **kwargs: Any) -> Any:
        if device == "mps":
            raise RuntimeError(
                "MPS backend out of memory (MPS allocated: 17.11 GB, other allocations: "
                "1.02 GB, max allowed: 18.13 GB). Tried to allocate 20.00 GB on private pool."
            )
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    type(pipe).__call__ = oom
    try:
        with pytest.raises(PixelKilnError) as info:
            await aclient.generate("big", seed=1, steps=1)
    finally:
        type(pipe).__call__ = original
    assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "memory" in info.value.message
    assert (await aclient.generate("small", seed=1, steps=1)).images


async def test_unexpected_error_is_internal_without_trace(
    daemon: Daemon, aclient: AsyncClient
) -> None:
    model: Any = runner_models(daemon)[0]
    pipe = model._pipes["txt2img"]
    original = type(pipe).__call__

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("secret internal detail")

    type(pipe).__call__ = boom
    try:
        with pytest.raises(PixelKilnError) as info:
            await aclient.generate("x", seed=1, steps=1)
    finally:
        type(pipe).__call__ = original
    assert info.value.code is grpc.StatusCode.INTERNAL
    assert "secret" not in info.value.message and "Traceback" not in info.value.message
    assert (await aclient.generate("y", seed=1, steps=1)).images
