"""The evaluation's colour judge (``benchmarks/texture_judges.py``): colours named by hue
on texgen images, a sprite read from the matted foreground the daemon delivers, and a grey
image's meaningless hue kept from deciding its colour."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from .conftest import ROOT

for folder in (ROOT / "tools", ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import texgen  # noqa: E402
import texture_judges as judging  # noqa: E402


@pytest.fixture(scope="module")
def judge() -> judging.ColourJudge:
    return judging.ColourJudge(*judging.procedural(judging.JUDGE_SEED + 2, 340))


def test_hue_vector_is_as_long_as_the_chroma_that_carries_it() -> None:
    rng = np.random.default_rng(0)
    # Grey with a little noise: its hue is random, so it must barely count.
    grey = np.clip(128 + rng.normal(0, 3, (32, 32, 3)), 0, 255).astype(np.uint8)
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 200
    g = judging.colour_features(grey)
    r = judging.colour_features(red)
    assert np.hypot(g[0], g[1]) < 0.05
    assert np.hypot(r[0], r[1]) == pytest.approx(200 / 255, abs=0.01)
    assert r[0] > 0.7 and abs(r[1]) < 0.01  # hue 0 degrees: along +x


def test_fresh_procedural_colours_are_named(judge: judging.ColourJudge) -> None:
    images, samples = judging.procedural(judging.JUDGE_SEED + 1, 220)
    hits = [judge.name(im, s.kind) == s.colour for im, s in zip(images, samples, strict=True)]
    assert np.mean(hits) >= 0.97
    grey = [h for h, s in zip(hits, samples, strict=True) if s.colour == "grey"]
    assert len(grey) >= 10 and np.mean(grey) >= 0.9


def test_a_sprite_is_judged_on_its_matted_foreground(judge: judging.ColourJudge) -> None:
    """A grey sprite whose soft edge carries the green key: the raw pixels would count the
    green fringe; the matte's despilled foreground is what a user gets."""
    sample = next(
        s
        for s in texgen.dataset(judging.JUDGE_SEED + 3, 400)
        if s.kind == "sprite" and s.colour == "grey" and s.key == (0, 255, 0)
    )
    image = sample.image.astype(np.float32)
    rgba = judging.matted(sample.image)
    solid = rgba[..., 3] == 255
    edge = (rgba[..., 3] > 0) & ~solid
    assert solid.any() and edge.any()
    # Bleed more key into the soft edge, as a generated sprite's blurred outline does.
    image[edge] = 0.5 * image[edge] + 0.5 * np.array([0, 255, 0], np.float32)
    fringed = image.round().astype(np.uint8)
    assert judge.name(fringed, "sprite") == "grey"
    despilled = judging.matted(fringed)
    raw = judging.colour_features(fringed, despilled[..., 3] / 255.0)
    clean = judging.ColourJudge.features(fringed, "sprite")
    assert clean[4] < raw[4]  # less chroma once the key's spill is removed
