"""``python tools/texgen --out grid.png``: dump a grid of samples (or one row per pattern)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import COLOUR_NAMES, PATTERN_NAMES, SPRITE_NAMES, dataset, grid_image, sprite, texture


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="texgen", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("texgen_grid.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("-n", type=int, default=64, help="samples in dataset mode")
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument(
        "--table",
        action="store_true",
        help="one row per pattern and sprite, one column per colour, instead of dataset samples",
    )
    parser.add_argument("--tiles", type=int, default=1, help="repeat each texture (table mode)")
    parser.add_argument("--captions", action="store_true", help="print the captions")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    if args.table:
        images: list[np.ndarray] = []
        for p in PATTERN_NAMES:
            images += [texture(p, c, args.seed, args.size, args.tiles) for c in COLOUR_NAMES]
        for kind in SPRITE_NAMES:
            images += [sprite(kind, c, args.seed, args.size * args.tiles)[0] for c in COLOUR_NAMES]
        cols = len(COLOUR_NAMES)
    else:
        samples = list(dataset(args.seed, args.n, args.size))
        images = [s.image for s in samples]
        cols = args.cols
        if args.captions:
            for i, s in enumerate(samples):
                print(f"{i:4d}  {s.caption}")
    elapsed = time.perf_counter() - t0
    Image.fromarray(grid_image(images, cols)).save(args.out)
    print(f"{len(images)} images in {elapsed:.2f} s ({len(images) / elapsed:.0f}/s) -> {args.out}")
    return 0
