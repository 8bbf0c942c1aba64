"""The Python library's surface as a new user meets it: mistakes named by keyword, the
PIXELKILN_ADDRESS default, ``Image.save`` by suffix and ``Client.replay``'s warning."""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from pixelkiln import AsyncClient, Client, Image
from pixelkiln._request import build_live_input, build_request

from .conftest import png_bytes

NOWHERE = "127.0.0.1:1"  # nothing listens: every mistake below is caught before a call

WRONG_TYPES: list[tuple[dict[str, Any], str]] = [
    (
        {"size": (128, 64)},
        "size: expected an int (the side of a square image), got tuple (128, 64); use width= "
        "and height= for other shapes",
    ),
    ({"seed": "7"}, "seed: expected an int, got str '7'"),
    ({"steps": "4"}, "steps: expected an int, got str '4'"),
    ({"width": 64.0}, "width: expected an int, got float 64.0"),
    ({"seed": True}, "seed: expected an int, got bool True"),
    ({"guidance_scale": "4"}, "guidance_scale: expected a number (an int or a float), got str"),
    ({"strength": False}, "strength: expected a number (an int or a float), got bool False"),
    ({"maps": ["normal", 5]}, "maps: expected a str or a list of str (normal, height, "),
    ({"transparent": "no"}, "transparent: expected True or False, got str 'no'"),
    ({"atlas": 1}, "atlas: expected True or False, got int 1"),
    ({"tiling": 2}, "tiling: expected a str, one of none, x, y, xy, got int 2"),
    ({"model": 3}, "model: expected a str, got int 3"),
    ({"loras": {"style": "strong"}}, "loras: expected a dict of adapter name to scale"),
    ({"init_image": 5}, "init_image: cannot send int as an image; pass a file path, "),
]


@pytest.mark.parametrize(("options", "message"), WRONG_TYPES, ids=[str(w[0]) for w in WRONG_TYPES])
def test_a_wrong_type_is_a_type_error_naming_the_keyword(
    options: dict[str, Any], message: str
) -> None:
    with Client(NOWHERE) as client, pytest.raises(TypeError) as info:
        client.generate("stone", **options)
    assert str(info.value).startswith(message), str(info.value)


def test_a_prompt_that_is_not_a_str_is_named() -> None:
    with Client(NOWHERE) as client, pytest.raises(TypeError, match=r"^prompt: expected a str, "):
        client.generate(5)  # type: ignore[arg-type]


def test_right_types_still_build_and_none_means_the_default() -> None:
    request = build_request(
        "stone",
        size=np.int64(64),
        seed=7,
        guidance_scale=4,  # an int is a number
        strength=np.float32(0.5),
        transparent=True,
        maps=("normal", "ao"),
        loras={"style": 1},
        model=None,
        steps=None,
    )
    assert (request.width, request.height, request.seed) == (64, 64, 7)
    assert request.guidance_scale == 4.0 and request.strength == 0.5
    assert request.model == "" and request.steps == 0 and request.num_images == 1


def test_size_fills_only_the_sides_not_given() -> None:
    """``size=64, width=128`` (the CLI's ``--size 64 --width 128``) is 128x64: the side given
    by name wins instead of being dropped without a word."""
    wide = build_request("stone", size=64, width=128)
    tall = build_request("stone", size=64, height=32)
    assert (wide.width, wide.height) == (128, 64)
    assert (tall.width, tall.height) == (64, 32)
    live = build_live_input(1, size=64, width=128)
    assert (live.settings.width, live.settings.height) == (128, 64)


def test_num_images_below_one_is_refused() -> None:
    """0 would travel as "the default" (1 image): refused rather than quietly changed."""
    with pytest.raises(ValueError, match=r"^num_images: must be 1 or more; got 0$"):
        build_request("stone", num_images=0)


UNKNOWN = [
    ("tile", "did you mean 'tiling'?"),
    ("count", "did you mean 'num_images'?"),
    ("negative", "did you mean 'negative_prompt'?"),
    ("guidance", "did you mean 'guidance_scale'?"),
    ("init", "did you mean 'init_image'?"),
    ("directx", 'did you mean normal_convention="directx"?'),
    ("sede", "did you mean 'seed'?"),
    ("on_evnt", "did you mean 'on_event'?"),
]


@pytest.mark.parametrize(("keyword", "hint"), UNKNOWN)
def test_an_unknown_keyword_names_the_one_meant(keyword: str, hint: str) -> None:
    with Client(NOWHERE) as client, pytest.raises(TypeError) as info:
        client.generate("stone", **{keyword: True})
    assert str(info.value) == f"generate(): unknown keyword {keyword!r}; {hint}"


def test_unknown_keywords_of_stream_replay_and_the_async_client() -> None:
    with Client(NOWHERE) as client:
        with pytest.raises(TypeError, match=r"^stream\(\): unknown keyword 'tile'; did you "):
            client.stream("stone", tile="xy")
        with pytest.raises(TypeError, match=r"^replay\(\): unknown keyword 'sede'; did you mean"):
            client.replay({"request": {"prompt": "stone"}}, sede=1)
        with pytest.raises(TypeError) as info:
            client.generate("stone", xyzzy=1)
    assert str(info.value).startswith("generate(): unknown keyword 'xyzzy'; keywords: ")
    assert "num_images" in str(info.value) and "on_event" in str(info.value)


async def test_the_async_client_names_wrong_keywords_and_types() -> None:
    client = AsyncClient(NOWHERE)
    try:
        with pytest.raises(TypeError, match=r"^generate\(\): unknown keyword 'count'; did you "):
            await client.generate("stone", count=2)
        with pytest.raises(TypeError, match=r"^seed: expected an int, got str '7'$"):
            await client.generate("stone", seed="7")
    finally:
        await client.close()


# --- PIXELKILN_ADDRESS ----------------------------------------------------------------------


async def test_clients_without_an_address_read_pixelkiln_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIXELKILN_ADDRESS", "gpu-box:6000")
    with Client() as client:
        assert client.address == "gpu-box:6000"
    with Client("other:1") as client:
        assert client.address == "other:1"  # an address given wins
    aclient = AsyncClient()
    assert aclient.address == "gpu-box:6000"
    await aclient.close()
    monkeypatch.delenv("PIXELKILN_ADDRESS")
    with Client() as client:
        assert client.address == "127.0.0.1:50051"


def test_client_reaches_the_daemon_named_by_pixelkiln_address(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXELKILN_ADDRESS", served)
    with Client(timeout=30) as client:
        assert client.health() == "SERVING"


# --- Image.save -------------------------------------------------------------------------------


def _png(pixels: np.ndarray) -> Image:
    return Image(png_bytes(pixels), "png", pixels.shape[1], pixels.shape[0])


OPAQUE = np.full((16, 16, 3), 120, np.uint8)


@pytest.mark.parametrize(
    ("suffix", "pil_format"),
    [(".png", "PNG"), (".jpg", "JPEG"), (".JPEG", "JPEG"), (".webp", "WEBP")],
)
def test_save_writes_the_format_its_suffix_names(
    suffix: str, pil_format: str, tmp_path: Path
) -> None:
    path = _png(OPAQUE).save(tmp_path / f"stone{suffix}")
    with PILImage.open(path) as img:
        assert img.format == pil_format and img.size == (16, 16)
    assert not list(tmp_path.glob(".*.part"))


def test_save_keeps_bytes_already_in_the_format(tmp_path: Path) -> None:
    image = _png(OPAQUE)
    assert image.save(tmp_path / "a.png").read_bytes() == image.data  # a PNG keeps its recipe
    jpeg = io.BytesIO()
    PILImage.fromarray(OPAQUE).save(jpeg, format="JPEG")
    photo = Image(jpeg.getvalue(), "jpeg", 16, 16)
    assert photo.save(tmp_path / "b.jpeg").read_bytes() == photo.data


@pytest.mark.parametrize("name", ["stone.tga", "stone.bmp", "stone"])
def test_save_refuses_a_suffix_it_cannot_write(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"allowed: \.png, \.jpg, \.jpeg, \.webp$"):
        _png(OPAQUE).save(tmp_path / name)
    assert not list(tmp_path.iterdir())


def test_save_keeps_alpha_where_the_format_can_and_refuses_jpeg(tmp_path: Path) -> None:
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[4:12, 4:12] = (200, 40, 40, 255)  # a sprite on a transparent background
    sprite = _png(rgba)
    with PILImage.open(sprite.save(tmp_path / "sprite.webp")) as img:
        assert img.mode == "RGBA"
        assert img.getchannel("A").getextrema() == (0, 255)
    with pytest.raises(ValueError) as info:
        sprite.save(tmp_path / "sprite.jpg")
    assert "JPEG has no alpha channel" in str(info.value)
    assert "save it as .png or .webp" in str(info.value)
    assert not (tmp_path / "sprite.jpg").exists() and not list(tmp_path.glob(".*.part"))
    # Raw RGBA8 (a live frame's) that is opaque loses nothing as RGB.
    raw = np.dstack([OPAQUE, np.full((16, 16), 255, np.uint8)])
    frame = Image(raw.tobytes(), "raw_rgba8", 16, 16)
    with PILImage.open(frame.save(tmp_path / "frame.jpg")) as img:
        assert img.format == "JPEG" and img.mode == "RGB"


def test_save_without_pillow_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = _png(OPAQUE)
    monkeypatch.setitem(sys.modules, "PIL", None)  # `import PIL...` raises ImportError
    assert image.save(tmp_path / "same.png").read_bytes() == image.data  # needs no Pillow
    with pytest.raises(ImportError, match=r"needs Pillow: pip install 'pixelkiln\[images\]'"):
        image.save(tmp_path / "other.jpg")
    assert not (tmp_path / "other.jpg").exists()


def test_save_into_a_missing_folder_names_the_path_given(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "stone.png"
    with pytest.raises(FileNotFoundError) as info:
        _png(OPAQUE).save(target)
    assert info.value.filename == str(target)
    assert ".part" not in str(info.value)
    assert f"folder {target.parent} does not exist" in str(info.value)


# --- Client.replay ----------------------------------------------------------------------------


def test_replay_with_another_init_image_warns(served: str, tmp_path: Path) -> None:
    sketch = tmp_path / "sketch.png"
    sketch.write_bytes(png_bytes(np.full((64, 64, 3), 90, np.uint8)))
    other = tmp_path / "other.png"
    other.write_bytes(png_bytes(np.full((64, 64, 3), 30, np.uint8)))
    with Client(served, timeout=60) as client:
        made = client.generate("bricks", init_image=sketch, steps=2, seed=3)
        with pytest.warns(UserWarning) as caught:
            client.replay(made.recipe, init_image=other)
        (warning,) = caught
        assert str(warning.message) == (
            f"init_image {other} is not the file this recipe was made with (its SHA-256 "
            "differs): the result will differ"
        )
        assert warning.filename == __file__  # points at the caller's line
        with pytest.warns(UserWarning, match=r"^init_image is not the file"):
            client.replay(made.recipe, init_image=other.read_bytes())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the same file: no warning
            again = client.replay(made.recipe, init_image=sketch)
    assert again.image.data == made.image.data
