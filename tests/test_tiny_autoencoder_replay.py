"""A live frame decoded with the model's tiny autoencoder replays through Generate: its recipe
says ``tiny_autoencoder``, GenerateRequest carries it (field 40), and the replay gives the
frame's bytes. Before the field existed the client dropped the key and the replay decoded
with the full VAE, silently another image."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelkiln import AsyncClient
from pixelkiln.client import load_recipe
from pixelkiln_server.backends import tiny_vae
from pixelkiln_server.backends.tiny_random import ensure_tiny_random

from .conftest import home_dir, png_bytes, running_daemon


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-random with a tiny random AutoencoderTiny in vae_tiny/ (under the temp folder,
    which the test daemons may load from)."""
    out = tmp_path_factory.mktemp("tiny-ae-replay") / "tiny-random-with-taesd"
    shutil.copytree(ensure_tiny_random(Path(home_dir()) / "models"), out)
    tiny_vae.add_random_to_folder(out, latent_channels=4)
    return out


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


async def test_a_tiny_autoencoder_frame_replays_to_the_same_bytes(
    folder: Path, tmp_path: Path
) -> None:
    sketch = np.random.default_rng(7).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    settings = {"prompt": "moss", "strength": 0.5, "steps": 2, "seed": 11, "size": 64}
    async with running_daemon(default_model=str(folder)) as d:
        client = AsyncClient(d.address, timeout=60)
        try:
            frames = {}
            for tiny in (True, False):
                async with client.live(**settings, tiny_autoencoder=tiny) as session:
                    await session.send(png_bytes(sketch))
                    frame = await session.__aiter__().__anext__()
                assert frame.image is not None and frame.tiny_autoencoder is tiny
                frames[tiny] = frame.image.data
            # The two decoders give different images: the replay below can tell them apart.
            assert np.abs(pixels(frames[True]).astype(int) - pixels(frames[False])).mean() > 1
            (tmp_path / "frame.png").write_bytes(frames[True])
            recipe = load_recipe(tmp_path / "frame.png")
            assert recipe["request"]["tiny_autoencoder"] is True
            replayed = await client.replay(recipe, init_image=png_bytes(sketch))
            assert np.array_equal(pixels(replayed.image.data), pixels(frames[True]))
            assert not replayed.warnings
            # Asked for on a txt2img request, where the lean path does not run: served with the
            # full VAE, and the result says so.
            plain = await client.generate("moss", steps=1, seed=1, tiny_autoencoder=True)
            assert any("tiny_autoencoder not applied" in w for w in plain.warnings)
        finally:
            await client.close()
