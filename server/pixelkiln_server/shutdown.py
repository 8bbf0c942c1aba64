"""Portable shutdown triggers for the daemon: signals on every OS, and standard input closing.

``loop.add_signal_handler`` exists only on Unix event loops; on Windows it raises
``NotImplementedError``. There the handlers are installed with ``signal.signal`` and hand over
to the event loop with ``call_soon_threadsafe`` (Python runs signal handlers on the main thread,
between bytecodes; the Proactor loop is woken through its wakeup fd). The signals:

- SIGINT: Ctrl+C in a terminal; ``CTRL_C_EVENT`` on Windows.
- SIGTERM: ``kill PID`` on macOS/Linux (on Windows nothing sends it; ``TerminateProcess`` is a
  hard kill that no handler sees).
- SIGBREAK (Windows only): Ctrl+Break, and ``CTRL_BREAK_EVENT`` sent with
  ``GenerateConsoleCtrlEvent`` to a daemon started in its own process group
  (``CREATE_NEW_PROCESS_GROUP``), e.g. from Python
  ``proc.send_signal(signal.CTRL_BREAK_EVENT)``.

Launchers that cannot send a console event (a GUI editor with no console, Godot's ``OS.kill``
is a hard kill on Windows) start the daemon with ``--stop-on-stdin-close`` and a pipe as its
standard input: closing the pipe stops the daemon gracefully on every OS, and so does the
launcher dying (its end of the pipe closes with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, BinaryIO

log = logging.getLogger(__name__)


def stop_signals() -> list[signal.Signals]:
    """The signals that stop the daemon gracefully on this OS."""
    signals = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGBREAK"):  # Windows: Ctrl+Break / CTRL_BREAK_EVENT
        signals.append(signal.SIGBREAK)
    return signals


class ShutdownSignals:
    """Calls ``on_stop`` on the event loop's thread when a stop signal arrives.

    signals = ShutdownSignals(loop, stop_event.set)
    signals.install()     # "loop" (Unix) or "signal.signal" (Windows) per signal
    ...
    signals.uninstall()   # the previous handlers are back
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_stop: Callable[[], None]) -> None:
        self.loop = loop
        self.on_stop = on_stop
        self.installed: dict[signal.Signals, str] = {}
        self._previous: dict[signal.Signals, Any] = {}

    def install(self) -> dict[signal.Signals, str]:
        """Install a handler for each stop signal; returns how each one was installed."""
        for sig in stop_signals():
            try:
                self.loop.add_signal_handler(sig, self.on_stop)
                self.installed[sig] = "loop"
            except NotImplementedError:  # Windows event loops
                self._previous[sig] = signal.signal(sig, self._handle)
                self.installed[sig] = "signal.signal"
        fallback = sorted(s.name for s, how in self.installed.items() if how != "loop")
        if fallback:
            log.info("stop signals via signal.signal: %s", ", ".join(fallback))
        return dict(self.installed)

    def uninstall(self) -> None:
        for sig, how in self.installed.items():
            if how == "loop":
                self.loop.remove_signal_handler(sig)
            else:
                signal.signal(sig, self._previous.get(sig, signal.SIG_DFL))
        self.installed.clear()
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        with contextlib.suppress(RuntimeError):  # a closed loop: nothing left to stop
            self.loop.call_soon_threadsafe(self.on_stop)


def say(text: str) -> None:
    """Print a line of the daemon's own to standard output, which may be gone.

    A launcher may close the daemon's stdout when it closes its stdin: Godot's
    ``OS.execute_with_pipe`` holds both in one handle, so the dock's graceful stop closes both.
    A write then raises ``BrokenPipeError`` (``OSError`` on Windows); standard output is pointed
    at the null device instead (as the Python docs advise for SIGPIPE), so the shutdown goes on
    and the exit at the end does not fail flushing it.
    """
    try:
        try:
            print(text, flush=True)
        except UnicodeEncodeError:  # a Windows stdout redirected to a file: the ANSI code page
            print(text.encode("ascii", "backslashreplace").decode("ascii"), flush=True)
    except (OSError, ValueError):  # ValueError: sys.stdout itself was closed
        with contextlib.suppress(OSError, ValueError, AttributeError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, sys.stdout.fileno())
            os.close(null)


def watch_stdin(
    loop: asyncio.AbstractEventLoop,
    on_stop: Callable[[], None],
    stream: BinaryIO | None = None,
) -> threading.Thread | None:
    """Call ``on_stop`` on the loop when ``stream`` (standard input by default) reaches its end.

    A blocking read on a daemon thread: it works for pipes on Windows, macOS and Linux alike
    (the Proactor loop cannot watch a console or pipe handle for reading). Whatever the launcher
    writes is read and ignored. Returns None where there is no standard input (pythonw).
    The read goes to the file descriptor, past the buffered reader: a daemon thread blocked in
    a buffered read holds its lock, and an exit while the pipe is still open (a port in use,
    a signal) then ends in "Fatal Python error: _enter_buffered_busy" and SIGABRT.
    """
    if stream is None:
        stream = sys.stdin.buffer if sys.stdin is not None else None
    if stream is None:
        log.warning("--stop-on-stdin-close: there is no standard input to watch")
        return None
    source = stream

    def read(size: int) -> bytes:
        try:
            return os.read(source.fileno(), size)
        except (AttributeError, io.UnsupportedOperation):  # no descriptor (an in-memory stream)
            return source.read1(size) if hasattr(source, "read1") else source.read(size)

    def run() -> None:
        try:
            while read(65536):
                pass
        except (OSError, ValueError):
            pass  # a broken or closed pipe ends the same way as an orderly close
        log.info("standard input closed: stopping")
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(on_stop)

    thread = threading.Thread(target=run, name="pixelkiln-stdin-watch", daemon=True)
    thread.start()
    return thread
