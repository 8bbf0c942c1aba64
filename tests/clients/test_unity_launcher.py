"""The Unity window's launcher (engine_plugins/unity/Editor/DaemonCommand.cs) run with mono: it
finds `.venv/bin/pixelkiln` and `.venv\\Scripts\\pixelkiln.exe` layouts, in folders whose names
have spaces and non-ASCII characters, and passes such arguments through as one argument each."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    ROOT / "engine_plugins" / "unity" / "Editor" / "DaemonCommand.cs",
    Path(__file__).resolve().parent / "csharp" / "LauncherCheck.cs",
]

# A stand-in for pixelkiln: prints the arguments it got (ASCII JSON, no encoding question).
FAKE = f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n"


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("mcs") is None or shutil.which("mono") is None:
        pytest.skip("needs mono's mcs and mono: apt-get install -y mono-devel")
    exe = tmp_path_factory.mktemp("launcher") / "LauncherCheck.exe"
    built = subprocess.run(
        ["mcs", "-nologo", "-warnaserror+", f"-out:{exe}", *map(str, SOURCES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return exe


def call(launcher: Path, tmp: Path, *args: str) -> tuple[int, str]:
    request = tmp / "args.txt"
    request.write_text("\n".join(args) + "\n", encoding="utf-8")
    ran = subprocess.run(
        ["mono", str(launcher), str(request)],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "LANG": "C"},  # no UTF-8 locale needed for any of this
    )
    return ran.returncode, ran.stdout.decode("utf-8").strip()


def fake_pixelkiln(path: Path) -> Path:
    path.parent.mkdir(parents=True)
    path.write_text(FAKE, encoding="utf-8")
    path.chmod(0o755)  # POSIX test machines only (Windows is simulated by layout)
    return path


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A PixelKiln checkout in a folder with spaces and non-ASCII characters."""
    folder = tmp_path / "Pixel Kiln ünïcødé 日本"
    fake_pixelkiln(folder / ".venv" / "bin" / "pixelkiln")
    (folder / "My Game").mkdir()
    return folder


def test_finds_pixelkiln_in_a_checkout_a_venv_and_beside_the_project(
    launcher: Path, checkout: Path, tmp_path: Path
) -> None:
    exe = str(checkout / ".venv" / "bin" / "pixelkiln")
    project = str(checkout / "My Game")
    assert call(launcher, tmp_path, "resolve", str(checkout), project) == (0, exe)
    assert call(launcher, tmp_path, "resolve", str(checkout / ".venv"), project) == (0, exe)
    assert call(launcher, tmp_path, "resolve", exe, project) == (0, exe)
    # Empty or a bare name: the project's (or its parent's) .venv before PATH.
    assert call(launcher, tmp_path, "resolve", "", project) == (0, exe)
    assert call(launcher, tmp_path, "resolve", "pixelkiln", project) == (0, exe)
    assert call(launcher, tmp_path, "resolve", "pixelkiln", str(tmp_path)) == (0, "pixelkiln")


def test_windows_layout_is_found_and_this_os_layout_comes_first(
    launcher: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "Ünï venv"
    windows = fake_pixelkiln(venv / "Scripts" / "pixelkiln.exe")
    assert call(launcher, tmp_path, "resolve", str(venv), "") == (0, str(windows))
    posix = fake_pixelkiln(venv / "bin" / "pixelkiln")
    assert call(launcher, tmp_path, "resolve", str(venv), "") == (0, str(posix))


def test_a_path_without_pixelkiln_is_a_clear_error(launcher: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty folder"
    empty.mkdir()
    code, out = call(launcher, tmp_path, "resolve", str(empty), "")
    assert code == 3 and out.startswith(f"error: no pixelkiln executable in '{empty}'")
    assert str(empty / "bin" / "pixelkiln") in out
    code, out = call(launcher, tmp_path, "resolve", str(tmp_path / "nope" / "pixelkiln"), "")
    assert code == 3 and "does not exist" in out


@pytest.mark.parametrize(
    "model",
    [
        "sd-turbo",
        "C:\\Models\\My Model\\",  # trailing backslash: must not escape the closing quote
        "./models/ünïcødé 日本 folder",
        'a "quoted" name',
        "it's here",
        "back\\\\slashes\\ and space",
    ],
)
def test_arguments_arrive_one_each(
    launcher: Path, checkout: Path, tmp_path: Path, model: str
) -> None:
    code, out = call(launcher, tmp_path, "run", str(checkout), "", model)
    assert code == 0, out
    assert json.loads(out) == [
        "serve",
        "--port",
        "50051",
        "--ws-port",
        "50052",
        "--model",
        model,
        "--offline",
    ]


def split_like_windows(command_line: str) -> list[str]:
    """CommandLineToArgvW's rules for arguments after the first: 2n backslashes before a quote
    give n and the quote toggles quoting; 2n+1 give n and a literal quote; other backslashes are
    literal."""
    args: list[str] = []
    current, quoted, started, i = "", False, False, 0
    while i < len(command_line):
        c = command_line[i]
        if c == "\\":
            run = len(command_line[i:]) - len(command_line[i:].lstrip("\\"))
            if i + run < len(command_line) and command_line[i + run] == '"':
                current += "\\" * (run // 2)
                if run % 2:
                    current += '"'
                    i += run + 1
                else:
                    i += run
                started = True
                continue
            current += "\\" * run
            i += run
            started = True
            continue
        if c == '"':
            quoted = not quoted
            started = True
        elif c in " \t" and not quoted:
            if started:
                args.append(current)
            current, started = "", False
        else:
            current += c
            started = True
        i += 1
    if started:
        args.append(current)
    return args


@pytest.mark.parametrize(
    "value",
    [
        "sd-turbo",
        "C:\\Models\\My Model\\",
        "\\\\server\\share\\models 2",
        'a "quoted" name\\"',
        "ünïcødé 日本",
        "",
    ],
)
def test_windows_quoting_splits_back_to_the_value(
    launcher: Path, tmp_path: Path, value: str
) -> None:
    """The Windows branch of Quote (not the one mono here takes), checked by simulation."""
    # The splitter itself agrees with Python's quoting for the MS C runtime.
    assert split_like_windows(subprocess.list2cmdline(["x", value])) == ["x", value]
    code, quoted = call(launcher, tmp_path, "quote-windows", value)
    assert code == 0
    assert split_like_windows(f"serve --model {quoted} --offline") == [
        "serve",
        "--model",
        value,
        "--offline",
    ]
