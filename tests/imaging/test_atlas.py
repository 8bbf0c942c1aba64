import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

from pixelkiln_server.imaging.atlas import pack_atlas


def sprites(sizes: list[tuple[int, int]], channels: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (h, w, c), dtype=np.uint8)
        for (w, h), c in zip(sizes, channels, strict=True)
    ]


def rects(frames: Iterable[dict[str, Any]]) -> list[tuple[int, int, int, int]]:
    return [(f["frame"]["x"], f["frame"]["y"], f["frame"]["w"], f["frame"]["h"]) for f in frames]


def assert_no_overlap(boxes: list[tuple[int, int, int, int]], gap: int = 0) -> None:
    for i, (ax, ay, aw, ah) in enumerate(boxes):
        for bx, by, bw, bh in boxes[i + 1 :]:
            apart = ax + aw + gap <= bx or bx + bw + gap <= ax
            apart = apart or ay + ah + gap <= by or by + bh + gap <= ay
            assert apart, ((ax, ay, aw, ah), (bx, by, bw, bh))


def check_pixels(
    atlas: np.ndarray, data: dict[str, Any], images: list[np.ndarray], names: list[str]
) -> None:
    for img, name in zip(images, names, strict=True):
        f = data["frames"][name]["frame"]
        tile = atlas[f["y"] : f["y"] + f["h"], f["x"] : f["x"] + f["w"]]
        assert np.array_equal(tile[..., : img.shape[2]], img), name
        if atlas.shape[2] == 4 and img.shape[2] == 3:
            assert np.all(tile[..., 3] == 255)


@pytest.mark.parametrize(("n", "padding"), [(1, 0), (5, 0), (7, 2), (9, 1)])
def test_equal_sizes_make_a_grid(n: int, padding: int) -> None:
    images = sprites([(16, 12)] * n, [4] * n)
    names = [f"frame_{i}" for i in range(n)]
    atlas, data = pack_atlas(images, names, list(range(100, 100 + n)), padding=padding)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    assert atlas.shape == (rows * 12 + (rows + 1) * padding, cols * 16 + (cols + 1) * padding, 4)
    assert data["meta"]["size"] == {"w": atlas.shape[1], "h": atlas.shape[0]}
    assert_no_overlap(rects(data["frames"].values()), gap=padding)
    check_pixels(atlas, data, images, names)
    assert [data["frames"][nm]["seed"] for nm in names] == list(range(100, 100 + n))
    x0 = min(f["frame"]["x"] for f in data["frames"].values())
    assert x0 == padding


def test_json_hash_shape() -> None:
    images = sprites([(8, 8), (8, 8)], [3, 3])
    atlas, data = pack_atlas(images, ["a", "b"], [7, 8], image_name="slimes.png")
    assert json.loads(json.dumps(data)) == data
    assert atlas.shape[2] == 3
    assert data["meta"] == {
        "app": "pixelkiln",
        "version": "1",
        "image": "slimes.png",
        "format": "RGB888",
        "size": {"w": 16, "h": 8},
        "scale": "1",
    }
    assert data["frames"]["b"] == {
        "frame": {"x": 8, "y": 0, "w": 8, "h": 8},
        "rotated": False,
        "trimmed": False,
        "spriteSourceSize": {"x": 0, "y": 0, "w": 8, "h": 8},
        "sourceSize": {"w": 8, "h": 8},
        "seed": 8,
    }


def test_mixed_sizes_and_channels_use_shelves_and_rgba() -> None:
    sizes = [(30, 10), (8, 25), (12, 12), (40, 5), (3, 3), (17, 9)]
    channels = [3, 4, 3, 4, 3, 3]
    images = sprites(sizes, channels)
    names = list("abcdef")
    atlas, data = pack_atlas(images, names, [1, 2, 3, 4, 5, 6], padding=1)
    assert atlas.shape[2] == 4 and data["meta"]["format"] == "RGBA8888"
    boxes = rects(data["frames"][n] for n in names)
    assert_no_overlap(boxes, gap=1)
    for x, y, w, h in boxes:
        assert x >= 1 and y >= 1 and x + w + 1 <= atlas.shape[1] and y + h + 1 <= atlas.shape[0]
    check_pixels(atlas, data, images, names)
    used = sum(w * h for w, h in sizes)
    assert used / (atlas.shape[0] * atlas.shape[1]) > 0.5  # shelves are reused


def test_many_random_sizes_pack_densely() -> None:
    rng = np.random.default_rng(5)
    sizes = [(int(rng.integers(4, 64)), int(rng.integers(4, 64))) for _ in range(40)]
    images = sprites(sizes, [4] * 40)
    names = [f"s{i}" for i in range(40)]
    atlas, data = pack_atlas(images, names, list(range(40)), padding=2)
    assert_no_overlap(rects(data["frames"].values()), gap=2)
    check_pixels(atlas, data, images, names)
    assert sum(w * h for w, h in sizes) / (atlas.shape[0] * atlas.shape[1]) > 0.6


def test_float_images_are_converted() -> None:
    img = np.full((4, 4, 3), 0.5, np.float32)
    atlas, _ = pack_atlas([img], ["x"], [0])
    assert atlas.dtype == np.uint8 and np.all(atlas == 128)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"images": [], "names": [], "seeds": []}, "images"),
        ({"names": ["a"], "seeds": [1, 2]}, "seeds"),
        ({"names": ["a", "a"], "seeds": [1, 2]}, "names"),
        ({"padding": -1}, "padding"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {
        "images": sprites([(4, 4)] * 2, [3, 3]),
        "names": ["a", "b"],
        "seeds": [1, 2],
    }
    base.update(kwargs)
    if len(base["names"]) == 1:
        base["images"] = base["images"][:1]
    with pytest.raises(ValueError, match=match):
        pack_atlas(**base)


def test_rejects_bad_image_naming_its_index() -> None:
    with pytest.raises(ValueError, match=r"images\[1\]"):
        pack_atlas([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)], ["a", "b"], [1, 2])


def test_trimmed_frames_say_where_they_sat() -> None:
    """A sprite cropped to its content keeps its place in the drawn frame (TexturePacker's
    trimmed, spriteSourceSize, sourceSize), so an animation of trimmed frames lines up."""
    a = np.full((10, 6, 4), 200, np.uint8)
    b = np.full((8, 8, 4), 100, np.uint8)
    _, data = pack_atlas([a, b], ["a", "b"], [1, 2], trims=[((5, 3, 6, 10), (64, 64)), None])
    fa, fb = data["frames"]["a"], data["frames"]["b"]
    assert fa["trimmed"] is True
    assert fa["spriteSourceSize"] == {"x": 5, "y": 3, "w": 6, "h": 10}
    assert fa["sourceSize"] == {"w": 64, "h": 64}
    assert fb["trimmed"] is False and fb["sourceSize"] == {"w": 8, "h": 8}
