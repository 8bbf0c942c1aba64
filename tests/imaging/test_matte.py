import numpy as np
import pytest

from pixelkiln_server.imaging import matte

GREEN, MAGENTA, BLUE = (0, 255, 0), (255, 0, 255), (0, 0, 255)
ORANGE, STEEL, LEAF = (180.0, 100.0, 50.0), (70.0, 90.0, 120.0), (90.0, 140.0, 60.0)
# Spill threshold (also in matte.matte's docstring): on the edge band, the key's dominant
# channel(s) may exceed the others by at most 10/255 more than the true foreground did.
SPILL_TOLERANCE = 10 / 255


def scene(
    size: int = 160, colours: tuple[tuple[float, ...], ...] = (ORANGE, STEEL)
) -> tuple[np.ndarray, np.ndarray]:
    """True alpha (1.5 px anti-aliased disc + rectangle) and shaded foreground, float."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    s = size / 160
    disc = np.hypot(x - 62 * s, y - 70 * s) - 34 * s
    qx, qy = np.abs(x - 105 * s) - 28 * s, np.abs(y - 95 * s) - 18 * s
    rect = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
    alpha = np.clip(0.5 - np.minimum(disc, rect) / 1.5, 0.0, 1.0)
    fg = np.where((disc < rect)[..., None], np.array(colours[0]), np.array(colours[1])) / 255
    fg = fg * (0.75 + 0.25 * (x + y) / (2 * size))[..., None]
    return alpha, fg


def composite(
    key: tuple[int, int, int],
    seed: int = 0,
    noise: float = 2.0,
    size: int = 160,
    colours: tuple[tuple[float, ...], ...] = (ORANGE, STEEL),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scene over the key with a 12% brightness gradient across x and Gaussian noise."""
    alpha, fg = scene(size, colours)
    w = alpha.shape[1]
    bg = np.array(key, float) / 255 * (0.88 + 0.12 * np.arange(w) / (w - 1))[None, :, None]
    obs = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    rng = np.random.default_rng(seed)
    obs = np.clip(np.round(obs * 255 + rng.normal(0.0, noise, obs.shape)), 0, 255)
    return obs.astype(np.uint8), alpha, fg


def key_excess(rgb: np.ndarray, key: tuple[int, int, int]) -> np.ndarray:
    """How far the key's dominant channels rise above the others (green: G - max(R, B))."""
    k = np.array(key, float)
    dom = k > k.mean()
    return rgb[..., dom].min(axis=-1) - rgb[..., ~dom].max(axis=-1)


def ring(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(mask, (dy, dx), axis=(0, 1))
    return out


@pytest.mark.parametrize(
    ("key", "seed", "colours"),
    [
        (GREEN, 0, (ORANGE, STEEL)),
        (GREEN, 1, (ORANGE, STEEL)),
        (MAGENTA, 0, (ORANGE, STEEL)),
        (MAGENTA, 1, (LEAF, STEEL)),
        (BLUE, 0, (ORANGE, LEAF)),
    ],
)
def test_matte_recovers_known_alpha_without_spill(
    key: tuple[int, int, int], seed: int, colours: tuple[tuple[float, ...], ...]
) -> None:
    obs, alpha, fg = composite(key, seed, colours=colours)
    rgba = matte.matte(obs, matte.estimate_key(obs))
    assert rgba.dtype == np.uint8 and rgba.shape == obs.shape[:2] + (4,)
    a = rgba[..., 3] / 255
    iou = ((a > 0.5) & (alpha > 0.5)).sum() / ((a > 0.5) | (alpha > 0.5)).sum()
    assert iou >= 0.95
    assert np.abs(a - alpha).mean() < 0.005
    soft = (alpha > 0) & (alpha < 1)
    assert np.abs(a - alpha)[soft].mean() < 0.1  # the anti-aliased edge itself
    band = ring(soft, 2) & (a > 0)
    excess = key_excess(rgba[..., :3] / 255, key) - key_excess(fg, key)
    assert excess[band].max() <= SPILL_TOLERANCE
    inside = band & (a >= 0.5)
    assert np.abs(rgba[..., :3] / 255 - fg)[inside].mean() < 4 / 255  # colours decontaminated
    assert np.all(rgba[a == 0][:, :3] == 0)


def test_without_despill_the_edge_keeps_key_colour() -> None:
    obs, alpha, fg = composite(GREEN)
    rgba = matte.matte(obs, GREEN, despill=False)
    band = ring((alpha > 0) & (alpha < 1), 2) & (rgba[..., 3] > 0)
    excess = key_excess(rgba[..., :3] / 255, GREEN) - key_excess(fg, GREEN)
    assert excess[band].max() > 0.5


def test_clamp_catches_spill_that_decontamination_misses() -> None:
    """With the plain ramp, pixels of true alpha ~0.6 read as opaque and are not solved;
    the dominant-channel clamp must still leave no pixel on the band greener than grey."""
    obs, alpha, _ = composite(GREEN)
    rgba = matte.matte(obs, GREEN, refine=False)
    band = ring((alpha > 0) & (alpha < 1), 2) & (rgba[..., 3] > 0)
    assert key_excess(rgba[..., :3].astype(float), GREEN)[band].max() <= 0


def test_refine_improves_edge_alpha() -> None:
    obs, alpha, _ = composite(GREEN)
    soft = (alpha > 0) & (alpha < 1)
    err = {
        refine: np.abs(matte.matte(obs, GREEN, refine=refine)[..., 3] / 255 - alpha)[soft].mean()
        for refine in (True, False)
    }
    assert err[True] < 0.5 * err[False]


def test_dark_outline_stays_opaque() -> None:
    """Refinement must not turn a black outline (not on the key->fill line) transparent."""
    alpha, fg = scene()
    interior = (alpha > 0.99) & ~ring(alpha < 0.99, 2)
    fg = np.where(interior[..., None], fg, 0.05)  # 2-px black outline and black AA edge
    obs = alpha[..., None] * fg + (1 - alpha[..., None]) * np.array(GREEN) / 255
    rgba = matte.matte(np.round(obs * 255).astype(np.uint8), GREEN)
    outline = (alpha > 0.99) & ~interior
    assert outline.sum() > 500 and rgba[..., 3][outline].min() >= 250
    soft = (alpha > 0) & (alpha < 1)
    assert np.abs(rgba[..., 3] / 255 - alpha)[soft].mean() < 0.1


def test_near_grey_key_falls_back_to_rgb_distance() -> None:
    obs, alpha, _ = composite((250, 250, 250), noise=1.0)
    a = matte.matte(obs, (250, 250, 250))[..., 3] / 255
    iou = ((a > 0.5) & (alpha > 0.5)).sum() / ((a > 0.5) | (alpha > 0.5)).sum()
    assert iou >= 0.95


def test_key_distance_shading_and_hue() -> None:
    px = np.array([[GREEN, (0, 200, 0), (128, 128, 128), (0, 0, 0), (255, 0, 255)]], np.uint8)
    d = matte.key_distance(px, GREEN)
    np.testing.assert_allclose(d[0, :4], [0.0, 0.5 * 55 / 255, 0.5, 0.5], atol=1e-5)
    assert d[0, 4] == pytest.approx(1.0)  # opposite hue: a = -1, weighted by 0.5


def test_estimate_key_reads_the_border() -> None:
    obs, _, _ = composite(MAGENTA, noise=0.0)
    k = matte.estimate_key(obs)
    assert np.allclose(k, (240, 0, 240), atol=2)  # median of the 0.88..1.0 gradient
    img = np.full((10, 12, 3), (10, 200, 30), np.uint8)
    img[0, :5] = 255  # a sprite touching the border is outvoted
    assert matte.estimate_key(img) == (10, 200, 30)


@pytest.mark.parametrize(
    ("prompt", "key"),
    [
        ("mossy green slime", MAGENTA),
        ("a knight in plate armour", GREEN),
        ("red dragon", GREEN),
        ("purple potion bottle", GREEN),
        ("pink flowers with green leaves", BLUE),
        ("Emerald gem, glowing", MAGENTA),
    ],
)
def test_choose_key_color(prompt: str, key: tuple[int, int, int]) -> None:
    assert matte.choose_key_color(prompt) == key


def test_key_prompt_suffix() -> None:
    assert matte.key_prompt_suffix(MAGENTA) == ", isolated on a flat solid magenta background"
    assert matte.key_prompt_suffix((1, 2, 3)).endswith("#010203 background")


def test_trim_exact_box_with_padding() -> None:
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[5:9, 10:16, 3] = 255
    rgba[12, 17, 3] = 1
    crop, box = matte.trim(rgba, padding=2)
    assert box == (8, 3, 12, 12)  # x 10..17 -> 8..19, y 5..12 -> 3..14
    assert np.array_equal(crop, rgba[3:15, 8:20])
    _, box = matte.trim(rgba, padding=100)
    assert box == (0, 0, 30, 20)
    empty = np.zeros((4, 5, 4), np.uint8)
    same, box = matte.trim(empty, 3)
    assert same is empty and box == (0, 0, 5, 4)
    with pytest.raises(ValueError, match="padding"):
        matte.trim(rgba, -1)


def test_matter_registry() -> None:
    obs, alpha, _ = composite(MAGENTA)
    matter: matte.Matter = matte.MATTERS["key-color"]()
    rgba = matter(obs, "mossy green slime")
    assert rgba.shape == obs.shape[:2] + (4,)
    assert ((rgba[..., 3] > 127) == (alpha > 0.5)).mean() > 0.99


def test_matte_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="inner"):
        matte.matte(np.zeros((4, 4, 3), np.uint8), GREEN, inner=0.5, outer=0.4)
    with pytest.raises(ValueError, match="uint8"):
        matte.matte(np.zeros((4, 4, 3), np.float32), GREEN)
