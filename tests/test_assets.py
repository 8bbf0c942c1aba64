"""Game-ready assets end to end on tiny-random: tiling, sprites, maps, atlases, recipes."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from pixelkiln import AsyncClient, PixelKilnError
from pixelkiln_server import assets, validation
from pixelkiln_server.app import Daemon
from pixelkiln_server.backends import tiling
from pixelkiln_server.backends.base import LoadOptions
from pixelkiln_server.backends.tiny_random import TinyRandomBackend
from pixelkiln_server.catalogue import PRESETS
from pixelkiln_server.config import Limits
from pixelkiln_server.imaging.seam import seam_metric
from pixelkiln_server.types import GenerationRequest

from .conftest import ROOT, decode, home_dir, png_bytes


def rgba(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    assert img.mode == "RGBA"
    return np.asarray(img)


@pytest.fixture(scope="module")
def tiny_pipe() -> object:
    model = TinyRandomBackend().load(PRESETS["tiny-random"], LoadOptions(home=home_dir()))
    return model._pipes["txt2img"]  # type: ignore[attr-defined]


def _run(pipe: object, latents: object, size: tuple[int, int]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        out = pipe(  # type: ignore[operator]
            "stone",
            latents=latents,
            width=size[0],
            height=size[1],
            num_inference_steps=2,
            guidance_scale=0.0,
            output_type="np",
        )
    return np.asarray(out.images[0])


def test_circular_padding_makes_output_wrap_exactly(tiny_pipe: object) -> None:
    """Generating from latents tiled 2x equals tiling the output 2x (to float tolerance)."""
    import torch

    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    modules = [tiny_pipe.unet, tiny_pipe.vae]  # type: ignore[attr-defined]
    with tiling.circular_padding(modules, True, True) as patched:
        assert patched > 20
        single = _run(tiny_pipe, z, (64, 64))
        double = _run(tiny_pipe, z.repeat(1, 1, 2, 2), (128, 128))
    assert np.abs(double - np.tile(single, (2, 2, 1))).max() < 1e-4
    # The same check fails without circular padding (so the test can fail).
    plain_double = _run(tiny_pipe, z.repeat(1, 1, 2, 2), (128, 128))
    assert np.abs(plain_double - np.tile(_run(tiny_pipe, z, (64, 64)), (2, 2, 1))).max() > 1e-2


def test_circular_padding_one_axis(tiny_pipe: object) -> None:
    import torch

    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    modules = [tiny_pipe.unet, tiny_pipe.vae]  # type: ignore[attr-defined]
    with tiling.circular_padding(modules, True, False):
        single = _run(tiny_pipe, z, (64, 64))
        wide = _run(tiny_pipe, z.repeat(1, 1, 1, 2), (128, 64))
    assert np.abs(wide - np.tile(single, (1, 2, 1))).max() < 1e-4


async def test_tiling_does_not_leak_into_the_next_request(aclient: AsyncClient) -> None:
    before = await aclient.generate("moss", seed=11, steps=2)
    tiled = await aclient.generate("moss", seed=11, steps=2, tiling="xy")
    after = await aclient.generate("moss", seed=11, steps=2)
    assert np.array_equal(decode(before.image.data), decode(after.image.data))
    assert not np.array_equal(decode(before.image.data), decode(tiled.image.data))
    assert before.image.seam is None
    seam = tiled.image.seam
    assert seam is not None
    expected = seam_metric(decode(tiled.image.data), "xy")
    assert seam["ratio"] == pytest.approx(expected.ratio, rel=1e-5)
    assert tiled.recipe["request"]["tiling"] == "xy"


async def test_dit_method_shifts_and_inpaints_the_seam_cross(
    daemon: Daemon, aclient: AsyncClient
) -> None:
    """The DiT tiling method, exercised on tiny-random's weights by forcing the method."""
    spec = replace(PRESETS["tiny-random"], name="tiny-offset", tiling="offset-inpaint")
    daemon.engine.registry.register(spec)
    plain = decode(
        (await aclient.generate("lava", model="tiny-offset", seed=5, steps=2)).image.data
    )
    tiled = await aclient.generate("lava", model="tiny-offset", seed=5, steps=2, tiling="xy")
    out = decode(tiled.image.data)
    mask = tiling.seam_cross_mask(64, 64, True, True, band=16)
    keep = mask == 0
    assert keep.sum() > 0 and (mask == 1).sum() > 0
    shifted = tiling.shift_half(plain, True, True)
    assert np.abs(out[keep].astype(int) - shifted[keep]).max() <= 1
    assert np.abs(out[mask == 1].astype(int) - shifted[mask == 1]).mean() > 2
    with pytest.raises(PixelKilnError) as info:
        await aclient.generate(
            "x",
            model="tiny-offset",
            tiling="x",
            init_image=png_bytes(plain),
            mask=png_bytes(np.full((64, 64), 255, np.uint8)),
            steps=2,
        )
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT and "mask" in info.value.message


async def test_transparent_sprite_is_rgba_and_trims(aclient: AsyncClient) -> None:
    result = await aclient.generate("gold coin sprite", seed=3, steps=2, transparent=True)
    pixels = rgba(result.image.data)
    assert pixels.shape == (64, 64, 4)
    assert result.recipe["request"]["background"] == "transparent"
    assert result.recipe["request"]["prompt"] == "gold coin sprite"  # not the augmented one
    trimmed = await aclient.generate(
        "gold coin sprite", seed=3, steps=2, transparent=True, trim=True, padding=2
    )
    x, y, w, h = trimmed.image.trim_box  # type: ignore[misc]
    assert rgba(trimmed.image.data).shape == (h, w, 4)
    assert x >= 0 and y >= 0 and x + w <= 64 and y + h <= 64


async def test_maps_come_back_and_tile(aclient: AsyncClient) -> None:
    result = await aclient.generate(
        "mossy cobblestone",
        seed=8,
        steps=2,
        size=128,
        tiling="xy",
        maps="normal,height,roughness,ao",
        normal_strength=3.0,
    )
    image = result.image
    assert set(image.maps) == {"normal", "height", "roughness", "ao"}
    normal = np.asarray(image.maps["normal"].to_pil())
    assert normal.shape == (128, 128, 3)
    assert np.asarray(image.maps["height"].to_pil()).shape == (128, 128)
    # Maps of a tiling texture tile too: their wrap edge looks like an interior line.
    for kind in ("normal", "height", "ao"):
        ratio = seam_metric(np.asarray(image.maps[kind].to_pil()), "xy").ratio
        assert ratio < 1.5, (kind, ratio)
    directx = await aclient.generate(
        "mossy cobblestone",
        seed=8,
        steps=2,
        size=128,
        tiling="xy",
        maps="normal",
        normal_strength=3.0,
        normal_convention="directx",
    )
    dx = np.asarray(directx.image.maps["normal"].to_pil()).astype(int)
    assert np.array_equal(dx[:, :, 0], normal[:, :, 0])
    assert np.abs(dx[:, :, 1] - (255 - normal[:, :, 1].astype(int))).max() <= 1


async def test_repeated_maps_are_derived_once(aclient: AsyncClient) -> None:
    """maps normal,normal,height: two maps come back, and the recipe asks for two."""
    result = await aclient.generate("slate", seed=4, steps=1, maps="normal,normal,height")
    assert list(result.image.maps) == ["normal", "height"]
    assert result.recipe["request"]["maps"] == ["normal", "height"]


def test_validate_dedupes_maps_and_each_is_derived_once(monkeypatch: pytest.MonkeyPatch) -> None:
    request = GenerationRequest(prompt="x", maps=("normal", "normal", "height", "normal"))
    resolved, _ = validation.resolve(request, PRESETS["tiny-random"], Limits())
    assert resolved.maps == ("normal", "height")
    asked: list[list[str]] = []
    derive = assets.pbr.derive_maps

    def spy(rgb: np.ndarray, kinds: list[str], *args: Any) -> dict[str, np.ndarray]:
        asked.append(list(kinds))
        return derive(rgb, kinds, *args)

    monkeypatch.setattr(assets.pbr, "derive_maps", spy)
    outputs, _ = assets.build_outputs(resolved, [np.zeros((64, 64, 3), np.float32)], {})
    assert asked == [["normal", "height"]]
    assert list(outputs[0].maps) == ["normal", "height"]


def test_a_repeated_map_counts_once_toward_the_result_size() -> None:
    """300 x ao at 512x512 is one map of 1 MiB raw, not 300 (300 MiB, over the limit)."""
    request = GenerationRequest(prompt="x", width=512, height=512, maps=("ao",) * 300)
    resolved, _ = validation.resolve(request, PRESETS["tiny-random"], Limits())
    assert resolved.maps == ("ao",)


async def test_atlas_packs_every_frame(aclient: AsyncClient) -> None:
    result = await aclient.generate("gem", seed=20, steps=1, num_images=4, atlas=True)
    assert result.atlas is not None and result.atlas_frames is not None
    sheet = np.asarray(result.atlas.to_pil().convert("RGB"))
    frames = result.atlas_frames["frames"]
    assert len(frames) == 4
    for image in result.images:
        frame = frames[f"frame_{image.index:03d}"]
        assert frame["seed"] == image.seed
        f = frame["frame"]
        crop = sheet[f["y"] : f["y"] + f["h"], f["x"] : f["x"] + f["w"]]
        assert np.array_equal(crop, decode(image.data))


async def test_asset_recipe_replays_byte_for_byte(aclient: AsyncClient) -> None:
    first = await aclient.generate(
        "red brick wall", seed=30, steps=2, tiling="x", maps="normal", height_blur=2.0
    )
    again = await aclient.replay(first.recipe)
    assert again.image.data == first.image.data
    assert again.image.maps["normal"].data == first.image.maps["normal"].data


BAD = [
    ({"maps": "normal", "output_encoding": "jpeg"}, "maps", "lossless"),
    ({"maps": "normal", "normal_strength": 0.0}, "map_settings", "normal_strength"),
    ({"atlas": True}, "atlas", "num_images >= 2"),
    ({"transparent": True, "output_encoding": "jpeg"}, "output_encoding", "transparency"),
    ({"trim": True}, "sprite.trim", "TRANSPARENT"),
    ({"transparent": True, "trim": True, "padding": 1000}, "sprite.padding", "256"),
    ({"transparent": True, "padding": 4}, "sprite.padding", "needs sprite.trim"),
]


@pytest.mark.parametrize(("options", "field", "words"), BAD)
async def test_bad_asset_options(
    aclient: AsyncClient, options: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(PixelKilnError) as info:
        await aclient.generate("x", steps=1, **options)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message.startswith(field) and words in info.value.message


def test_cli_writes_texture_maps_and_atlas(served: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pixelkiln.cli", *args, "--address", served],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )

    stone = tmp_path / "stone.png"
    proc = run(
        "generate",
        "mossy cobblestone",
        "--tile",
        "xy",
        "--maps",
        "normal,height",
        "--size",
        "128",
        "--steps",
        "2",
        "-o",
        str(stone),
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("stone.png", "stone_normal.png", "stone_height.png"):
        assert Image.open(tmp_path / name).size == (128, 128)
    assert "seam ratio" in proc.stdout
    sheet = tmp_path / "coins.png"
    proc = run(
        "generate",
        "coin",
        "--transparent",
        "--count",
        "4",
        "--atlas",
        "--trim",
        "--steps",
        "1",
        "-o",
        str(sheet),
    )
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "coins_atlas.png").mode == "RGBA"
    frames = json.loads((tmp_path / "coins_atlas.json").read_text())
    assert frames["meta"]["image"] == "coins_atlas.png"
    # Named after the files written beside the sheet; each says where its trimmed sprite sat.
    assert sorted(frames["frames"]) == [f"coins_{i}.png" for i in range(4)]
    first = frames["frames"]["coins_0.png"]
    assert first["sourceSize"] == {"w": 64, "h": 64}
    assert Image.open(tmp_path / "coins_0.png").size == (first["frame"]["w"], first["frame"]["h"])
    assert Image.open(tmp_path / "coins_0.png").mode == "RGBA"


def test_maps_of_a_model_whose_outputs_wrap_are_derived_across_the_edges() -> None:
    """The shipped model tiles every output: its maps did not unless --tile was given (the
    albedo tiled, the normal map showed a seam)."""
    from pixelkiln_server.imaging import codec
    from pixelkiln_server.imaging import maps as pbr

    rgb = np.random.default_rng(3).random((64, 64, 3), dtype=np.float32)
    req = GenerationRequest(prompt="x", width=64, height=64, seed=1, maps=("normal",))
    wrapped = pbr.derive_maps(codec.to_uint8(rgb), ["normal"], assets.options(req), True, True)
    flat = pbr.derive_maps(codec.to_uint8(rgb), ["normal"], assets.options(req), False, False)
    for wraps, expected in ((True, wrapped), (False, flat)):
        (out,), _ = assets.build_outputs(req, [rgb], {}, wraps=wraps)
        got = np.asarray(Image.open(io.BytesIO(out.maps["normal"].data)))
        assert np.array_equal(got, expected["normal"]), wraps
    assert not np.array_equal(wrapped["normal"], flat["normal"])
