"""Time added by the game-asset stages next to the generation itself, side by side in one run.

    python benchmarks/assets.py [--quick] [--out benchmarks/results/assets.json]

At 512 and 1024 on tiny-random (1 step): generation untiled vs tiled (interleaved), then the
matte, each derived map, and atlas packing of 4 frames, on the generated image. Goals on these
CPUs: each map of a 1024x1024 texture < 50 ms, the matte < 100 ms, tiling adds < 5%.
Measured, never asserted.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS_DIR,
    compare,
    env_line,
    environment,
    interleave,
    print_goals,
    print_table,
    write_json,
)

from pixelkiln_server.backends.base import LoadOptions, NoHooks  # noqa: E402
from pixelkiln_server.backends.tiny_random import TinyRandomBackend  # noqa: E402
from pixelkiln_server.catalogue import PRESETS  # noqa: E402
from pixelkiln_server.config import Limits, default_home  # noqa: E402
from pixelkiln_server.imaging import atlas, codec, maps, matte  # noqa: E402
from pixelkiln_server.types import GenerationRequest, Tiling  # noqa: E402
from pixelkiln_server.validation import resolve  # noqa: E402


def measure(size: int, runs: int, model: Any) -> dict[str, Any]:
    spec = PRESETS["tiny-random"]
    base, inputs = resolve(
        GenerationRequest(prompt="mossy cobblestone", width=size, height=size, steps=1, seed=1),
        spec,
        Limits(),
    )
    tiled = replace(base, tiling=Tiling.XY)
    hooks = NoHooks()
    gen = interleave(
        {
            "generate": lambda: model.generate(base, inputs, hooks),
            "generate tiled xy": lambda: model.generate(tiled, inputs, hooks),
        },
        runs,
    )
    rgb = codec.to_uint8(model.generate(base, inputs, hooks)[0])
    frames = [rgb] * 4
    sprite = _synthetic_sprite(size)
    stages = {
        "matte (sprite on key)": lambda: matte.KeyColorMatter()(sprite, "gold coin"),
        "matte (noise image)": lambda: matte.KeyColorMatter()(rgb, "mossy cobblestone"),
        **{
            f"map {kind}": (lambda k=kind: maps.derive_maps(rgb, [k], wrap_x=True, wrap_y=True))
            for kind in maps.MAP_KINDS
        },
        "atlas 4 frames": lambda: atlas.pack_atlas(frames, list("abcd"), [1, 2, 3, 4]),
        "png encode": lambda: codec.encode(rgb, codec.Encoding.PNG),
    }
    post = interleave(stages, max(runs, 5))
    return {
        "generation": compare(gen, "generate"),
        "stages": compare(post, "matte (sprite on key)"),
    }


def _synthetic_sprite(size: int) -> np.ndarray:
    """A shaded disc with an anti-aliased edge on a green key: what a sprite model draws."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(xx - size / 2, yy - size / 2)
    alpha = np.clip(size * 0.3 - r + 0.5, 0, 1)[..., None]
    fg = np.stack([0.9 - yy / size * 0.4, 0.7 - xx / size * 0.3, np.full_like(xx, 0.1)], -1)
    key = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    return codec.to_uint8(alpha * fg + (1 - alpha) * key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs (CI smoke)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "assets.json")
    args = parser.parse_args()
    env = environment()
    print(env_line(env))
    model = TinyRandomBackend().load(PRESETS["tiny-random"], LoadOptions(home=default_home()))
    results: dict[str, Any] = {"environment": env, "sizes": {}}
    goals = []
    for size in (512, 1024):
        runs = 2 if args.quick else (6 if size == 512 else 3)
        r = measure(size, runs, model)
        results["sizes"][size] = r
        gen = r["generation"]
        base_ms = gen["generate"]["ms"]["median"]
        rows = [
            ["generate (1 step)", base_ms, "-"],
            [
                "generate tiled xy",
                gen["generate tiled xy"]["ms"]["median"],
                f"+{(gen['generate tiled xy']['ratio_median'] - 1) * 100:.1f}%",
            ],
        ]
        for name, stats in r["stages"].items():
            ms = stats["ms"]["median"]
            rows.append([name, ms, f"{ms / base_ms * 100:.1f}% of generation"])
        print(f"\n{size}x{size}, tiny-random, medians in ms")
        print_table(["stage", "median ms", "added"], rows)
        if size == 1024:
            for kind in maps.MAP_KINDS:
                goals.append(
                    (f"map {kind} 1024 ms", r["stages"][f"map {kind}"]["ms"]["median"], 50)
                )
            goals.append(
                (
                    "matte 1024 ms (sprite)",
                    r["stages"]["matte (sprite on key)"]["ms"]["median"],
                    100,
                )
            )
        goals.append(
            (f"tiling overhead {size} (ratio)", gen["generate tiled xy"]["ratio_median"], 1.05)
        )
    print("\ngoals")
    results["goals"] = print_goals(goals)
    print(f"\nwrote {write_json(args.out, results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
