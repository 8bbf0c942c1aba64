"""PixelKiln's own model (``weights/pixelkiln-textures``), the default: it loads offline as a
plain diffusers folder, the daemon serves it with circular padding and its own preview
factors, generation is deterministic, and a pattern judge trained on procedural images
recognises what it makes, through every feature (txt2img, img2img from a sketch, tiling,
transparent sprites, maps, live, previews).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from pixelkiln import AsyncClient
from pixelkiln.events import Preview
from pixelkiln_server.app import Daemon
from pixelkiln_server.catalogue import PRESETS, SHIPPED_FOLDER, SHIPPED_MODEL
from pixelkiln_server.config import ServerConfig

from .conftest import ROOT, decode, home_dir, png_bytes, runner_models, running_daemon

for folder in (ROOT / "tools", ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import texgen  # noqa: E402
import texture_judges as judging  # noqa: E402

# A smaller judge than the evaluation's (the same network and augmentation, fewer images and
# epochs), cached beside the built models; it must first pass on fresh procedural images.
JUDGE_IMAGES, JUDGE_EPOCHS = 2_400, 4
PATTERN_COLOURS = dict(zip(texgen.PATTERN_NAMES, texgen.COLOUR_NAMES * 2, strict=False))
SEED = 12_345  # not a training seed; the evaluation uses 10_000 and up
SKETCH_SEEDS = 8


def test_the_default_model_is_the_shipped_one() -> None:
    assert ServerConfig().default_model == SHIPPED_MODEL
    from pixelkiln.cli import build_parser

    assert build_parser().parse_args(["serve"]).model == SHIPPED_MODEL
    spec = PRESETS[SHIPPED_MODEL]
    assert Path(spec.source) == SHIPPED_FOLDER
    assert (spec.native_width, spec.default_steps, spec.default_guidance) == (64, 8, 4.0)


def test_shipped_folder_is_a_small_standard_diffusers_folder() -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    files = [p for p in SHIPPED_FOLDER.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30_000_000
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".ckpt")]  # safetensors only
    meta = json.loads((SHIPPED_FOLDER / "pixelkiln.json").read_text())
    assert meta["padding"] == "circular" and meta["native_size"] == 64
    assert meta["training"]["cut_short"] is False and meta["vae_from"] is None
    pipe = StableDiffusionPipeline.from_pretrained(
        SHIPPED_FOLDER, local_files_only=True, torch_dtype=torch.float32
    )
    assert pipe.vae.config.latent_channels == len(meta["preview_factors"]["matrix"])
    assert (SHIPPED_FOLDER / "README.md").read_text().startswith("---\nlicense: apache-2.0")


@pytest_asyncio.fixture(scope="module")
async def shipped() -> AsyncIterator[tuple[Daemon, AsyncClient]]:
    async with running_daemon(default_model=SHIPPED_MODEL) as d:
        client = AsyncClient(d.address, timeout=120)
        try:
            yield d, client
        finally:
            await client.close()


@pytest.fixture(scope="module")
def judge() -> Any:
    model = judging.train_judge(JUDGE_IMAGES, JUDGE_EPOCHS, home_dir() / "judges")
    images, samples = judging.procedural(judging.JUDGE_SEED + 1, 110)
    named = judging.classify(model, images)
    assert np.mean([n == s.subject for n, s in zip(named, samples, strict=True)]) >= 0.95
    return model


async def test_daemon_loads_it_circular_with_its_own_preview_factors(
    shipped: tuple[Daemon, AsyncClient],
) -> None:
    import torch

    daemon, client = shipped
    model: Any = runner_models(daemon)[0]
    assert model.spec.name == SHIPPED_MODEL
    convs = [
        m
        for part in (model.pipe.unet, model.pipe.vae)
        for m in part.modules()
        if isinstance(m, torch.nn.Conv2d) and any(m.padding)  # (the VAE's downsamplers pad by hand)
    ]
    assert convs and all(c.padding_mode == "circular" for c in convs)
    assert model.preview_factors is not None and model.preview_factors[0].shape == (8, 3)
    events: list[Any] = []
    result = await client.generate("blue water", seed=SEED, preview_every=4, on_event=events.append)
    previews = [e for e in events if isinstance(e, Preview)]
    assert [p.step for p in previews] == [4, 8]
    # The model's own latent->RGB map: the last preview is about the colour of the result
    # (the family's 4-channel map cannot even apply to 8 latent channels).
    last = np.asarray(previews[-1].images[0].to_pil().convert("RGB").resize((64, 64)), np.float32)
    final = decode(result.image.data).astype(np.float32)
    assert np.abs(last.mean((0, 1)) - final.mean((0, 1))).max() < 40


async def test_generation_is_deterministic_and_tiles(shipped: tuple[Daemon, AsyncClient]) -> None:
    _, client = shipped
    a = await client.generate("mossy cobblestone", seed=SEED, tiling="xy")
    b = await client.generate("mossy cobblestone", seed=SEED, tiling="xy")
    c = await client.generate("mossy cobblestone", seed=SEED + 1, tiling="xy")
    assert a.image.data == b.image.data
    assert not np.array_equal(decode(a.image.data), decode(c.image.data))
    seam = a.images[0].seam
    assert seam is not None and seam["ratio"] < 1.5
    assert a.recipe["request"]["steps"] == 8 and a.recipe["request"]["guidance_scale"] == 4.0


async def test_judge_recognises_patterns_and_colours(
    shipped: tuple[Daemon, AsyncClient], judge: Any
) -> None:
    _, client = shipped
    colours = judging.ColourJudge(*judging.procedural(judging.JUDGE_SEED + 2, 340))
    images, hits, colour_hits = [], 0, 0
    for pattern, colour in PATTERN_COLOURS.items():
        prompt = texgen.canonical_caption(pattern, colour)
        result = await client.generate(prompt, seed=SEED)
        images.append(decode(result.image.data))
    named = judging.classify(judge, np.stack(images))
    for (pattern, colour), name, image in zip(PATTERN_COLOURS.items(), named, images, strict=True):
        hits += name == pattern
        colour_hits += colours.name(image, "texture") == colour
    assert hits >= 8, f"{hits}/12 patterns recognised: {named}"
    assert colour_hits >= 9, f"{colour_hits}/12 colours recognised"


async def test_sketch_of_brick_lines_gives_bricks_whose_mortar_follows_it(
    shipped: tuple[Daemon, AsyncClient], judge: Any
) -> None:
    """img2img from a line drawing of bricks like the trained ones (16 px rows,
    32 px bricks, half-brick stagger), and from the same drawing moved by half a brick. With
    the same seed, the difference of the two results must follow the difference of the two
    drawings: lighter where lines were drawn (this model's mortar is light), on every seed.
    A model that ignores the drawing gives a correlation near 0; one that copies the dark
    lines instead of turning them into mortar gives a positive one. One seed decides nothing:
    the one-seed test this replaces held for 1 seed in 20 (model card, "Evaluation")."""
    _, client = shipped
    drawn = np.full((64, 64, 3), 200, np.uint8)
    for row in range(4):
        drawn[row * 16 : row * 16 + 2] = 60  # a mortar row
        for x in range(16 if row % 2 else 0, 64, 32):
            drawn[row * 16 : row * 16 + 16, x : x + 2] = 60  # the joints between bricks
    moved = np.roll(drawn, (8, 16), axis=(0, 1))
    lines_moved = (drawn[..., 0] < 100).astype(np.float32) - (moved[..., 0] < 100)

    async def bricks_from(drawing: np.ndarray, seed: int) -> np.ndarray:
        result = await client.generate(
            "red brick wall", init_image=png_bytes(drawing), strength=0.7, seed=seed
        )
        return decode(result.image.data)

    correlations, images = [], []
    for seed in range(SEED, SEED + SKETCH_SEEDS):
        a, b = await bricks_from(drawn, seed), await bricks_from(moved, seed)
        change = a.astype(np.float32).mean(-1) - b.astype(np.float32).mean(-1)
        correlations.append(float(np.corrcoef(change.ravel(), lines_moved.ravel())[0, 1]))
        images += [a, b]
    named = judging.classify(judge, np.stack(images))
    assert named.count("brick") >= len(named) - 1, named
    rounded = [round(c, 2) for c in correlations]
    assert max(correlations) < 0 and np.mean(correlations) < -0.15, rounded


async def test_transparent_sprite_and_maps(shipped: tuple[Daemon, AsyncClient]) -> None:
    _, client = shipped
    sprite = await client.generate("gold coin sprite", seed=SEED, transparent=True)
    alpha = np.asarray(sprite.image.to_pil())[..., 3].astype(np.float32) / 255.0
    assert 0.10 <= float((alpha > 0.5).mean()) <= 0.70
    assert alpha.min() == 0.0 and alpha.max() == 1.0
    maps = await client.generate("red brick wall", seed=SEED, tiling="xy", maps="normal,height")
    normal = decode(maps.images[0].maps["normal"].data).astype(np.float32)
    assert normal[..., 2].mean() > 128 and normal[..., :2].std() > 2  # a real relief


async def test_live_session_on_the_shipped_model(shipped: tuple[Daemon, AsyncClient]) -> None:
    _, client = shipped
    sketch = np.asarray(texgen.texture("brick", "grey", SEED, 64))
    async with client.live(prompt="green moss", strength=0.6, seed=SEED) as session:
        await session.send(png_bytes(sketch))
        frames = session.__aiter__()
        first = await frames.__anext__()
        await session.send(prompt="molten lava")
        second = await frames.__anext__()
    assert first.image is not None and second.image is not None
    a, b = decode(first.image.data), decode(second.image.data)
    # Moss is green, lava is red-orange: the prompt change shows in the colour.
    assert a[..., 1].mean() > a[..., 0].mean() and b[..., 0].mean() > b[..., 1].mean()
