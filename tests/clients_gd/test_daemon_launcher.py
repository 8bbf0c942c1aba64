"""The Godot dock's daemon launcher (engine_plugins/godot/addons/pixelkiln/daemon_*.gd).

The editor cannot run here, so the launcher is checked in parts:

- the stop it does, with a real ``pixelkiln serve`` from Python: Godot's ``OS.execute_with_pipe``
  gives one handle for the child's stdin and stdout, so the dock's graceful stop closes both at
  once; the daemon must still finish in-flight work and exit 0;
- daemon_command.gd's pure logic (which executable per OS, the arguments, the URL's port, the
  Windows command-line rules, the log's tail) on the GDScript interpreter, against real folders
  with spaces and non-ASCII names (test_godot_web.py runs the same calls in the real Godot 4.6);
- daemon_launcher.gd on the interpreter with Godot 4.6's Unix process API modelled from its
  source (godot_os_natives.py): real daemons and processes started, logged, stopped, killed.
  Windows and macOS, and the editor itself, are not run: the dock's wiring (dock_daemon.gd,
  dock.gd) parses and lints, and the panel builds in the real Godot's web build.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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


@pytest.mark.timeout(300)  # a busy machine: start-up and 8 steps on the CPU
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
from .godot_natives import NativeObject  # noqa: E402

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


def test_resolve_expands_the_home_folder(
    command: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "Jürgen home"
    posix = _touch(home / "pk" / ".venv" / "bin" / "pixelkiln")
    windows = _touch(home / "pk" / ".venv" / "Scripts" / "pixelkiln.exe")
    project = (tmp_path / "game").as_posix()
    # A folder or a file under "~", as typed in the Executable setting, per OS.
    assert command("resolve", "~/pk", project, "Linux", home.as_posix())["path"] == posix
    typed = "~\\pk\\.venv\\Scripts\\pixelkiln"
    windows_home = home.as_posix().replace("/", "\\")
    assert command("resolve", typed, project, "Windows", windows_home)["path"] == windows
    # By default HOME (USERPROFILE on Windows) from the environment.
    monkeypatch.setenv("HOME", home.as_posix())
    assert command("resolve", "~/pk/.venv/bin/pixelkiln", project, "macOS")["path"] == posix
    monkeypatch.setenv("USERPROFILE", home.as_posix())
    monkeypatch.setenv("HOME", "/nowhere")
    assert command("resolve", "~/pk", project, "Windows")["path"] == windows
    # "~user" is not the home folder; without a home nothing changes.
    assert command("expand_home", "~other/pk", "/home/me") == "~other/pk"
    assert command("expand_home", "~/pk", "") == "~/pk"
    assert command("expand_home", "~", "/home/me/") == "/home/me"


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


# ---- daemon_launcher.gd on the interpreter, with Godot's process API modelled ---------------
# godot_os_natives.py models OS.execute_with_pipe and friends as Godot 4.6 implements them on
# macOS/Linux; the launcher starts, pumps, stops and kills real processes through it.


class EditorSettingsStandIn(NativeObject):
    """The project metadata half of EditorSettings."""

    def __init__(self, vm: Any) -> None:
        super().__init__(vm)
        self.metadata: dict[str, Any] = {}

    def gd_get_project_metadata(self, section: str, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{section}/{key}", default)

    def gd_set_project_metadata(self, section: str, key: str, value: Any) -> None:
        self.metadata[f"{section}/{key}"] = value


class Launcher:
    """One daemon_launcher.gd instance; its methods called from Python."""

    def __init__(self, project: Path) -> None:
        self.vm = GodotVM(res_root=project)
        self.cls = self.vm.load(ADDON / "daemon_launcher.gd")
        self.settings = EditorSettingsStandIn(self.vm)
        self.inst = self.vm.new(self.cls, [self.settings])
        self.exits: list[tuple[bool, str]] = []
        self.vm.signal_of(self.inst, "exited").connect(lambda *a: self.exits.append(a))

    def __call__(self, name: str, *args: Any) -> Any:
        value = self.vm.call(self.cls.funcs[name], self.inst, list(args))
        assert not self.vm.engine_errors, self.vm.engine_errors
        return value

    def __getitem__(self, name: str) -> Any:
        return self.inst.vals[name]

    def pump_until(self, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"not within {timeout} s: {self.log()}"
            self("pump")
            time.sleep(0.05)

    def log(self) -> str:
        path = self["log_path"]
        return Path(path).read_text("utf-8", errors="replace") if path else ""


@pytest.fixture
def game(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project inside a 'checkout' whose .venv/bin/pixelkiln is this repository's."""
    monkeypatch.setenv("PIXELKILN_HOME", str(home_dir()))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    project = tmp_path / PROJECT
    project.mkdir(parents=True)
    venv_bin = tmp_path / CHECKOUT / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "pixelkiln").symlink_to(Path(sys.executable).parent / "pixelkiln")
    yield project


@pytest.mark.timeout(300)
def test_launcher_starts_logs_and_stops_a_real_daemon(game: Path) -> None:
    launcher = Launcher(game)
    port, ws_port = free_port(), free_port()
    extra = f"--port {port} --model tiny-random --grace 30"
    assert launcher("start", "", f"ws://127.0.0.1:{ws_port}/v1", extra) == ""
    pid = launcher["pid"]
    assert pid > 0 and launcher("is_running") is True
    executable = launcher["executable"]
    assert executable.endswith(f"{CHECKOUT}/.venv/bin/pixelkiln")  # spaces and non-ASCII
    assert list(launcher["arguments"])[:4] == [
        "serve", "--ws-port", str(ws_port), "--stop-on-stdin-close",
    ]  # fmt: skip
    record = launcher.settings.metadata["pixelkiln/daemon_process"]
    assert record["pid"] == pid and record["editor_pid"] == os.getpid()
    assert "PYTHONIOENCODING" not in os.environ  # set for the child only
    # The daemon's stdout and stderr reach the log while the dock pumps (readiness is asked).
    launcher.pump_until(lambda: "health SERVING" in launcher.log(), 120)
    log = launcher.log()
    assert log.startswith("# ") and executable in log.splitlines()[0]  # UTF-8 path in the log
    assert " INFO pixelkiln_server." in log  # stderr (logging) as well as stdout
    # Stop during a request: the request finishes, the daemon exits 0, nothing is killed.
    outcome = stop_during_a_request(f"127.0.0.1:{port}", lambda: launcher("stop", 60.0))
    launcher.pump_until(lambda: bool(launcher.exits), 90)
    assert "result" in outcome, (outcome, launcher.log())
    assert launcher.exits == [(True, "the daemon stopped (code 0)")], launcher.log()
    log = launcher.log()
    assert "stop asked: standard input closed" in log and "SIGTERM sent" in log
    assert "pixelkiln_server.app: stopped" in log and "killed" not in log
    assert launcher("is_running") is False and launcher["pid"] == -1
    assert launcher.settings.metadata["pixelkiln/daemon_process"] == {}
    assert "standard input closed" in launcher("log_tail")
    launcher.vm.shutdown()


@pytest.mark.timeout(300)
def test_launcher_shows_why_the_daemon_exited(game: Path) -> None:
    launcher = Launcher(game)
    with socket.create_server(("127.0.0.1", 0)) as taken:  # a port in use
        ws_port = taken.getsockname()[1]
        url = f"ws://127.0.0.1:{ws_port}/v1"
        assert launcher("start", "", url, f"--port {free_port()} --model tiny-random") == ""
        launcher.pump_until(lambda: bool(launcher.exits), 120)
    [(asked, message)] = launcher.exits
    assert asked is False
    assert message.startswith("the daemon exited with code 2:\n# "), message
    assert "in use by another program; choose free ports with --port/--ws-port" in message
    assert launcher("log_tail") in message
    launcher.vm.shutdown()


def test_launcher_says_when_pixelkiln_cannot_run(tmp_path: Path) -> None:
    launcher = Launcher(tmp_path)  # no .venv anywhere up: the bare name, and not on PATH
    assert launcher("start", "pixelkiln-not-installed", "ws://127.0.0.1:1/v1", "") == ""
    launcher.pump_until(lambda: bool(launcher.exits), 60)
    [(asked, message)] = launcher.exits
    assert asked is False
    assert message.startswith("'pixelkiln-not-installed' could not be started"), message
    assert "Editor Settings > PixelKiln > Daemon > Executable" in message
    assert "Could not create child process: pixelkiln-not-installed" in launcher.log()
    # Starting twice is refused while one runs; nothing to stop now.
    launcher("stop", 1.0)
    assert launcher("is_running") is False
    launcher.vm.shutdown()


def test_launcher_kills_only_after_the_grace(tmp_path: Path) -> None:
    # A "daemon" that ignores its closed stdin and SIGTERM: the kill after the grace ends it.
    stubborn = tmp_path / "bin dir ü" / "stubborn"
    stubborn.parent.mkdir()
    stubborn.write_text("#!/bin/sh\ntrap '' TERM\necho started\nwhile :; do sleep 0.05; done\n")
    stubborn.chmod(0o755)
    launcher = Launcher(tmp_path)
    assert launcher("start", stubborn.as_posix(), "ws://127.0.0.1:1/v1", "") == ""
    launcher.pump_until(lambda: "started" in launcher.log(), 30)
    again = launcher("start", stubborn.as_posix(), "ws://127.0.0.1:1/v1", "")
    assert again.startswith("the daemon started from the editor is running already")
    launcher("stop", 0.5)
    launcher.pump_until(lambda: bool(launcher.exits), 30)
    assert launcher.exits == [(True, "the daemon stopped (code 9)")]
    assert "still running after the grace period: killed" in launcher.log()
    launcher.vm.shutdown()


def test_an_earlier_sessions_start_is_reported_never_signalled(tmp_path: Path) -> None:
    with subprocess.Popen(["sleep", "30"]) as bystander:  # a process that got the old pid
        launcher = Launcher(tmp_path)
        earlier = {"pid": bystander.pid, "started": 1796500000.0, "editor_pid": os.getpid() + 1}
        launcher.settings.metadata["pixelkiln/daemon_process"] = earlier
        note = launcher("take_previous_note")
        assert f"(pid {bystander.pid}) stopped when that editor or its dock closed" in note
        assert launcher.settings.metadata["pixelkiln/daemon_process"] == {}
        assert launcher("take_previous_note") == ""
        launcher("stop", 0.0)
        launcher("pump")
        launcher("release")
        assert bystander.poll() is None  # untouched
        bystander.kill()
    launcher.vm.shutdown()
