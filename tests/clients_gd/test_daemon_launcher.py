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
