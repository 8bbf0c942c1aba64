"""What a Windows or macOS user meets that this Linux machine can still show: token files
with a byte-order mark, console encodings, case-blind file names, read-only targets, runner
exit codes, reserved ports (the OS is simulated where it must be; nothing here runs Windows
or macOS)."""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import pytest

from pixelkiln._cli_parts import free_name
from pixelkiln._files import write_atomically
from pixelkiln_server import app
from pixelkiln_server.auth import TokenFileError, TokenStore
from pixelkiln_server.runners.transports import exit_cause
from pixelkiln_server.shutdown import say

TOKEN = "pk_" + "w" * 43


def test_a_token_file_saved_by_notepad_with_a_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_bytes(b"\xef\xbb\xbf" + f"alice generate {TOKEN}\r\n".encode())
    assert TokenStore.load(path).authenticate(f"Bearer {TOKEN}").name == "alice"
    path.write_bytes(f"alice generate {TOKEN}\n".encode("utf-16"))  # PowerShell 5.1's >
    with pytest.raises(TokenFileError, match="it is UTF-16: save it as UTF-8"):
        TokenStore.load(path)


def test_a_daemon_line_the_console_cannot_encode_is_escaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Windows stdout redirected to a file is cp1252: the line goes out escaped and stdout
    stays (it was pointed at the null device, losing every later line)."""
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="cp1252", errors="strict")
    monkeypatch.setattr(sys, "stdout", out)
    say("listening: モデル ready")
    say("ready")
    out.flush()
    assert raw.getvalue().decode("cp1252").splitlines() == [
        "listening: \\u30e2\\u30c7\\u30eb ready",
        "ready",
    ]


def test_default_names_are_free_case_blind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On macOS and Windows Out.png and out.png are one file: the second run must not take it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Out.png").write_bytes(b"x")
    assert free_name("out") == "out-2.png"
    (tmp_path / "OUT-2_normal.png").write_bytes(b"x")
    assert free_name("out") == "out-3.png"


def test_a_read_only_target_is_refused_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POSIX replaced a read-only file silently, Windows refuses the rename (and left a
    read-only temporary file it could not remove): both now refuse first, naming the file."""
    target = tmp_path / "stone.png"
    target.write_bytes(b"old")
    target.chmod(0o444)
    if os.access(target, os.W_OK):  # root may write anything: answer as for a user
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == target else real(p, m))
    with pytest.raises(PermissionError, match="is read-only") as info:
        write_atomically(target, lambda f: f.write(b"new"))
    assert info.value.filename == str(target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["stone.png"]


def test_runner_exit_codes_in_words_on_each_os() -> None:
    assert exit_cause(-signal.SIGKILL, "linux") == "killed by signal SIGKILL"
    assert exit_cause(3, "linux") == "exited with status 3"
    assert exit_cause(-signal.SIGTERM, "win32") == "terminated"  # TerminateProcess
    assert exit_cause(3221225477, "win32") == "crashed with status 0xC0000005"
    assert exit_cause(-1073741819, "win32") == "crashed with status 0xC0000005"
    assert exit_cause(1, "win32") == "exited with status 1"


def test_a_port_windows_reserved_is_named_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "below 1024" in app._why_not_allowed(80)
    monkeypatch.setattr(sys, "platform", "win32")
    assert "excludedportrange" in app._why_not_allowed(50051)


async def test_runner_log_lines_can_travel_over_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows a spawned runner inherits no handles: its stderr went nowhere when the
    daemon's output was a file or a pipe (Unity, Godot). There (and here with the switch on)
    its formatted lines travel as port messages and the front writes them out."""
    from pixelkiln_server.engine import runner_client
    from pixelkiln_server.logsetup import LOGS_VIA_PORT_ENV

    from .conftest import running_daemon

    lines: list[str] = []
    monkeypatch.setattr(runner_client, "write_runner_lines", lines.append)
    monkeypatch.setenv(LOGS_VIA_PORT_ENV, "1")  # the spawned runner reads it
    async with running_daemon(runner="process", ws_port=None) as d:
        assert d.engine.runners[0].pid  # a child process
    assert any("[cpu#0]: loaded tiny-random" in line for line in lines), lines[:5]
    assert not any(line.endswith("\n") for line in lines)  # one record per message


def _proc_int(name: str) -> int:
    return int(Path("/proc/sys", name).read_text())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's limits")
def test_socket_pair_buffers_are_widened_for_macos() -> None:
    """macOS gives local socket pairs 8 KiB buffers; the runner's are set to 4 MiB there
    (exercised here on Linux's socket pairs, whose sizes would otherwise be its own)."""
    import multiprocessing
    import socket

    from pixelkiln_server.runners.transports import SOCKET_BUFFER_BYTES, widen_buffers

    a, b = multiprocessing.get_context("spawn").Pipe()
    try:
        widen_buffers(a)
        with socket.socket(fileno=os.dup(a.fileno())) as sock:
            sent = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            received = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        with socket.socket(fileno=os.dup(b.fileno())) as other:  # left alone
            untouched = other.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        # Linux caps the request at net.core.[wr]mem_max and reports twice what it keeps.
        assert sent > untouched and received > untouched
        assert sent >= min(2 * SOCKET_BUFFER_BYTES, 2 * _proc_int("net/core/wmem_max"))
    finally:
        a.close()
        b.close()


def test_a_rename_windows_refuses_for_a_moment_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An antivirus holding a new file makes Windows refuse its rename for a moment (one scan
    during the ONNX export made the daemon serve torch for the whole run)."""
    from pixelkiln_server import renames

    src, dst = tmp_path / "new", tmp_path / "final"
    src.write_text("x")
    real, refusals = os.replace, [2]

    def busy(a: object, b: object) -> None:
        if refusals[0]:
            refusals[0] -= 1
            raise PermissionError(13, "The process cannot access the file")
        real(a, b)  # type: ignore[arg-type]

    monkeypatch.setattr(renames.os, "replace", busy)
    monkeypatch.setattr(renames, "WAIT_S", 0.0)
    renames.replace(src, dst, platform="win32")
    assert dst.read_text() == "x" and refusals == [0]
    src.write_text("y")
    refusals[0] = 1
    with pytest.raises(PermissionError):  # elsewhere the first refusal is the answer
        renames.replace(src, dst, platform="linux")
