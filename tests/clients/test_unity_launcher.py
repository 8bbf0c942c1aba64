"""The Unity window's launcher (engine_plugins/unity/Editor/DaemonCommand.cs, DaemonLog.cs,
DaemonIdentity.cs) run with mono: it finds `.venv/bin/pixelkiln` and `.venv\\Scripts\\pixelkiln.exe`
layouts, in folders whose names have spaces and non-ASCII characters, passes such arguments
through as one argument each, sends the daemon's stdout and stderr to a log file (no pipe to the
editor; the real /bin/sh here, cmd.exe by simulation), keeps one old log, shows its tail, and
recognises the daemon by pid and start time so a reused pid is never taken for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_csharp_client import HERE, ROOT, _compile, mono

__all__ = ["mono"]  # the fixture, imported for its use below

SOURCES = [
    ROOT / "engine_plugins" / "unity" / "Editor" / "DaemonCommand.cs",
    ROOT / "engine_plugins" / "unity" / "Editor" / "DaemonLog.cs",
    ROOT / "engine_plugins" / "unity" / "Editor" / "DaemonIdentity.cs",
    HERE / "LauncherCheck.cs",
]

# A stand-in for pixelkiln: prints the arguments it got (ASCII JSON, no encoding question).
FAKE = f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n"


@pytest.fixture(scope="module")
def launcher(mono: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("launcher") / "LauncherCheck.exe"
    _compile(exe, SOURCES)
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
        "$HOME `id` $(id) > x",  # the launch shell must not expand or redirect anything
    ],
)
def test_arguments_arrive_one_each_and_the_output_goes_to_the_log(
    launcher: Path, checkout: Path, tmp_path: Path, model: str
) -> None:
    logs = tmp_path / "My Game ü" / "Library" / "PixelKiln"
    code, out = call(launcher, tmp_path, "run", str(checkout), "", model, str(logs))
    assert code == 0, out
    assert (logs / "daemon.log").read_text(encoding="utf-8").strip() == out
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


def test_a_failing_daemon_leaves_stdout_stderr_and_its_exit_code(
    launcher: Path, tmp_path: Path
) -> None:
    """What the window shows when the daemon dies before it is ready: both streams are in the
    log, in order, and the exit status is the daemon's (the shell exec'd it)."""
    exe = tmp_path / "bin dir ü" / "pixelkiln"
    exe.parent.mkdir()
    exe.write_text(
        f"#!{sys.executable}\nimport sys\nprint('pixelkiln: listening', flush=True)\n"
        "sys.stderr.write('OSError: [Errno 98] address already in use\\n')\nsys.exit(3)\n",
        encoding="utf-8",
    )
    exe.chmod(0o755)
    logs = tmp_path / "logs"
    code, out = call(launcher, tmp_path, "run", str(exe), "", "", str(logs))
    assert code == 3
    assert out.splitlines() == [
        "pixelkiln: listening",
        "OSError: [Errno 98] address already in use",
    ]


def test_a_missing_executable_on_path_is_reported_in_the_log(
    launcher: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    code, out = call(launcher, tmp_path, "run", "pixelkiln-not-installed-here", "", "", str(logs))
    assert code == 127 and "pixelkiln-not-installed-here" in out


def test_log_keeps_the_previous_run_and_tails_the_last_lines(
    launcher: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "Library ü" / "PixelKiln"
    code, path = call(launcher, tmp_path, "prepare", str(folder))
    assert code == 0 and Path(path) == folder / "daemon.log"
    assert (folder / "daemon.log").read_bytes() == b""
    lines = [f"line {i} ü" for i in range(100)]
    (folder / "daemon.log").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    assert call(launcher, tmp_path, "tail", path, "3") == (0, "line 97 ü\nline 98 ü\nline 99 ü")
    assert call(launcher, tmp_path, "prepare", str(folder)) == (0, path)
    assert (folder / "daemon.log.1").read_text(encoding="utf-8").startswith("line 0 ü")
    assert (folder / "daemon.log").read_bytes() == b""
    assert call(launcher, tmp_path, "tail", path, "3") == (0, "")
    assert call(launcher, tmp_path, "tail", str(folder / "nothing.log"), "3") == (0, "")


def test_identity_is_pid_and_start_time(launcher: Path, tmp_path: Path) -> None:
    """A stored identity finds the running daemon; the same pid with another start time (the
    id reused by another process), a malformed identity or an exited process find nothing."""
    code, out = call(launcher, tmp_path, "identity")
    assert code == 0, out
    found = dict(line.split("=", 1) for line in out.splitlines())
    assert found.pop("pid_matches") == "True"
    assert found.pop("found") == "same"
    assert found.pop("within_tolerance_found") == "same"
    assert found.pop("reused_found") == "none"
    assert found.pop("exited_found") == "none"
    assert found and set(found.values()) == {"none"}, found  # the malformed ones


def simulate_cmd(arguments: str, environment: dict[str, str]) -> tuple[list[str], str]:
    """What `cmd.exe ARGUMENTS` runs, for the subset DaemonCommand uses: ``/d /v:off /s /c "X"``
    (with /s the first and last quote go, X is kept as is), %NAME% expanded, then X read with
    cmd's quote state: ``^`` escapes the next character outside quotes, an unescaped ``>``
    outside quotes starts the redirections, and any other operator there is an error. Returns
    the program's argv (CommandLineToArgvW) and the redirections."""
    prefix = '/d /v:off /s /c "'
    assert arguments.startswith(prefix) and arguments.endswith('"'), arguments
    line = arguments[len(prefix) : -1]
    for name, value in environment.items():
        line = line.replace(f"%{name}%", value)
    assert "%" not in line, line
    command, quoted, i = "", False, 0
    while i < len(line):
        c = line[i]
        if c == '"':
            quoted = not quoted
        elif not quoted and c == "^":
            command += line[i + 1]
            i += 2
            continue
        elif not quoted and c == ">":
            return split_like_windows(command), line[i:]
        elif not quoted and c in "&|<()":
            raise AssertionError(f"cmd.exe would take {c!r} as an operator: {line}")
        command += c
        i += 1
    raise AssertionError(f"no redirection: {line}")


@pytest.mark.parametrize(
    ("exe", "args", "extra"),
    [
        ("C:\\Users\\Zoë Müller\\PixelKiln\\.venv\\Scripts\\pixelkiln.exe", ["serve"], ""),
        ("D:\\My Tools (x86)\\pk & co\\pixelkiln.exe", ["--model", "C:\\M\\a&b (2)\\"], ""),
        ("pixelkiln", ["--model", "日本 model^1!"], '--device cuda --home "D:\\a b&c"'),
        ("pixelkiln", ["serve"], "--x a&b|c<d>e(f)"),
    ],
)
def test_windows_launch_runs_the_daemon_with_its_output_in_the_log(
    launcher: Path, tmp_path: Path, exe: str, args: list[str], extra: str
) -> None:
    """The Windows branch (cmd.exe) by simulation: every argument arrives unchanged, the extra
    arguments are split as typed, and stdout and stderr go to the log named by the variable."""
    code, out = call(launcher, tmp_path, "launch-windows", exe, extra, *args)
    assert code == 0, out
    log = "C:\\Game Projects\\Zoë's (1) & co\\Library\\PixelKiln\\daemon.log"
    argv, redirect = simulate_cmd(out, {"PIXELKILN_DAEMON_LOG": log})
    extra_argv = split_like_windows(extra) if extra else []
    assert argv == [exe, *args, *extra_argv]
    assert redirect == f'>"{log}" 2>&1'


@pytest.mark.parametrize(
    ("exe", "args", "extra", "message"),
    [
        ("C:\\100% real\\pixelkiln.exe", [], "", "contains % or"),
        ("pixelkiln", ["--model", 'a "b"'], "", "contains % or"),
        ("pixelkiln", [], "--home %USERPROFILE%", "contain %"),
        ("pixelkiln", [], '--home "C:\\a b', "unbalanced"),
    ],
)
def test_windows_launch_refuses_what_cmd_would_change(
    launcher: Path, tmp_path: Path, exe: str, args: list[str], extra: str, message: str
) -> None:
    code, out = call(launcher, tmp_path, "launch-windows", exe, extra, *args)
    assert code == 4 and out.startswith("error: ") and message in out, out
