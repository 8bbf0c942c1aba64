"""Seed variations of the shipped model differ visibly and stay reproducible.

Eight ``gold coin sprite`` variations on ``pixelkiln-textures`` were 5.9/255 apart on
average (matted, over grey) with white initial noise; with its variation settings
(``backends/variation.py``: a per-seed global share of the noise, a per-seed mirror) 9.0/255
(benchmarks/variations.py; its training sprites: 9-12/255). The floor, 7.5/255, sits between
the two, so the test fails if the settings stop reaching the latents; the same folder with the
settings off must stay below the shipped model on the same seeds.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio

from pixelkiln import AsyncClient
from pixelkiln_server import validation
from pixelkiln_server.app import Daemon
from pixelkiln_server.backends import variation
from pixelkiln_server.catalogue import PRESETS, SHIPPED_MODEL
from pixelkiln_server.config import Limits
from pixelkiln_server.types import GenerationRequest

from .conftest import ROOT, running_daemon

sys.path.insert(0, str(ROOT / "benchmarks"))
import variations as bench  # noqa: E402  (benchmarks/variations.py: the measure itself)

FLOOR = 7.5  # /255: before 5.9, after 9.0 (see the module docstring)


@pytest_asyncio.fixture(scope="module")
async def daemon() -> AsyncIterator[Daemon]:
    async with running_daemon(default_model=SHIPPED_MODEL, register=(bench.plain_spec(),)) as d:
        yield d


async def _coins(d: Daemon, model: str, seed: int = 1, count: int = 8) -> list[bytes]:
    async with AsyncClient(d.address, timeout=300) as client:
        result = await client.generate(
            "gold coin sprite", model=model, num_images=count, seed=seed, transparent=True
        )
    return [image.data for image in result.images]


async def test_sprite_variations_differ_visibly(daemon: Daemon) -> None:
    shipped = bench.mean_pairwise_difference(
        [bench.over_grey(b) for b in await _coins(daemon, SHIPPED_MODEL)]
    )
    plain = bench.mean_pairwise_difference(
        [bench.over_grey(b) for b in await _coins(daemon, bench.PLAIN)]
    )
    assert shipped > FLOOR, (shipped, plain)
    assert plain < shipped


async def test_variations_are_reproducible_alone_or_in_a_batch(daemon: Daemon) -> None:
    batch = await _coins(daemon, SHIPPED_MODEL, count=4)
    assert await _coins(daemon, SHIPPED_MODEL, count=4) == batch
    # Image k of seed s is the image of seed s + k alone (its noise and mirror are its own),
    # within the float sums a batch of 4 orders differently from a batch of 1 (seen: bytes
    # equal in one run, a few levels apart in another).
    for k in (3,):
        alone = (await _coins(daemon, SHIPPED_MODEL, seed=1 + k, count=1))[0]
        gap = np.abs(bench.over_grey(alone) - bench.over_grey(batch[k]))
        assert gap.mean() < 1.0 and gap.max() <= 16, (k, gap.mean(), gap.max())


def test_the_mirror_is_a_fair_coin_of_the_seed() -> None:
    flips = [variation.mirrored(seed) for seed in range(1000)]
    assert 400 < sum(flips) < 600
    assert flips == [variation.mirrored(seed) for seed in range(1000)]
    assert any(flips[i] != flips[i + 1] for i in range(8))


def test_a_picked_seed_fits_an_editors_32_bit_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, the seed is picked so that every image's seed (seed + i) is below 2^31: Blender's
    IntProperty and Godot's SpinBox take no more, and a seed shown must be typeable back."""
    monkeypatch.setattr(validation.secrets, "randbelow", lambda n: n - 1)  # the largest pick
    for count in (1, 8):
        request = GenerationRequest(prompt="x", num_images=count)
        resolved, _ = validation.resolve(request, PRESETS["tiny-random"], Limits())
        assert resolved.seed is not None
        assert resolved.seed + count - 1 == 2**31 - 1
