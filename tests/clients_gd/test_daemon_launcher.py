"""The Godot dock's daemon launcher (engine_plugins/godot/addons/pixelkiln/daemon_*.gd).

The editor cannot run here, so the launcher is checked in three parts:

- the stop it does, simulated with a real ``pixelkiln serve``: Godot's ``OS.execute_with_pipe``
  gives one handle for the child's stdin and stdout, so the dock's graceful stop closes both at
  once; the daemon must still finish in-flight work and exit 0;
- daemon_command.gd's pure logic (which executable per OS, the arguments, the URL's port, the
  Windows command-line rules, the log's tail) on the GDScript interpreter, against real folders
  with spaces and non-ASCII names;
- what only the editor can run (OS.execute_with_pipe, OS.kill, the dock's buttons) is checked
  statically: it parses and lints (test_gdscript_client.py), and the calls it makes exist in
  Godot 4.3+ with these signatures (see the addon README, "Starting the daemon from the dock").
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pixelkiln import Client

from ..conftest import free_port, home_dir
from ..test_shutdown import stop_during_a_request


def _start_like_godot() -> tuple[subprocess.Popen[bytes], str]:
    """`pixelkiln serve --stop-on-stdin-close` with stdin, stdout and stderr on pipes."""
    port = free_port()
    env = {**os.environ, "PIXELKILN_HOME": str(home_dir()), "HF_HUB_OFFLINE": "1"}
    args = ["serve", "--port", str(port), "--ws-port", "-1", "--model", "tiny-random"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixelkiln.cli", *args, "--grace", "30", "--stop-on-stdin-close"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    address = f"127.0.0.1:{port}"
    with Client(address, timeout=5) as client:
        try:
            client.wait_ready(timeout=120)
        except Exception:
            proc.kill()
            print(proc.communicate()[1].decode(errors="replace"))
            raise
    return proc, address


@pytest.mark.timeout(300)  # a busy machine: start-up and 12 steps on the CPU
def test_closing_stdin_and_stdout_together_stops_gracefully() -> None:
    proc, address = _start_like_godot()
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    assert b"ready" in proc.stdout.readline() + proc.stdout.readline()

    def godot_stop() -> None:  # FileAccess.close() on execute_with_pipe's "stdio"
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()

    outcome = stop_during_a_request(address, godot_stop)
    errors = proc.stderr.read().decode(errors="replace")
    proc.wait(60)
    assert "standard input closed: stopping" in errors
    assert "result" in outcome, (outcome, errors)  # in-flight work finished within the grace
    assert "BrokenPipeError" not in errors and "Traceback" not in errors, errors
    assert proc.returncode == 0, errors


# ---- daemon_command.gd on the interpreter ---------------------------------------------------

pytest.importorskip("gdtoolkit", reason="pip install gdtoolkit (Godot 4 GDScript parser)")
from .gdvm import GodotVM  # noqa: E402 - the interpreter parses with gdtoolkit

ADDON = Path(__file__).resolve().parents[2] / "engine_plugins" / "godot" / "addons" / "pixelkiln"
# A project and a PixelKiln checkout in folders with spaces and non-ASCII names.
CHECKOUT = "Jürgen's Projekte/PixelKiln 工具"
PROJECT = CHECKOUT + "/My Game"


@pytest.fixture
def command(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    machine = GodotVM(res_root=tmp_path)
    script = machine.load(ADDON / "daemon_command.gd")

    def call(name: str, *args: Any) -> Any:
        value = machine.call(script.funcs[name], None, list(args))
        assert not machine.engine_errors, machine.engine_errors
        return value

    yield call
    machine.shutdown()


def _touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path.as_posix()


def test_candidates_put_this_os_layout_first(command: Callable[..., Any]) -> None:
    assert list(command("candidates", "C:\\work\\.venv\\", "Windows")) == [
        "C:/work/.venv/Scripts/pixelkiln.exe",
        "C:/work/.venv/bin/pixelkiln",
    ]
    for os_name in ("Linux", "macOS", "FreeBSD"):
        assert list(command("candidates", "/home/a b/.venv", os_name)) == [
            "/home/a b/.venv/bin/pixelkiln",
            "/home/a b/.venv/Scripts/pixelkiln.exe",
        ]


@pytest.mark.parametrize("os_name", ["Linux", "macOS", "Windows"])
def test_resolve_finds_the_venv_of_the_project_then_above(
    command: Callable[..., Any], tmp_path: Path, os_name: str
) -> None:
    project = tmp_path / PROJECT
    project.mkdir(parents=True)
    project_dir = project.as_posix() + "/"  # as ProjectSettings.globalize_path("res://") gives it
    # Nothing anywhere: the bare name, for the OS to find on PATH.
    assert command("resolve", "", project_dir, os_name) == {"path": "pixelkiln", "error": ""}
    # A checkout holding the project: its .venv, in this OS's layout.
    layout = "Scripts/pixelkiln.exe" if os_name == "Windows" else "bin/pixelkiln"
    in_checkout = _touch(tmp_path / CHECKOUT / ".venv" / layout)
    assert command("resolve", "pixelkiln", project_dir, os_name)["path"] == in_checkout
    # The project's own .venv wins; the other OS's layout only when this one's is missing.
    other = "bin/pixelkiln" if os_name == "Windows" else "Scripts/pixelkiln.exe"
    own_other = _touch(project / ".venv" / other)
    assert command("resolve", "  ", project_dir, os_name)["path"] == own_other
    own = _touch(project / ".venv" / layout)
    assert command("resolve", "", project_dir, os_name)["path"] == own


def test_resolve_walks_up_to_the_checkout(command: Callable[..., Any], tmp_path: Path) -> None:
    # engine_plugins/godot/ inside a clone: the clone's .venv, two folders up.
    project = tmp_path / CHECKOUT / "engine_plugins" / "godot"
    project.mkdir(parents=True)
    venv = _touch(tmp_path / CHECKOUT / ".venv" / "bin" / "pixelkiln")
    assert command("resolve", "", project.as_posix(), "Linux")["path"] == venv


def test_resolve_a_configured_file_or_folder(command: Callable[..., Any], tmp_path: Path) -> None:
    venv = tmp_path / CHECKOUT / ".venv"
    posix = _touch(venv / "bin" / "pixelkiln")
    windows = _touch(venv / "Scripts" / "pixelkiln.exe")
    project = (tmp_path / "game").as_posix()
    # A file as given (quotes pasted from a shell are dropped); ".exe" added on Windows only.
    assert command("resolve", f'"{posix}"', project, "Linux") == {"path": posix, "error": ""}
    no_exe = windows.removesuffix(".exe")
    assert command("resolve", no_exe, project, "Windows")["path"] == windows
    assert "does not exist" in command("resolve", no_exe, project, "Linux")["error"]
    # Backslashes as a Windows user types them.
    typed = windows.replace("/", "\\")
    assert command("resolve", typed, project, "Windows")["path"] == windows
    # A virtual environment, or a checkout holding one, per OS.
    assert command("resolve", venv.as_posix(), project, "Linux")["path"] == posix
    assert command("resolve", venv.as_posix(), project, "Windows")["path"] == windows
    checkout = (tmp_path / CHECKOUT).as_posix()
    assert command("resolve", checkout, project, "macOS")["path"] == posix
    # A folder without one, and a path that is not there: the error says what was looked for.
    empty = tmp_path / "empty folder"
    empty.mkdir()
    found = command("resolve", empty.as_posix(), project, "Linux")
    assert found["path"] == "" and "no pixelkiln in" in found["error"]
    assert f"{empty.as_posix()}/bin/pixelkiln" in found["error"]
    missing = command("resolve", "/nowhere/pixelkiln", project, "Linux")
    assert missing["path"] == "" and "/nowhere/pixelkiln' does not exist" in missing["error"]
    assert (
        ".venv/bin/pixelkiln" in missing["error"] and "Scripts\\pixelkiln.exe" in missing["error"]
    )


def test_parent_dir(command: Callable[..., Any]) -> None:
    cases = {
        "/home/a b/game/": "/home/a b",
        "/home": "/",
        "/": "",
        "C:/Users/Jürgen/game": "C:/Users/Jürgen",
        "C:\\game\\": "C:/",
        "C:/": "",
        "game": "",
    }
    for path, parent in cases.items():
        assert command("parent_dir", path) == parent, path


def test_local_port(command: Callable[..., Any]) -> None:
    assert command("local_port", "ws://127.0.0.1:50052/v1") == {"port": 50052, "error": ""}
    assert command("local_port", " ws://localhost:6000/v1 ")["port"] == 6000
    assert command("local_port", "wss://[::1]:7000/v1")["port"] == 7000
    assert command("local_port", "ws://127.0.0.1/v1")["port"] == 50052
    remote = command("local_port", "ws://10.0.0.2:50052/v1")
    assert remote["port"] == 0 and "names 10.0.0.2: start it there" in remote["error"]
    assert "ws://" in command("local_port", "http://127.0.0.1:50052/v1")["error"]
    for bad in ("ws://127.0.0.1:0/v1", "ws://127.0.0.1:70000/v1", "ws://127.0.0.1:x/v1"):
        assert "port must be 1-65535" in command("local_port", bad)["error"], bad


def test_split_arguments(command: Callable[..., Any]) -> None:
    def split(text: str) -> list[str]:
        got = command("split_arguments", text)
        assert got["error"] == "", got
        return list(got["args"])

    assert split("") == [] and split("   ") == []
    assert split("--model sd-turbo  --offline") == ["--model", "sd-turbo", "--offline"]
    assert split('--model-root "D:\\Modelle für KI\\" --grace 30') == [
        "--model-root",
        "D:\\Modelle für KI\\",
        "--grace",
        "30",
    ]
    assert split("--add-model 'tiles=/srv/my models/tiles'") == [
        "--add-model",
        "tiles=/srv/my models/tiles",
    ]
    assert split("a\"b c\"d ''") == ["ab cd", ""]
    unclosed = command("split_arguments", '--model "sd turbo')
    assert list(unclosed["args"]) == [] and 'quote (") is not closed' in unclosed["error"]


def test_serve_arguments(command: Callable[..., Any]) -> None:
    built = command("serve_arguments", 6000, "--model 'sd turbo' --grace 30", "Linux")
    assert built["error"] == ""
    assert list(built["args"]) == [
        "serve", "--ws-port", "6000", "--stop-on-stdin-close",
        "--model", "sd turbo", "--grace", "30",
    ]  # fmt: skip
    assert list(command("serve_arguments", 50052, "", "Windows")["args"]) == [
        "serve", "--ws-port", "50052", "--stop-on-stdin-close",
    ]  # fmt: skip
    for extra in ("--ws-port 1", "--ws-port=1"):
        assert "dock's URL" in command("serve_arguments", 50052, extra, "Linux")["error"]
    assert "not closed" in command("serve_arguments", 50052, "'x", "Linux")["error"]
    # Non-ASCII and spaces pass on Windows too; what its command line would change is refused.
    ok = command("serve_arguments", 50052, "--model-root 'C:\\Modelle für KI'", "Windows")
    assert ok["error"] == "" and list(ok["args"])[-1] == "C:\\Modelle für KI"
    trailing = command("serve_arguments", 50052, "--model-root 'C:\\my models\\'", "Windows")
    assert "trailing backslash" in trailing["error"] and list(trailing["args"]) == []
    assert (
        command("serve_arguments", 50052, "--model-root 'C:\\my models\\'", "Linux")["error"] == ""
    )
    assert command("serve_arguments", 50052, "--model-root C:\\models\\", "Windows")["error"] == ""
    assert "empty argument" in command("serve_arguments", 50052, "--token ''", "Windows")["error"]
    assert "double quote" in command("serve_arguments", 50052, "'a\"b'", "Windows")["error"]


def test_windows_problem_follows_godots_quoting(command: Callable[..., Any]) -> None:
    # Godot quotes an argument holding one of these characters, and escapes nothing.
    for char in " &()[]{}^=;!'+,`~":
        assert "trailing backslash" in command("windows_problem", f"C:\\a{char}b\\"), char
    assert command("windows_problem", "C:\\plain\\") == ""  # not quoted: the backslash stays
    assert command("windows_problem", "C:\\Users\\Jürgen\\モデル") == ""
    assert "tab" in command("windows_problem", "a\tb")


def test_tail_lines(command: Callable[..., Any]) -> None:
    log = "".join(f"line {i}\r\n" for i in range(100)) + "\n\n"
    assert command("tail_lines", log, 3) == "line 97\nline 98\nline 99"
    assert command("tail_lines", "half a line\nline 1\nline 2", 5, True) == "line 1\nline 2"
    assert command("tail_lines", "one", 5, True) == "one"
    assert command("tail_lines", "", 5) == ""


def test_exit_message(command: Callable[..., Any]) -> None:
    header = "# 2026-12-06T10:00:00: pixelkiln serve --ws-port 50052 --stop-on-stdin-close"
    not_run = command("exit_message", 9, header, "pixelkiln")
    assert "'pixelkiln' could not be started (code 9)" in not_run
    assert "Editor Settings > PixelKiln > Daemon > Executable" in not_run
    godot_said = header + "\nERROR: Could not create child process: pixelkiln"
    assert "could not be started" in command("exit_message", 9, godot_said, "pixelkiln")
    port_taken = header + "\npixelkiln serve: [Errno 98] address already in use; choose free ports"
    said = command("exit_message", 1, port_taken, "/p/.venv/bin/pixelkiln")
    assert said.startswith("the daemon exited with code 1:\n") and "already in use" in said


def test_only_this_editors_own_start_may_be_signalled(command: Callable[..., Any]) -> None:
    record = {"pid": 4242, "started": 1796500000.0, "editor_pid": 100}
    assert command("is_ours", record, 4242, 100) is True
    assert command("is_ours", record, 4242, 101) is False  # an earlier editor session's daemon
    assert command("is_ours", record, 4243, 100) is False
    assert command("is_ours", {}, 4242, 100) is False
    assert command("is_ours", record, -1, 100) is False
