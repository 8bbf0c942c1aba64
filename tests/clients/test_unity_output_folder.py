"""The Unity package's output-folder rule (engine_plugins/unity/Editor/OutputFolder.cs, which
AssetSaver uses) run with mono: results stay under the project's Assets folder; a '..' part
("Assets/../../outside") once passed the prefix check and wrote outside the project."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .test_csharp_client import HERE, ROOT, _compile, mono

__all__ = ["mono"]  # the fixture, imported for its use below

SOURCES = [
    ROOT / "engine_plugins" / "unity" / "Editor" / "OutputFolder.cs",
    HERE / "OutputFolderCheck.cs",
]
CASES = {
    "": "Assets/PixelKiln",
    "Assets": "Assets",
    "Assets/Textures/": "Assets/Textures",
    "Assets\\Textures\\Walls": "Assets/Textures/Walls",
    "Assets/../../outside": None,
    "Assets/..": None,
    "Assets/./x": None,
    "Assets//x": None,
    "Packages/x": None,
    "/tmp/x": None,
    "C:\\Users\\me\\x": None,
    "AssetsX/y": None,
}


@pytest.fixture(scope="module")
def checker(mono: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("folder") / "OutputFolderCheck.exe"
    _compile(exe, SOURCES)
    return exe


def test_folders_outside_assets_are_refused(checker: Path) -> None:
    ran = subprocess.run(
        ["mono", str(checker), *CASES], capture_output=True, text=True, timeout=60, check=True
    )
    for (folder, expected), line in zip(CASES.items(), ran.stdout.splitlines(), strict=True):
        if expected is None:
            assert line.startswith("refused: the output folder must be inside"), (folder, line)
            assert "'.' or '..'" in line
        else:
            assert line == expected, (folder, line)
