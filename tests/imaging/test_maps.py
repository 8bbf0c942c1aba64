import numpy as np
import pytest

from pixelkiln_server.imaging import maps, seam


def periodic_texture(seed: int = 0, h: int = 256, w: int = 256, cutoff: float = 40.0) -> np.ndarray:
    """Random RGB uint8 that tiles: low-passed white noise (the FFT makes it periodic)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((h, w, 3))
    fy = np.fft.fftfreq(h)[:, None] * h
    fx = np.fft.fftfreq(w)[None, :] * w
    lowpass = np.exp(-(fx**2 + fy**2) / (2 * cutoff**2))
    f = np.real(np.fft.ifft2(np.fft.fft2(noise, axes=(0, 1)) * lowpass[..., None], axes=(0, 1)))
    f = (f - f.min()) / (f.max() - f.min())
    return np.round(f * 255).astype(np.uint8)


def encode(n: float) -> int:
    return int(np.floor((n * 0.5 + 0.5) * 255 + 0.5))


def circular_blur_reference(img: np.ndarray, sigma: float, axes: tuple[int, ...]) -> np.ndarray:
    k = maps.gaussian_kernel(sigma).astype(np.float64)
    r = len(k) // 2
    out = img.astype(np.float64)
    for axis in axes:
        n = img.shape[axis]
        kc = np.zeros(n)
        np.add.at(kc, np.arange(-r, r + 1) % n, k)
        shape = [1, 1]
        shape[axis] = n
        spec = np.fft.fft(kc).reshape(shape)
        out = np.real(np.fft.ifft(np.fft.fft(out, axis=axis) * spec, axis=axis))
    return out


@pytest.mark.parametrize(("shape", "sigma"), [((40, 56), 2.5), ((16, 12), 6.0), ((9, 9), 1.0)])
def test_wrapped_blur_equals_fft_circular_convolution(shape: tuple[int, int], sigma: float) -> None:
    img = np.random.default_rng(1).random(shape)
    got = maps.gaussian_blur(img, sigma, wrap=True)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, circular_blur_reference(img, sigma, (0, 1)), atol=1e-5)


def test_clamped_blur_matches_edge_padded_convolution() -> None:
    img = np.random.default_rng(2).random((20, 30))
    k = maps.gaussian_kernel(1.5).astype(np.float64)
    r = len(k) // 2
    ref = np.pad(img, r, mode="edge")
    ref = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 1, ref)
    ref = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 0, ref)
    np.testing.assert_allclose(maps.gaussian_blur(img, 1.5, wrap=False), ref, atol=1e-5)


def test_blur_wraps_per_axis() -> None:
    img = np.random.default_rng(3).random((32, 32))
    x_only = maps.gaussian_blur(img, 2.0, wrap=(True, False))
    both = maps.gaussian_blur(img, 2.0, wrap=True)
    r = len(maps.gaussian_kernel(2.0)) // 2
    np.testing.assert_allclose(x_only[r:-r], both[r:-r], atol=1e-6)  # x wraps the same
    assert np.abs(x_only[0] - both[0]).mean() > 1e-2  # y is clamped, not wrapped


def test_gaussian_kernel() -> None:
    k = maps.gaussian_kernel(2.0)
    assert len(k) == 13 and k.sum() == pytest.approx(1.0) and np.allclose(k, k[::-1])
    assert np.array_equal(maps.gaussian_kernel(0.0), np.ones(1))


def test_flat_height_gives_flat_normal() -> None:
    normal = maps.normal_from_height(np.full((8, 8), 0.3), 5.0, "opengl", wrap=False)
    assert normal.dtype == np.uint8 and normal.shape == (8, 8, 3)
    assert np.all(normal == np.array([128, 128, 255], dtype=np.uint8))


def test_x_slope_gives_analytic_normal() -> None:
    slope, strength = 0.1, 2.0
    height = np.tile(np.arange(16) * slope, (8, 1))
    n = np.array([-strength * slope, 0.0, 1.0]) / np.hypot(strength * slope, 1.0)
    expected = [encode(c) for c in n]
    assert expected == [102, 128, 253]
    for convention in ("opengl", "directx"):
        normal = maps.normal_from_height(height, strength, convention, wrap=False)
        assert np.all(normal[:, 1:-1] == np.array(expected, dtype=np.uint8)), convention
        assert np.all(normal[:, 0, 0] > expected[0])  # clamped border: one-sided, half slope


def test_y_slope_green_flips_between_conventions() -> None:
    slope, strength = 0.05, 3.0
    height = np.tile((np.arange(16) * slope)[:, None], (1, 8))  # rises toward the bottom
    ny = strength * slope / np.hypot(strength * slope, 1.0)
    gl = maps.normal_from_height(height, strength, "opengl", wrap=False)
    dx = maps.normal_from_height(height, strength, "directx", wrap=False)
    assert np.all(gl[1:-1, :, 1] == encode(ny)) and encode(ny) > 128  # faces up: green up
    assert np.all(dx[1:-1, :, 1] == encode(-ny))
    assert np.array_equal(gl[..., [0, 2]], dx[..., [0, 2]])


def test_normal_bad_convention() -> None:
    with pytest.raises(ValueError, match="convention"):
        maps.normal_from_height(np.zeros((4, 4)), 1.0, "vulkan", wrap=False)  # type: ignore[arg-type]


def test_height_is_normalised_luminance() -> None:
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[:, 3:] = (0, 255, 0)
    rgb[:, :3] = (255, 0, 0)
    h = maps.height_from_albedo(rgb, 0.0, wrap=False)
    assert h.dtype == np.float32 and h.min() == 0.0 and h.max() == 1.0
    assert np.all(h[:, :3] == 0.0)  # red (0.2126) is darker than green (0.7152)
    assert np.all(maps.height_from_albedo(np.full((4, 4, 3), 9, np.uint8), 1.0, True) == 0.5)


def test_ao_known_pit_value() -> None:
    radius, strength, depth = 4.0, 1.0, 0.1
    height = np.ones((33, 33))
    height[16, 16] -= depth
    ao = maps.ao_from_height(height, radius, strength, wrap=True)
    k0 = float(maps.gaussian_kernel(radius / 2)[len(maps.gaussian_kernel(radius / 2)) // 2])
    cavity = depth * (1 - k0 * k0)
    assert ao[16, 16] == int(np.floor((1 - 4 * strength * cavity) * 255 + 0.5))
    assert ao[0, 0] == 255 and ao[16, 16] < 200
    assert np.all(maps.ao_from_height(height, radius, 0.0, wrap=True) == 255)


def test_roughness_bright_is_smoother_and_in_range() -> None:
    rgb = np.zeros((16, 32, 3), dtype=np.uint8)
    rgb[:, 16:] = 230
    rgb[:, :16] = 20
    r = maps.roughness_from_albedo(rgb, wrap=False)
    assert r.dtype == np.uint8 and r.shape == (16, 32) and r.min() >= 127
    assert r[:, 24].mean() < r[:, 8].mean()


def test_tiling_texture_maps_have_no_seam() -> None:
    img = periodic_texture()
    assert seam.seam_metric(img, "xy").ratio == pytest.approx(1.0, abs=0.2)
    out = maps.derive_maps(img, list(maps.MAP_KINDS), wrap_x=True, wrap_y=True)
    for kind, m in out.items():
        for axis in ("x", "y"):
            # One wrap line against the mean of 255 interior lines: within 0.35 of 1.
            assert seam.seam_metric(m, axis).ratio == pytest.approx(1.0, abs=0.35), (kind, axis)


def test_wrapped_maps_are_shift_equivariant() -> None:
    """Exact no-seam check: the maps of a rolled texture are the rolled maps."""
    img = periodic_texture(seed=4, h=64, w=96, cutoff=10.0)
    shift = (17, 41)
    a = maps.derive_maps(img, list(maps.MAP_KINDS), wrap_x=True, wrap_y=True)
    b = maps.derive_maps(np.roll(img, shift, axis=(0, 1)), list(maps.MAP_KINDS), None, True, True)
    for kind in maps.MAP_KINDS:
        diff = np.abs(np.roll(a[kind], shift, axis=(0, 1)).astype(int) - b[kind])
        assert diff.max() <= 1, kind  # float32 summation order may flip a rounding


def test_unwrapped_maps_differ_at_the_border() -> None:
    img = periodic_texture()
    wrapped = maps.derive_maps(img, ["normal", "ao"], wrap_x=True, wrap_y=True)
    clamped = maps.derive_maps(img, ["normal", "ao"], wrap_x=False, wrap_y=False)
    for kind in ("normal", "ao"):
        w, c = wrapped[kind].astype(float), clamped[kind].astype(float)
        border = np.abs(w[:, 0] - c[:, 0]).mean()
        middle = np.abs(w[:, 128] - c[:, 128]).mean()
        assert border > 2.0 and border > 4 * middle, (kind, border, middle)


def test_wrap_only_x_keeps_y_clamped() -> None:
    img = periodic_texture(seed=5, h=64, w=64, cutoff=10.0)
    both = maps.derive_maps(img, ["normal"], wrap_x=True, wrap_y=True)["normal"]
    x_only = maps.derive_maps(img, ["normal"], wrap_x=True, wrap_y=False)["normal"]
    top = np.abs(both[0].astype(int) - x_only[0]).mean()
    left = np.abs(both[20:40, 0].astype(int) - x_only[20:40, 0]).mean()
    assert top > 1.0 and left < top / 4


def test_derive_maps_outputs() -> None:
    img = periodic_texture(h=32, w=48)
    out = maps.derive_maps(img, ["height", "normal", "roughness", "ao"])
    assert {k: (v.dtype, v.shape) for k, v in out.items()} == {
        "height": (np.uint8, (32, 48)),
        "normal": (np.uint8, (32, 48, 3)),
        "roughness": (np.uint8, (32, 48)),
        "ao": (np.uint8, (32, 48)),
    }
    h = maps.height_from_albedo(img, 1.0, wrap=False)
    assert np.array_equal(out["height"], np.floor(h * 255 + 0.5).astype(np.uint8))
    assert list(maps.derive_maps(img, ["roughness"])) == ["roughness"]
    rgba = np.concatenate([img, np.zeros((32, 48, 1), np.uint8)], axis=2)
    assert np.array_equal(maps.derive_maps(rgba, ["normal"])["normal"], out["normal"])
    gl = out["normal"]
    dx = maps.derive_maps(img, ["normal"], maps.MapOptions(convention="directx"))["normal"]
    assert np.all(np.abs(gl[..., 1].astype(int) + dx[..., 1] - 255) <= 1)


def test_derive_maps_rejects_bad_input() -> None:
    img = periodic_texture(h=8, w=8)
    with pytest.raises(ValueError, match="kinds"):
        maps.derive_maps(img, ["specular"])
    with pytest.raises(ValueError, match="rgb_uint8"):
        maps.derive_maps(img.astype(np.float32), ["height"])


@pytest.mark.parametrize(
    ("field", "value", "interval"),
    [
        ("height_blur", -1.0, "[0.0, 64.0]"),
        ("normal_strength", 0.0, "(0.0, 100.0]"),
        ("normal_strength", float("nan"), "(0.0, 100.0]"),
        ("ao_radius", 100.0, "(0.0, 64.0]"),
        ("ao_strength", 11.0, "[0.0, 10.0]"),
    ],
)
def test_map_options_validate(field: str, value: float, interval: str) -> None:
    with pytest.raises(ValueError) as exc:
        maps.MapOptions(**{field: value}).validate()  # type: ignore[arg-type]
    assert field in str(exc.value) and interval in str(exc.value)


def test_map_options_convention_and_defaults() -> None:
    maps.MapOptions().validate()
    with pytest.raises(ValueError, match="convention.*opengl"):
        maps.MapOptions(convention="vulkan").validate()
