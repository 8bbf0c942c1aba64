"""How different are a request's seed variations? Mean pairwise difference of ``--count 8``
images, with and without the shipped model's variation settings, side by side.

    python benchmarks/variations.py            # the shipped model, 4 sprites + 2 textures

One in-thread daemon serves ``pixelkiln-textures`` as shipped and the same folder registered
as ``pixelkiln-textures-plain`` with the settings off (white initial noise, no mirror), so
the only difference is ``backends/variation.py``. Sprites are matted by the daemon and
compared over mid-grey; the number is the mean absolute difference of two images in 0..255,
averaged over the 28 pairs. Measured, not asserted (tests/test_variations.py holds a floor).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, env_line, environment, print_table, write_json  # noqa: E402

PROMPTS = (
    ("gold coin sprite", True),
    ("green gem", True),
    ("red heart sprite", True),
    ("blue potion bottle", True),
    ("red brick wall", False),
    ("mossy cobblestone", False),
)
PLAIN = "pixelkiln-textures-plain"


def over_grey(data: bytes) -> np.ndarray:
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGBA")
    grey = Image.new("RGBA", image.size, (128, 128, 128, 255))
    grey.alpha_composite(image)
    return np.asarray(grey.convert("RGB"), dtype=np.float32)


def mean_pairwise_difference(images: list[np.ndarray]) -> float:
    """Mean |a - b| over pixels and channels (0..255), averaged over every pair."""
    pairs = itertools.combinations(images, 2)
    return float(np.mean([np.abs(a - b).mean() for a, b in pairs]))


def plain_spec() -> Any:
    from pixelkiln_server.catalogue import PRESETS, SHIPPED_MODEL

    shipped = PRESETS[SHIPPED_MODEL]
    return replace(shipped, name=PLAIN, variation_low_freq=0.0, variation_mirror=False)


async def measure(address: str, model: str, seed: int, count: int) -> list[float]:
    from pixelkiln import AsyncClient

    out = []
    async with AsyncClient(address, timeout=300) as client:
        for prompt, transparent in PROMPTS:
            result = await client.generate(
                prompt, model=model, num_images=count, seed=seed, transparent=transparent
            )
            out.append(mean_pairwise_difference([over_grey(i.data) for i in result.images]))
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from pixelkiln_server.app import Daemon
    from pixelkiln_server.catalogue import SHIPPED_MODEL
    from pixelkiln_server.config import ServerConfig

    config = ServerConfig(port=0, ws_port=None, runner="thread", default_model=SHIPPED_MODEL)
    daemon = Daemon(config)
    daemon.engine.registry.register(plain_spec())
    await daemon.start()
    try:
        await daemon.wait_ready()
        rows = {}
        for model in (PLAIN, SHIPPED_MODEL):
            rows[model] = await measure(daemon.address, model, args.seed, args.count)
    finally:
        await daemon.stop(0)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "variations.json")
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    env = environment()
    print(env_line(env))
    names = [p for p, _ in PROMPTS]
    print_table(
        ["model", *names],
        [[model, *values] for model, values in rows.items()],
    )
    write_json(
        args.out,
        {"environment": env, "seed": args.seed, "count": args.count, "prompts": names, **rows},
    )


if __name__ == "__main__":
    main()
