"""texgen: deterministic procedural training data for the PixelKiln texture model.

Twelve tileable texture patterns and ten sprites, each in ten colours, with natural captions,
drawn with vectorised numpy from (seed, index) alone::

    import texgen                                   # with tools/ on sys.path
    for s in texgen.dataset(seed=0, n=8, size=64):
        print(s.caption, s.image.shape)             # "red brick wall" (64, 64, 3)
    img = texgen.texture("marble", "blue", seed=3, size=128)   # uint8, tiles exactly
    img, key = texgen.sprite("coin", "yellow", seed=1)          # on a flat key colour

Every texture tiles exactly: all its fields are periodic in the tile (integer-frequency FFT
noise, integer cell counts, wrapped distances), so ``texture(..., tiles=2)`` is the tile
repeated pixel for pixel. Sprites sit on a flat key colour (``pixelkiln_server.imaging.matte``)
with a margin of several pixels. CLI: ``python tools/texgen --out grid.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pixelkiln_server.imaging import matte

from .captions import (
    all_captions,
    canonical_caption,
    pick_sprite_caption,
    pick_texture_caption,
    sprite_captions,
    texture_captions,
    transparent_prompt,
    word_counts,
)
from .colours import COLOUR_BY_NAME, COLOURS, Colour, Tint, jitter, rgb_to_hsv
from .fields import Grid
from .patterns import PATTERNS
from .sprites import SPRITES, render_sprite

__all__ = [
    "COLOURS",
    "COLOUR_NAMES",
    "PATTERN_NAMES",
    "SPRITE_NAMES",
    "SUBJECTS",
    "Colour",
    "Sample",
    "all_captions",
    "canonical_caption",
    "dataset",
    "grid_image",
    "rgb_to_hsv",
    "sample",
    "sprite",
    "sprite_captions",
    "texture",
    "texture_captions",
    "transparent_prompt",
    "word_counts",
]

PATTERN_NAMES: tuple[str, ...] = tuple(PATTERNS)
SPRITE_NAMES: tuple[str, ...] = tuple(SPRITES)
SUBJECTS: tuple[str, ...] = PATTERN_NAMES + SPRITE_NAMES
COLOUR_NAMES: tuple[str, ...] = tuple(c.name for c in COLOURS)
RGB = tuple[int, int, int]

# One block of the dataset: every pattern x colour twice, every sprite x colour once, shuffled.
_COMBOS: tuple[tuple[str, str, str], ...] = tuple(
    [("texture", p, c) for _ in range(2) for p in PATTERN_NAMES for c in COLOUR_NAMES]
    + [("sprite", s, c) for s in SPRITE_NAMES for c in COLOUR_NAMES]
)
BLOCK = len(_COMBOS)


@dataclass(frozen=True)
class Sample:
    """One training example: RGB uint8 (size, size, 3), its caption and what it shows.

    ``kind``: "texture" or "sprite"; ``subject``: the pattern or sprite name; ``key``: the
    flat background colour of a sprite (None for textures)."""

    image: np.ndarray
    caption: str
    kind: str
    subject: str
    colour: str
    key: RGB | None = None


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(seed)


def _colour(colour: str | Colour) -> Colour:
    if isinstance(colour, Colour):
        return colour
    if colour not in COLOUR_BY_NAME:
        raise ValueError(f"unknown colour {colour!r}; one of {', '.join(COLOUR_NAMES)}")
    return COLOUR_BY_NAME[colour]


def _draw_texture(pattern: str, tint: Tint, rng: np.random.Generator, size: int, tiles: int):
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}; one of {', '.join(PATTERN_NAMES)}")
    rgb = PATTERNS[pattern](Grid(size, tiles), rng, tint)
    # A random phase: the layout's cell borders may fall anywhere, the wrap edge included.
    dy, dx = (int(v) for v in rng.integers(0, size, 2))
    return _to_uint8(np.roll(rgb, (dy, dx), axis=(0, 1)))


def texture(
    pattern: str,
    colour: str | Colour,
    seed: int | np.random.Generator = 0,
    size: int = 64,
    tiles: int = 1,
) -> np.ndarray:
    """A ``size`` x ``size`` tile of ``pattern`` in ``colour`` (RGB uint8), repeated ``tiles``
    times in each direction; the same seed gives the same pixels."""
    rng = _rng(seed)
    return _draw_texture(pattern, jitter(_colour(colour), rng), rng, size, tiles)


def sprite(
    kind: str,
    colour: str | Colour,
    seed: int | np.random.Generator = 0,
    size: int = 64,
    key: RGB | None = None,
) -> tuple[np.ndarray, RGB]:
    """Sprite ``kind`` in ``colour`` on a flat key colour (RGB uint8) and that key; the key
    defaults to the daemon's choice for the sprite's canonical caption."""
    if kind not in SPRITES:
        raise ValueError(f"unknown sprite {kind!r}; one of {', '.join(SPRITE_NAMES)}")
    col = _colour(colour)
    rng = _rng(seed)
    if key is None:
        key = matte.choose_key_color(canonical_caption(kind, col.name))
    return _to_uint8(render_sprite(kind, jitter(col, rng), key, size, rng)), key


def sample(seed: int, index: int, size: int = 64) -> Sample:
    """Example ``index`` of the dataset drawn from ``seed``: deterministic from (seed, index)
    alone. Each block of :data:`BLOCK` consecutive indices holds every pattern x colour pair
    twice and every sprite x colour pair once, in a shuffled order."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got {seed}, {index}")
    block, pos = divmod(index, BLOCK)
    order = np.random.default_rng([seed, block, 0x7E5]).permutation(BLOCK)
    kind, subject, colour = _COMBOS[int(order[pos])]
    rng = np.random.default_rng([seed, index])
    tint = jitter(COLOUR_BY_NAME[colour], rng)
    if kind == "texture":
        caption = pick_texture_caption(subject, colour, rng)
        image = _draw_texture(subject, tint, rng, size, 1)
        return Sample(image, caption, kind, subject, colour)
    base, suffixed = pick_sprite_caption(subject, colour, rng)
    key = matte.choose_key_color(base)
    caption = base + matte.key_prompt_suffix(key) if suffixed else base
    image = _to_uint8(render_sprite(subject, tint, key, size, rng))
    return Sample(image, caption, kind, subject, colour, key)


def dataset(seed: int, n: int, size: int = 64, start: int = 0) -> Iterator[Sample]:
    """Examples ``start`` .. ``start + n - 1`` of the dataset drawn from ``seed``."""
    for index in range(start, start + n):
        yield sample(seed, index, size)


def grid_image(images: list[np.ndarray], cols: int, pad: int = 2) -> np.ndarray:
    """Lay equal-sized RGB uint8 images out in a grid with a white gutter."""
    if not images:
        raise ValueError("no images")
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = img[..., :3]
    return out
