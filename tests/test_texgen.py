"""The procedural training data (tools/texgen): deterministic, every texture tiles exactly,
captions cover every pattern x colour pair, sprites sit on a flat key colour."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from pixelkiln_server.imaging import matte

TOOLS = Path(__file__).resolve().parent.parent / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

import texgen  # noqa: E402


def test_vocabulary_sizes() -> None:
    assert len(texgen.PATTERN_NAMES) >= 12
    assert len(texgen.COLOUR_NAMES) >= 10
    assert set(texgen.SPRITE_NAMES) >= {
        "coin", "gem", "heart", "star", "potion", "key", "shield", "sword", "mushroom", "chest"
    }  # fmt: skip


def test_samples_are_deterministic_from_seed_and_index() -> None:
    a = texgen.sample(seed=3, index=17)
    b = texgen.sample(seed=3, index=17)
    assert a.caption == b.caption and a.subject == b.subject and a.colour == b.colour
    assert np.array_equal(a.image, b.image)
    # The same index from a fresh iterator that starts elsewhere is the same sample.
    c = list(texgen.dataset(seed=3, n=3, start=16))[1]
    assert np.array_equal(a.image, c.image) and a.caption == c.caption
    # Another seed or index gives another image.
    assert not np.array_equal(a.image, texgen.sample(seed=4, index=17).image)
    assert not np.array_equal(a.image, texgen.sample(seed=3, index=18).image)


def test_dataset_images_have_the_requested_size() -> None:
    for s in texgen.dataset(seed=0, n=6, size=32):
        assert s.image.shape == (32, 32, 3) and s.image.dtype == np.uint8
    assert texgen.texture("brick", "red", 0, size=128).shape == (128, 128, 3)


@pytest.mark.parametrize("pattern", texgen.PATTERN_NAMES)
def test_every_pattern_tiles_exactly(pattern: str) -> None:
    n = 64
    for seed, colour in ((0, "red"), (1, "grey"), (2, "teal")):
        tile = texgen.texture(pattern, colour, seed, size=n)
        canvas = texgen.texture(pattern, colour, seed, size=n, tiles=2)
        # A 2 x 2 canvas is the tile repeated, so it equals itself rolled by its period.
        assert canvas.shape == (2 * n, 2 * n, 3)
        assert np.array_equal(canvas, np.tile(tile, (2, 2, 1)))
        for axis in (0, 1):
            assert np.array_equal(canvas, np.roll(canvas, n, axis=axis))
        # The wrap edge looks like any interior line: its mean difference is within the spread
        # of the interior line differences (a seam would be an outlier above them all).
        img = tile.astype(np.float32)
        for axis in (0, 1):
            lines = np.abs(np.diff(img, axis=axis, append=np.take(img, [0], axis=axis)))
            per_line = lines.mean(axis=(1 - axis, 2))
            wrap, interior = per_line[-1], per_line[:-1]
            assert wrap <= interior.max() + 1e-6, (pattern, seed, axis, wrap, interior.max())


def test_rolled_texture_has_no_seam_anywhere() -> None:
    # Rolling a tileable texture by half moves the wrap edge into the middle: the interior
    # then contains the former wrap edge, and it must not stand out there either.
    for pattern in texgen.PATTERN_NAMES:
        tile = texgen.texture(pattern, "blue", 5).astype(np.float32)
        rolled = np.roll(tile, (32, 32), axis=(0, 1))
        col_diffs = np.abs(np.diff(rolled, axis=1)).mean(axis=(0, 2))
        assert col_diffs[31] <= col_diffs.max() + 1e-6
        assert col_diffs[31] <= 4.0 * np.median(col_diffs) + 8.0, pattern


def test_captions_cover_every_pattern_colour_pair() -> None:
    seen: set[tuple[str, str]] = set()
    captions: dict[tuple[str, str], set[str]] = {}
    for s in texgen.dataset(seed=0, n=2 * 340):
        if s.kind == "texture":
            seen.add((s.subject, s.colour))
            captions.setdefault((s.subject, s.colour), set()).add(s.caption)
    pairs = {(p, c) for p in texgen.PATTERN_NAMES for c in texgen.COLOUR_NAMES}
    assert len(pairs) >= 120
    assert seen == pairs
    for (pattern, colour), caps in captions.items():
        words = set(texgen.texture_captions(pattern, colour))
        for cap in caps:
            bare = re.sub(r"^(seamless|tileable) ", "", cap)
            assert bare in words or bare.removesuffix(" texture") in words, cap


def test_captions_read_naturally() -> None:
    assert texgen.canonical_caption("brick", "red") == "red brick wall"
    assert texgen.canonical_caption("coin", "yellow") == "gold coin sprite"
    assert "dark oak planks" in texgen.texture_captions("planks", "brown")
    assert "mossy cobblestone" in texgen.texture_captions("cobblestone", "green")
    for pattern in texgen.PATTERN_NAMES:
        for colour in texgen.COLOUR_NAMES:
            cap = texgen.canonical_caption(pattern, colour)
            assert colour in cap.split() and len(cap.split()) <= 5


def test_sprite_captions_match_the_daemons_transparent_prompt() -> None:
    suffixed = 0
    for s in texgen.dataset(seed=1, n=340):
        if s.kind != "sprite":
            continue
        assert s.key is not None
        if "background" in s.caption:
            base = s.caption.split(",")[0]
            # Exactly what assets.model_prompt() sends for a TRANSPARENT request.
            assert s.caption == base + matte.key_prompt_suffix(matte.choose_key_color(base))
            assert s.key == matte.choose_key_color(base)
            suffixed += 1
    assert suffixed > 40


@pytest.mark.parametrize("kind", texgen.SPRITE_NAMES)
def test_sprites_have_flat_key_borders(kind: str) -> None:
    for seed, colour in enumerate(texgen.COLOUR_NAMES):
        img, key = texgen.sprite(kind, colour, seed)
        border = np.concatenate([img[:3].reshape(-1, 3), img[-3:].reshape(-1, 3)])
        border = np.concatenate([border, img[:, :3].reshape(-1, 3), img[:, -3:].reshape(-1, 3)])
        assert (border == np.array(key, np.uint8)).all(), (kind, colour)
        assert key == matte.choose_key_color(texgen.canonical_caption(kind, colour))
        alpha = matte.matte(img, key)[..., 3]
        coverage = float((alpha > 127).mean())
        assert 0.10 <= coverage <= 0.70, (kind, colour, coverage)


def test_colours_are_told_apart_by_hue() -> None:
    # The mean hue / saturation / value of a texture lands nearest its own colour's prototype.
    feats: dict[str, list[np.ndarray]] = {c: [] for c in texgen.COLOUR_NAMES}
    for colour in texgen.COLOUR_NAMES:
        for i, pattern in enumerate(texgen.PATTERN_NAMES):
            hsv = texgen.rgb_to_hsv(texgen.texture(pattern, colour, i).astype(np.float32) / 255)
            h = np.deg2rad(hsv[..., 0])
            w = hsv[..., 1] * hsv[..., 2]
            f = [
                np.mean(w * np.cos(h)),
                np.mean(w * np.sin(h)),
                hsv[..., 1].mean(),
                hsv[..., 2].mean(),
            ]
            feats[colour].append(np.array(f))
    protos = {c: np.mean(v, axis=0) for c, v in feats.items()}
    for colour, vs in feats.items():
        for v in vs:
            nearest = min(protos, key=lambda c: float(np.sum((protos[c] - v) ** 2)))
            assert nearest == colour


def test_cli_writes_a_grid(tmp_path: Path) -> None:
    from PIL import Image
    from texgen.cli import main

    out = tmp_path / "grid.png"
    assert main(["--out", str(out), "-n", "8", "--cols", "4", "--size", "32"]) == 0
    assert Image.open(out).size == (4 * 34 + 2, 2 * 34 + 2)
