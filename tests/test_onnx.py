"""ONNX export of tiny-random and the onnx backend: parity with torch, and the daemon path."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from pixelkiln import PixelKilnError
from pixelkiln.cli import main as cli_main
from pixelkiln_server.catalogue import ONNX_MANIFEST, PRESETS, lookup
from pixelkiln_server.errors import Cancelled
from pixelkiln_server.types import DecodedInputs, GenerationRequest, PreviewOptions

from .conftest import decode, home_dir, png_bytes, running_daemon

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

# Measured here: 1.5e-6 (txt2img), 2.7e-6 (img2img) on images in [0, 1]; 1.5e-6 per graph.
TOLERANCE = 1e-3


class Hooks:
    def __init__(self, cancel_at: int = 0) -> None:
        self.steps: list[tuple[int, int]] = []
        self.previews: list[int] = []
        self.cancel_at = cancel_at

    def on_step(self, step: int, total: int) -> bool:
        self.steps.append((step, total))
        if step == self.cancel_at:
            raise Cancelled("cancelled")
        return True

    def on_preview(self, step: int, images: list[np.ndarray]) -> None:
        self.previews.append(step)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-random exported through the ``pixelkiln export-onnx`` command."""
    out = tmp_path_factory.mktemp("onnx") / "tiny-random-onnx"
    rc = cli_main(["export-onnx", "tiny-random", str(out), "--home", str(home_dir())])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def models(exported: Path) -> tuple[Any, Any]:
    from pixelkiln_server.backends import registry
    from pixelkiln_server.backends.base import LoadOptions

    options = LoadOptions(device="cpu", home=home_dir())
    onnx_spec = lookup(str(exported))
    onnx_model = registry.get(onnx_spec.backend).load(onnx_spec, options)
    tiny = PRESETS["tiny-random"]
    return onnx_model, registry.get(tiny.backend).load(tiny, options)


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    assert len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b, strict=True))
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def test_manifest_and_spec(exported: Path) -> None:
    manifest = json.loads((exported / ONNX_MANIFEST).read_text())
    assert manifest["family"] == "sd" and manifest["opset"] >= 17
    assert manifest["scaling_factor"] == pytest.approx(0.18215)
    assert manifest["scheduler"]["timestep_spacing"] == "trailing"
    assert (exported / "tokenizer" / "tokenizer_config.json").is_file()
    spec = lookup(str(exported))
    assert spec.backend == "onnx" and spec.family == "sd"
    assert (spec.native_width, spec.default_steps, spec.default_guidance) == (64, 4, 0.0)


def test_graphs_match_torch(models: tuple[Any, Any]) -> None:
    """Per graph, dynamic batch and size: the UNet and the VAE decoder against torch."""
    onnx_model, torch_model = models
    pipe = torch_model._pipes["txt2img"]
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(3, 4, 12, 8, generator=gen)
    timestep = torch.full((3,), 500.0)
    hidden = torch.randn(3, 77, 32, generator=gen)
    with torch.inference_mode():
        ref = pipe.unet(sample, timestep, hidden).sample
        ref_image = pipe.vae.decode(sample).sample
    got = onnx_model.graphs["unet"](
        tuple(sample.shape), sample=sample, timestep=timestep, encoder_hidden_states=hidden
    )
    got_image = onnx_model.graphs["vae_decoder"]((3, 3, 96, 64), latents=sample)
    assert float((got - ref).abs().max()) < TOLERANCE
    assert float((got_image - ref_image).abs().max()) < TOLERANCE


@pytest.mark.parametrize(
    "options",
    [
        {"steps": 4, "guidance_scale": 0.0},
        {"steps": 2, "guidance_scale": 5.0, "negative_prompt": "blur", "num_images": 2},
    ],
)
def test_generate_matches_torch(models: tuple[Any, Any], options: dict[str, Any]) -> None:
    onnx_model, torch_model = models
    request = GenerationRequest(
        prompt="a mossy stone wall",
        width=96,
        height=64,
        seed=7,
        preview=PreviewOptions(every_n_steps=1),
        **options,
    )
    hooks_onnx, hooks_torch = Hooks(), Hooks()
    got = onnx_model.generate(request, DecodedInputs(), hooks_onnx)
    ref = torch_model.generate(request, DecodedInputs(), hooks_torch)
    diff = _max_diff(got, ref)
    print(f"txt2img {options}: max abs diff onnx vs torch {diff:.2e}")
    assert diff < TOLERANCE
    assert hooks_onnx.steps == hooks_torch.steps and hooks_onnx.previews == hooks_torch.previews
    init = DecodedInputs(init_rgb=(ref[0] * 255).astype(np.uint8))
    img2img = replace(request, init_image=object(), strength=0.75, steps=4)  # type: ignore[arg-type]
    diff = _max_diff(
        onnx_model.generate(img2img, init, Hooks()), torch_model.generate(img2img, init, Hooks())
    )
    print(f"img2img {options}: max abs diff onnx vs torch {diff:.2e}")
    assert diff < TOLERANCE


def test_cancel_skips_the_decode(models: tuple[Any, Any]) -> None:
    onnx_model = models[0]
    decoder = onnx_model.graphs["vae_decoder"]
    calls: list[int] = []
    onnx_model.graphs["vae_decoder"] = lambda *a, **k: calls.append(1) or decoder(*a, **k)
    try:
        request = GenerationRequest(prompt="x", width=64, height=64, steps=4, seed=1)
        request = replace(request, guidance_scale=0.0)
        with pytest.raises(Cancelled):
            onnx_model.generate(request, DecodedInputs(), Hooks(cancel_at=2))
        assert not calls
        onnx_model.generate(request, DecodedInputs(), Hooks())
        assert calls == [1]
    finally:
        onnx_model.graphs["vae_decoder"] = decoder


def test_fp16_conversion_loads_and_runs(exported: Path, tmp_path: Path) -> None:
    from pixelkiln_server.backends.base import LoadOptions
    from pixelkiln_server.backends.onnx_backend import OnnxBackend
    from pixelkiln_server.onnx_export import COMPONENTS, to_fp16

    folder = tmp_path / "fp16"
    shutil.copytree(exported, folder)
    for component in COMPONENTS:
        to_fp16(folder / component / "model.onnx")
    model = OnnxBackend().load(lookup(str(folder)), LoadOptions(device="cpu"))
    request = GenerationRequest(prompt="x", width=64, height=64, steps=2, seed=1, guidance_scale=0)
    image = model.generate(request, DecodedInputs(), Hooks())[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()


async def test_daemon_serves_the_export(exported: Path) -> None:
    async with running_daemon(extra_models={"tiny-onnx": str(exported)}) as daemon:
        from pixelkiln import AsyncClient

        client = AsyncClient(daemon.address, timeout=60)
        try:
            onnx = await client.generate("red bricks", model="tiny-onnx", seed=11, preview_every=2)
            ref = await client.generate("red bricks", model="tiny-random", seed=11)
            a, b = decode(onnx.image.data), decode(ref.image.data)
            assert a.shape == (64, 64, 3)
            assert np.abs(a.astype(int) - b).max() <= 1  # uint8 rounding of a 1e-6 difference
            assert onnx.recipe["request"]["model"] == "tiny-onnx"
            init = png_bytes(a)
            edit = await client.generate("x", model="tiny-onnx", init_image=init, strength=0.5)
            assert decode(edit.image.data).shape == (64, 64, 3)
            mask = np.zeros((64, 64), np.uint8)
            mask[16:48, 16:48] = 255
            filled = await client.generate(
                "x", model="tiny-onnx", init_image=init, mask=png_bytes(mask), seed=1
            )
            assert decode(filled.image.data).shape == (64, 64, 3)
            with pytest.raises(PixelKilnError) as info:
                await client.generate("x", model="tiny-onnx", seed=1, tiling="xy")
            assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
            assert "tiling" in info.value.message and "onnx backend" in info.value.message
        finally:
            await client.close()
