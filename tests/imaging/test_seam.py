import numpy as np
import pytest

from pixelkiln_server.imaging import seam


def _diagonal_wave(h: int = 64, w: int = 96) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return (0.5 + 0.5 * np.sin(2 * np.pi * (x / w + 2 * y / h))).astype(np.float32)


def test_periodic_image_has_ratio_one_on_both_axes() -> None:
    img = _diagonal_wave()
    for axis in ("x", "y", "xy"):
        report = seam.seam_metric(img, axis)
        assert report.ratio == pytest.approx(1.0, abs=0.02), axis


def test_periodic_sine_in_x_rgb_uint8() -> None:
    w = 128
    x = np.arange(w)
    phase = np.linspace(0, 1, 40, endpoint=False)[:, None]  # every row a different phase
    row = 0.5 + 0.5 * np.sin(2 * np.pi * (x / w + phase))
    img = np.repeat((row * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    assert seam.seam_metric(img, "x").ratio == pytest.approx(1.0, abs=0.05)


def test_ramp_has_large_edge_ratio() -> None:
    w = 64
    img = np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (32, 1))
    report = seam.seam_metric(img, "x")
    assert report.edge == pytest.approx(1.0)
    assert report.interior == pytest.approx(1.0 / (w - 1), rel=1e-4)
    assert report.ratio == pytest.approx(w - 1, rel=1e-3)
    assert seam.seam_metric(img, "y").ratio == 1.0  # constant down columns: 0/0 guard
    assert seam.seam_metric(img, "xy").ratio == pytest.approx(w - 1, rel=1e-3)


def test_flat_image_guard() -> None:
    report = seam.seam_metric(np.full((8, 8, 3), 7, dtype=np.uint8), "xy")
    assert report == seam.SeamReport(edge=0.0, interior=0.0, ratio=1.0)


def test_to_dict_and_bad_axis() -> None:
    report = seam.seam_metric(_diagonal_wave(), "x")
    assert set(report.to_dict()) == {"edge", "interior", "ratio"}
    with pytest.raises(ValueError, match="axis"):
        seam.seam_metric(_diagonal_wave(), "z")  # type: ignore[arg-type]


def test_tile() -> None:
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    tiled = seam.tile(img, 3, 2)
    assert tiled.shape == (4, 9, 3)
    assert np.array_equal(tiled[2:4, 6:9], img)
    assert seam.tile(img[..., 0], 2, 1).shape == (2, 6)
    with pytest.raises(ValueError, match="nx"):
        seam.tile(img, 0, 1)
