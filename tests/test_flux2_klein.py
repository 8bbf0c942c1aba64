"""FLUX.2 [klein] through the daemon on a tiny random-weight Flux2KleinPipeline built in code
(backends/tiny_families.py): its family, dtype, capabilities and text-to-image code path."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pixelkiln import AsyncClient
from pixelkiln.errors import PixelKilnError
from pixelkiln_server.backends.diffusers_load import pick_dtype
from pixelkiln_server.catalogue import PRESETS, lookup

from .conftest import running_daemon


def test_the_preset_and_hub_ids_are_the_flux2_family() -> None:
    spec = PRESETS["flux.2-klein"]
    assert spec.source == "black-forest-labs/FLUX.2-klein-4B" and spec.family == "flux2"
    assert spec.default_steps == 4 and spec.native_width == 1024
    assert lookup("someone/FLUX.2-klein-9B").family == "flux2"
    assert lookup("someone/FLUX.1-dev").family == "flux"
    assert str(pick_dtype("cpu", "flux2")) == "torch.float32"
    caps = spec.capabilities
    assert not caps.img2img and not caps.inpainting and caps.side_multiple == 16


async def test_tiny_flux2_klein_generates_and_is_deterministic() -> None:
    async with (
        running_daemon(default_model="tiny-flux2-klein") as d,
        AsyncClient(d.address, timeout=300) as client,
    ):
        first = await client.generate("a red gem", seed=7, num_images=2)
        again = await client.generate("a red gem", seed=7, num_images=2)
        with pytest.raises(PixelKilnError) as info:
            await client.generate("a red gem", init_image=first.images[0].data, strength=0.5)
        with pytest.raises(PixelKilnError) as negative:
            await client.generate("a red gem", negative_prompt="blurry")
    assert [i.data for i in first.images] == [i.data for i in again.images]
    pixels = [np.asarray(Image.open(io.BytesIO(i.data))) for i in first.images]
    assert pixels[0].shape[:2] == (64, 64) and not np.array_equal(pixels[0], pixels[1])
    assert info.value.code.name == "INVALID_ARGUMENT"
    assert negative.value.code.name == "INVALID_ARGUMENT"
    assert "negative_prompt" in negative.value.message
