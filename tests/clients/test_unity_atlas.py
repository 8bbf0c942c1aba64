"""The Unity package's reader of the daemon's atlas frame map
(engine_plugins/unity/Editor/AtlasFrameMap.cs) run with mono on maps made by the daemon's own
packer (server/pixelkiln_server/imaging/atlas.py): every frame, in order, with its rectangle in
Unity's bottom-left texture space, which SpriteSheet.cs hands to the Sprite Editor data provider
to slice a transparent atlas into sprites. Bad maps are refused with a message naming the field."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pixelkiln_server.imaging.atlas import pack_atlas

from .test_csharp_client import HERE, ROOT, _compile, mono

__all__ = ["mono"]  # the fixture, imported for its use below

SOURCES = [
    ROOT / "engine_plugins" / "unity" / "Editor" / "AtlasFrameMap.cs",
    HERE / "AtlasCheck.cs",
]


@pytest.fixture(scope="module")
def reader(mono: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("atlas") / "AtlasCheck.exe"
    _compile(exe, SOURCES)
    return exe


def read(reader: Path, tmp_path: Path, text: str) -> tuple[int, list[str]]:
    path = tmp_path / "frames.json"
    path.write_text(text, encoding="utf-8")
    ran = subprocess.run(["mono", str(reader), str(path)], capture_output=True, timeout=60)
    return ran.returncode, ran.stdout.decode("utf-8").splitlines()


def expected(frames: dict[str, Any]) -> list[str]:
    height = frames["meta"]["size"]["h"]
    lines = [f"{frames['meta']['size']['w']} {height}"]
    for name, entry in frames["frames"].items():
        f = entry["frame"]
        lines.append(f"{name}\t{f['x']} {height - f['y'] - f['h']} {f['w']} {f['h']}")
    return lines


@pytest.mark.parametrize(
    "sizes",
    [
        [(64, 64)] * 4,  # a grid
        [(64, 64)] * 3,  # a grid with an empty cell
        [(32, 48), (64, 16), (16, 16), (40, 40), (8, 72)],  # shelves of mixed sizes
    ],
)
@pytest.mark.parametrize("indent", [None, 2])
def test_frames_of_the_daemons_atlas_in_unity_space(
    reader: Path, tmp_path: Path, sizes: list[tuple[int, int]], indent: int | None
) -> None:
    images = [np.zeros((h, w, 4), dtype=np.uint8) for w, h in sizes]
    names = [f"frame_{i:03d}" for i in range(len(sizes))]
    _, frames = pack_atlas(images, names, list(range(len(sizes))), padding=2)
    code, lines = read(reader, tmp_path, json.dumps(frames, indent=indent))
    assert code == 0, lines
    assert lines == expected(frames)
    # The top-left frame of the packer sits at the top of Unity's bottom-up texture.
    first = lines[1].split("\t")[1].split()
    assert int(first[1]) + int(first[3]) == frames["meta"]["size"]["h"] - 2


def test_names_with_escapes_and_non_ascii(reader: Path, tmp_path: Path) -> None:
    images = [np.zeros((8, 8, 4), dtype=np.uint8)] * 2
    _, frames = pack_atlas(images, ['münze "gold"', "tab\there/ü"], [1, 2])
    for ensure_ascii in (True, False):
        code, lines = read(reader, tmp_path, json.dumps(frames, ensure_ascii=ensure_ascii))
        assert code == 0 and lines == expected(frames), lines


def _valid() -> dict[str, Any]:
    _, frames = pack_atlas([np.zeros((8, 8, 4), dtype=np.uint8)] * 2, ["a", "b"], [1, 2])
    return frames


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda f: f["frames"]["a"]["frame"].update(w=1000),
            "frames.a.frame (0, 0, 1000x8) is not inside",
        ),
        (lambda f: f["frames"]["b"]["frame"].update(x=-1), "is not inside"),
        (lambda f: f["frames"]["a"]["frame"].update(h=0), "is not inside"),
        (
            lambda f: f["frames"]["a"]["frame"].update(y=1.5),
            "frames.a.frame.y is not a whole number",
        ),
        (lambda f: f["frames"]["a"]["frame"].pop("w"), "frames.a.frame.w is missing"),
        (lambda f: f["frames"]["a"].update(rotated=True), "frames.a is rotated"),
        (
            lambda f: f["frames"]["a"].update(trimmed=True, sourceSize={"w": 4, "h": 4}),
            "frames.a.spriteSourceSize does not fit in its 4x4 sourceSize",
        ),
        (lambda f: f.pop("meta"), "has no object 'meta'"),
        (lambda f: f.update(frames={}), "has no frames"),
        (lambda f: f["meta"].update(size={"w": 0, "h": 8}), "meta.size must be positive"),
    ],
)
def test_a_bad_map_is_refused_naming_the_field(
    reader: Path, tmp_path: Path, change: Any, message: str
) -> None:
    frames = _valid()
    change(frames)
    code, lines = read(reader, tmp_path, json.dumps(frames))
    assert code == 3 and message in lines[0], lines


@pytest.mark.parametrize(
    "text",
    ['{"frames": {', "[1, 2]", '{"a": tru}', '{"a": "\\x"}', "{} {}", "[" * 100 + "]" * 100, ""],
)
def test_text_that_is_not_a_map_is_refused(reader: Path, tmp_path: Path, text: str) -> None:
    code, lines = read(reader, tmp_path, text)
    assert code == 3 and lines[0].startswith("error: the atlas frame map is not"), lines


def test_a_trimmed_frame_pivots_on_its_sources_centre(reader: Path, tmp_path: Path) -> None:
    """A 6x10 sprite trimmed out of a 64x64 frame at (5, 3): its pivot is where that frame's
    centre falls, so a trimmed animation lines up as drawn (the daemon's packer writes it)."""
    sprite = np.zeros((10, 6, 4), dtype=np.uint8)
    _, frames = pack_atlas([sprite], ["a"], [1], trims=[((5, 3, 6, 10), (64, 64))])
    code, lines = read(reader, tmp_path, json.dumps(frames))
    assert code == 0, lines
    name, rest = lines[1].split("\t")
    pivot = [float(v) for v in rest.split(" pivot ")[1].split()]
    assert pivot == pytest.approx([(32 - 5) / 6, (3 + 10 - 32) / 10])
