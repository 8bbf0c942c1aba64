"""Writes the sample inputs that the README's examples use, into ``examples/``.

    python tools/make_examples.py [--out examples]

Drawn by the procedural generators (``tools/texgen``) from fixed seeds, so the files are
the same on every run; they are committed, and ``tests/test_readme.py`` checks that they
are what this script writes. 64x64, the default model's native size:

- ``sketch.png``: a red brick wall flattened to four colours, a rough sketch for img2img
  (``--init sketch.png``, and ``pixelkiln live --watch sketch.png``);
- ``base.png``: a grey cobblestone texture to inpaint over (``--init base.png``);
- ``mask.png``: white (repaint) on a disc in the middle, black (keep) elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import texgen  # noqa: E402

SIZE = 64
ROOT = Path(__file__).resolve().parent.parent


def sketch() -> np.ndarray:
    """Brick, with its colours cut to four levels of luminance: flat areas and hard edges."""
    image = texgen.texture("brick", "red", seed=1, size=SIZE).astype(np.float32)
    luma = image.mean(axis=2, keepdims=True)
    levels = np.quantile(luma, [0.25, 0.5, 0.75])
    index = np.digitize(luma, levels)
    palette = np.stack([image[(index == i)[..., 0]].mean(axis=0) for i in range(4)])
    return np.asarray(palette[index[..., 0]], dtype=np.uint8)


def base() -> np.ndarray:
    return texgen.texture("cobblestone", "grey", seed=2, size=SIZE)


def mask() -> np.ndarray:
    y, x = np.mgrid[:SIZE, :SIZE] + 0.5
    inside = (x - SIZE / 2) ** 2 + (y - SIZE / 2) ** 2 <= (SIZE / 4) ** 2
    return np.where(inside, 255, 0).astype(np.uint8)


def images() -> dict[str, Image.Image]:
    return {
        "sketch.png": Image.fromarray(sketch(), "RGB"),
        "base.png": Image.fromarray(base(), "RGB"),
        "mask.png": Image.fromarray(mask(), "L"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "examples")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, image in images().items():
        image.save(args.out / name, optimize=True)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
