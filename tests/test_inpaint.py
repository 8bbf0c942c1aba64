"""Inpainting on every model, through a real daemon: the shipped 8-latent-channel model (which
diffusers' inpainting pipelines refuse), a 4-channel SD UNet and a FLUX DiT.

The yardstick is each model's own VAE round trip (encode, decode) of the init image, measured
here in-process on the same weights: under the mask the result must change clearly more than
that; away from the mask it is the init image itself (the result is laid back over it,
imaging/overlay.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from pixelkiln import AsyncClient, Result
from pixelkiln.cli import main as cli_main
from pixelkiln_server.backends import registry
from pixelkiln_server.backends.base import LoadOptions
from pixelkiln_server.catalogue import PRESETS

from .conftest import decode, home_dir, png_bytes, running_daemon

pytest.importorskip("diffusers")

SIZE = 128
HOLE = 32  # the mask: a centred square
# Pixels this far from the mask are "outside": the decoder's receptive field reaches ~2
# latent cells (16 px) past the last generated cell.
MARGIN = 24
# tiny-onnx: tiny-random exported to ONNX (its own blending loop; tiny-random's VAE weights).
MODELS = ("pixelkiln-textures", "tiny-random", "tiny-flux", "tiny-onnx")


def regions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi = SIZE // 2 - HOLE // 2, SIZE // 2 + HOLE // 2
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[lo:hi, lo:hi] = 255
    near = np.zeros((SIZE, SIZE), bool)
    near[lo - MARGIN : hi + MARGIN, lo - MARGIN : hi + MARGIN] = True
    return mask, mask > 0, ~near


def round_trip(model: str, pixels: np.ndarray) -> np.ndarray:
    """The model's VAE: encode (the posterior's mode) and decode, uint8 RGB."""
    import torch

    spec = PRESETS["tiny-random" if model == "tiny-onnx" else model]
    loaded = registry.get(spec.backend).load(spec, LoadOptions(device="cpu", home=home_dir()))
    vae = loaded.pipe.vae  # type: ignore[attr-defined]
    x = torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    with torch.inference_mode():
        out = vae.decode(vae.encode(x.to(vae.dtype)).latent_dist.mode()).sample.float()
    loaded.release()
    rgb = ((out.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1)[0].numpy()
    return rgb.astype(np.uint8)


def err(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32))[where].mean())


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("onnx") / "tiny-random-onnx"
    assert cli_main(["export-onnx", "tiny-random", str(out), "--home", str(home_dir())]) == 0
    return out


@pytest_asyncio.fixture(scope="module")
async def iclient(exported: Path) -> AsyncIterator[AsyncClient]:
    async with running_daemon(extra_models={"tiny-onnx": str(exported)}) as daemon:
        client = AsyncClient(daemon.address, timeout=120)
        yield client
        await client.close()


@pytest.mark.parametrize("model", MODELS)
async def test_inpainting_changes_only_the_masked_region(iclient: AsyncClient, model: str) -> None:
    # The model's own picture: in its VAE's domain (the shipped model's VAE pads circularly and
    # only knows tileable textures).
    first = await iclient.generate("grey stone", model=model, width=SIZE, height=SIZE, seed=3)
    init = decode(first.image.data)
    mask, inside, outside = regions()
    result = await iclient.generate(
        "a red gem", model=model, init_image=png_bytes(init), mask=png_bytes(mask), seed=7
    )
    assert isinstance(result, Result) and result.recipe["mask_sha256"]
    out = decode(result.image.data)
    assert out.shape == (SIZE, SIZE, 3)

    rt = round_trip(model, init)
    rt_outside, rt_inside = err(rt, init, outside), err(rt, init, inside)
    out_outside, out_inside = err(out, init, outside), err(out, init, inside)
    report = (
        f"{model}: round trip {rt_outside:.2f} outside / {rt_inside:.2f} inside; "
        f"inpainted {out_outside:.2f} outside / {out_inside:.2f} inside"
    )
    print(report)
    # Outside: the init image's own pixels (laid back over the decoded result), not the VAE's
    # round trip of them.
    assert np.array_equal(out[outside], init[outside]), report
    # Inside: generated, so farther from the init than both the round trip and the outside.
    assert out_inside > 1.15 * max(rt_inside, out_outside), report

    # The same request without the mask (img2img at strength 1) repaints everything: its
    # outside is farther from the init (the random-weight models' pictures all look alike, so
    # their margin is small: tiny-flux 32.3 against 26.9).
    plain = await iclient.generate(
        "a red gem", model=model, init_image=png_bytes(init), strength=1.0, seed=7
    )
    assert err(decode(plain.image.data), init, outside) > 1.1 * out_outside, report


@pytest.mark.parametrize("model", MODELS)
async def test_each_inpainted_image_depends_only_on_its_seed(
    iclient: AsyncClient, model: str
) -> None:
    """Image i of a request equals the same request run alone with seed + i (diffusers' SD and
    FLUX inpainting pipelines encoded the one init image with the first generator only)."""
    init = png_bytes(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    hole = np.zeros((64, 64), np.uint8)
    hole[16:48, 16:48] = 255
    both = await iclient.generate(
        "gem", model=model, init_image=init, mask=png_bytes(hole), seed=10, num_images=2
    )
    alone = await iclient.generate(
        "gem", model=model, init_image=init, mask=png_bytes(hole), seed=11
    )
    assert both.images[1].seed == 11
    second = decode(both.images[1].data).astype(int)
    assert np.abs(second - decode(alone.image.data)).max() <= 1
    # The images differ where they were repainted (the rest is the init image in both).
    assert np.abs(second - decode(both.images[0].data))[16:48, 16:48].mean() > 1
