"""The Unity package's output-folder rule (engine_plugins/unity/Editor/OutputFolder.cs, which
AssetSaver uses) run with mono: results stay under the project's Assets folder; a '..' part
("Assets/../../outside") once passed the prefix check and wrote outside the project."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    ROOT / "engine_plugins" / "unity" / "Editor" / "OutputFolder.cs",
    Path(__file__).resolve().parent / "csharp" / "OutputFolderCheck.cs",
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
def checker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("mcs") is None or shutil.which("mono") is None:
        pytest.skip("needs mono's mcs and mono: apt-get install -y mono-devel")
    exe = tmp_path_factory.mktemp("folder") / "OutputFolderCheck.exe"
    built = subprocess.run(
        ["mcs", "-nologo", "-warnaserror+", f"-out:{exe}", *map(str, SOURCES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
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
