"""Shutdown on every OS: stop signals where ``loop.add_signal_handler`` does not exist (Windows),
SIGBREAK, and a graceful stop by closing the daemon's standard input."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

from pixelkiln import Client, PixelKilnError, Progress
from pixelkiln_server.shutdown import ShutdownSignals, stop_signals, watch_stdin

from .conftest import free_port, home_dir

# Runs `pixelkiln serve` with the event loop's add_signal_handler refusing as on Windows
# (asyncio's base class raises NotImplementedError there).
WINDOWS_LIKE = """
import asyncio, sys
def refuse(self, sig, callback, *args):
    print("add_signal_handler refused", int(sig), flush=True)
    raise NotImplementedError
asyncio.SelectorEventLoop.add_signal_handler = refuse
from pixelkiln.cli import main
sys.exit(main(sys.argv[1:]))
"""


def refusing_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()

    def refuse(*args: object) -> None:
        raise NotImplementedError

    loop.add_signal_handler = refuse  # type: ignore[method-assign,assignment]
    return loop


def test_signal_signal_fallback_hands_the_stop_to_the_loop() -> None:
    loop = refusing_loop()
    before = {sig: signal.getsignal(sig) for sig in stop_signals()}
    stopped = threading.Event()
    calls: list[int] = []

    def on_stop() -> None:
        calls.append(threading.get_ident())
        stopped.set()

    signals = ShutdownSignals(loop, on_stop)
    try:
        installed = signals.install()
        assert installed == {sig: "signal.signal" for sig in stop_signals()}

        async def wait() -> None:
            os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the handler takes it
            while not stopped.is_set():
                await asyncio.sleep(0)

        loop.run_until_complete(asyncio.wait_for(wait(), 30))
        assert calls == [threading.get_ident()]  # ran as a loop callback on the loop's thread
    finally:
        signals.uninstall()
        loop.close()
    assert {sig: signal.getsignal(sig) for sig in stop_signals()} == before


def test_sigbreak_is_a_stop_signal_where_it_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    assert signal.SIGINT in stop_signals() and signal.SIGTERM in stop_signals()
    if not hasattr(signal, "SIGBREAK"):
        assert len(stop_signals()) == 2
        # Windows simulated: SIGBREAK exists; SIGUSR1 stands in for it (Linux has no SIGBREAK).
        monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)
    sigbreak = signal.Signals(getattr(signal, "SIGBREAK"))  # noqa: B009 (Windows-only name)
    assert sigbreak in stop_signals()
    loop = refusing_loop()
    stopped: list[bool] = []
    signals = ShutdownSignals(loop, lambda: stopped.append(True))
    try:
        assert signals.install()[sigbreak] == "signal.signal"
        loop.run_until_complete(asyncio.sleep(0))
        os.kill(os.getpid(), sigbreak)
        loop.run_until_complete(asyncio.sleep(0.05))
        assert stopped == [True]
    finally:
        signals.uninstall()
        loop.close()


def test_watch_stdin_stops_when_the_pipe_closes() -> None:
    read_fd, write_fd = os.pipe()
    loop = asyncio.new_event_loop()
    stopped = asyncio.Event()
    try:
        with os.fdopen(read_fd, "rb") as stream:
            thread = watch_stdin(loop, stopped.set, stream)
            assert thread is not None
            os.write(write_fd, b"anything the launcher writes is ignored\n")
            assert not stopped.is_set()
            os.close(write_fd)
            loop.run_until_complete(asyncio.wait_for(stopped.wait(), 30))
            thread.join(30)
    finally:
        loop.close()


def start_daemon(
    *argv: str, extra: tuple[str, ...] = (), stdin: Any = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PIXELKILN_HOME": str(home_dir()), "HF_HUB_OFFLINE": "1"}
    args = ["serve", "--port", str(port), "--ws-port", "-1", "--model", "tiny-random"]
    proc = subprocess.Popen(
        [*argv, *args, "--grace", "30", *extra],
        env=env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    address = f"127.0.0.1:{port}"
    with Client(address, timeout=5) as client:
        try:
            client.wait_ready(timeout=120)
        except Exception:
            proc.kill()
            print(proc.communicate()[0].decode(errors="replace"))
            raise
    return proc, address


def stop_during_a_request(address: str, stop: Any) -> dict[str, object]:
    """Starts a generation, calls ``stop()`` once it is running, returns its outcome."""
    outcome: dict[str, object] = {}
    started = threading.Event()

    def run() -> None:
        with Client(address, timeout=60) as client:
            try:
                outcome["result"] = client.generate(
                    "finish me",
                    seed=1,
                    steps=8,  # in flight when the stop arrives; more steps only wait longer
                    size=64,
                    on_event=lambda e: started.set() if isinstance(e, Progress) else None,
                )
            except PixelKilnError as err:
                outcome["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(60)
    stop()
    thread.join(120)
    return outcome


@pytest.mark.timeout(300)  # a busy machine: start-up and 12 steps on the CPU
def test_daemon_without_add_signal_handler_serves_and_stops_gracefully() -> None:
    # asyncio's own loop, as on Windows (uvloop, the default elsewhere, is not patched above).
    proc, address = start_daemon(
        sys.executable, "-c", WINDOWS_LIKE, extra=("--event-loop", "asyncio")
    )
    outcome = stop_during_a_request(address, lambda: proc.send_signal(signal.SIGINT))
    output, _ = proc.communicate(timeout=60)
    text = output.decode(errors="replace")
    assert f"add_signal_handler refused {int(signal.SIGINT)}" in text  # the fallback was needed
    assert "stop signals via signal.signal: SIGINT, SIGTERM" in text
    assert "received SIGINT" in text and "shutting down" in text
    assert "result" in outcome, (outcome, text)  # in-flight work finished within the grace
    assert proc.returncode == 0, text


@pytest.mark.timeout(300)
def test_closing_stdin_stops_the_daemon_gracefully() -> None:
    proc, address = start_daemon(
        sys.executable,
        "-m",
        "pixelkiln.cli",
        extra=("--stop-on-stdin-close",),
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    outcome = stop_during_a_request(address, proc.stdin.close)
    output = proc.stdout.read()  # to its end: the daemon exited
    proc.wait(60)
    text = output.decode(errors="replace")
    assert "standard input closed: stopping" in text and "shutting down" in text
    assert "result" in outcome, (outcome, text)
    assert proc.returncode == 0, text
