"""Tiny SDXL, FLUX and Z-Image pipelines: built offline, served end to end by a real daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from pixelkiln import AsyncClient, Preview, Progress, Result
from pixelkiln_server.backends import registry, tiling
from pixelkiln_server.catalogue import PRESETS, lookup

from .conftest import ROOT, decode, running_daemon

pytest.importorskip("diffusers")

TINY = ("tiny-sdxl", "tiny-flux", "tiny-z-image")
SERVER_DIR = ROOT / "server"


def test_modules_import_without_torch() -> None:
    code = (
        "import sys\n"
        "import pixelkiln_server.backends.tiny_families, pixelkiln_server.backends.onnx_backend\n"
        "import pixelkiln_server.onnx_export\n"
        "heavy = {'torch', 'diffusers', 'transformers', 'onnxruntime'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(SERVER_DIR)}, timeout=60
    )


def test_presets_document_the_real_models() -> None:
    flux, zimage = PRESETS["flux.1-schnell"], PRESETS["z-image-turbo"]
    assert (flux.source, flux.family, flux.pipeline) == (
        "black-forest-labs/FLUX.1-schnell",
        "flux",
        "FluxPipeline",
    )
    assert (flux.native_width, flux.default_steps, flux.default_guidance) == (1024, 4, 0.0)
    assert (zimage.source, zimage.family, zimage.pipeline) == (
        "Tongyi-MAI/Z-Image-Turbo",
        "z-image",
        "ZImagePipeline",
    )
    assert (zimage.native_width, zimage.default_steps, zimage.default_guidance) == (1024, 8, 0.0)
    assert flux.memory_gb > zimage.memory_gb > PRESETS["sdxl-turbo"].memory_gb > 0
    assert flux.tiling_method == zimage.tiling_method == "offset-inpaint"
    for name in TINY:
        assert PRESETS[name].backend in registry.names()
    assert lookup("black-forest-labs/FLUX.1-dev").family == "flux"


def test_flux_previews_unpack_like_the_pipeline() -> None:
    import torch
    from diffusers import FluxPipeline

    from pixelkiln_server.backends.diffusers_steps import spatial_latents
    from pixelkiln_server.types import GenerationRequest

    packed = torch.randn(2, (96 // 16) * (64 // 16), 64)
    expected = FluxPipeline._unpack_latents(packed, 64, 96, 8).numpy()
    got = spatial_latents(packed.numpy(), GenerationRequest(width=96, height=64), 8)
    assert got.shape == (2, 16, 8, 12)
    assert np.array_equal(got, expected)


@pytest_asyncio.fixture(scope="module")
async def fclient() -> AsyncIterator[AsyncClient]:
    async with running_daemon() as daemon:
        client = AsyncClient(daemon.address, timeout=120)
        yield client
        await client.close()


@pytest.mark.parametrize("model", TINY)
async def test_family_generates_deterministically(fclient: AsyncClient, model: str) -> None:
    events = [e async for e in fclient.stream("mossy stone", model=model, seed=3, preview_every=1)]
    result = events[-1]
    assert isinstance(result, Result)
    steps = PRESETS[model].default_steps
    assert [e.step for e in events if isinstance(e, Progress)] == list(range(1, steps + 1))
    previews = [e for e in events if isinstance(e, Preview)]
    assert [p.step for p in previews] == list(range(1, steps + 1))
    assert max(previews[0].images[0].to_pil().size) == 64  # never above the result
    pixels = decode(result.image.data)
    assert pixels.shape == (64, 64, 3) and pixels.std() > 1
    assert result.recipe["request"]["model"] == model
    again = await fclient.generate("mossy stone", model=model, seed=3)
    other = await fclient.generate("mossy stone", model=model, seed=4)
    assert np.array_equal(decode(again.image.data), pixels)
    assert not np.array_equal(decode(other.image.data), pixels)
    wide = await fclient.generate("mossy stone", model=model, seed=3, width=96, height=64)
    assert decode(wide.image.data).shape == (64, 96, 3)


@pytest.mark.parametrize("model", ["tiny-flux", "tiny-z-image"])
async def test_dit_img2img_keeps_the_requested_size(fclient: AsyncClient, model: str) -> None:
    """FLUX/Z-Image img2img pipelines default to 1024 unless given the size."""
    init = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    result = await fclient.generate("wood", model=model, init_image=init, strength=0.5, seed=1)
    assert decode(result.image.data).shape == (64, 96, 3)


async def test_tiny_flux_tiles_by_offset_inpainting(fclient: AsyncClient) -> None:
    plain = decode((await fclient.generate("lava", model="tiny-flux", seed=5)).image.data)
    tiled = await fclient.generate("lava", model="tiny-flux", seed=5, tiling="xy")
    out = decode(tiled.image.data)
    mask = tiling.seam_cross_mask(64, 64, True, True, band=16)
    shifted = tiling.shift_half(plain, True, True)
    assert np.abs(out[mask == 0].astype(int) - shifted[mask == 0]).max() <= 1
    assert np.abs(out[mask == 1].astype(int) - shifted[mask == 1]).mean() > 2
    assert tiled.image.seam is not None and tiled.recipe["request"]["tiling"] == "xy"


def test_gpu_turbo_cpu_smoke(tmp_path: Path) -> None:
    out = tmp_path / "gpu_turbo.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_turbo.py"),
            "--cpu-smoke",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert {r["model"] for r in rows} >= {"sd-turbo", "sdxl-turbo", "flux.1-schnell"}
    assert {"text_encoder", "denoise_step", "vae_decode", "end_to_end"} <= {
        r["stage"] for r in rows
    }
    measured = [r for r in rows if r.get("ms") is not None]
    assert measured and all(r["ms"] > 0 for r in measured)
    assert all(r.get("ms") is not None or r.get("skipped") for r in rows)
