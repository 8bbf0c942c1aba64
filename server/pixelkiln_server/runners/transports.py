"""How the front reaches a runner host: in a thread of this process, or in a child process.

Both carry the same bytes (port messages), so both pass the same tests. A transport is
``start``, ``send``, a blocking ``recv`` (None once the runner is gone), ``kill``, ``close``
and ``cause`` (why it ended); ``take_fd`` hands the event loop the read end instead of
``recv`` where it can watch it (frames.py). Only primitives that exist on Linux, Windows and
macOS are used: ``multiprocessing`` with the spawn start method and two ``Pipe``s, each
used one way (socket pairs on POSIX, named pipes on Windows).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import queue
import signal
import socket
import sys
import threading
from typing import Any, Protocol

from .frames import frame_writer
from .host import HostConfig, RunnerHost

# A runner child's messages reach the front as frames its event loop reads (frames.py) on
# POSIX; Windows' proactor loop cannot watch a pipe, so a thread reads them there.
FRAMED = os.name == "posix"


class Transport(Protocol):
    pid: int | None

    def start(self) -> None: ...
    def send(self, data: bytes) -> None: ...
    def recv(self) -> bytes | None: ...
    def take_fd(self) -> int | None: ...
    def kill(self) -> None: ...
    def close(self, timeout: float) -> None: ...
    def cause(self) -> str: ...


class ThreadTransport:
    """The runner host on a thread of this process (tests, ``--runner thread``). It cannot
    be killed; everything else behaves as in a child process."""

    pid: int | None = None

    def __init__(self, config: HostConfig) -> None:
        self._to_host: queue.Queue[bytes | None] = queue.Queue()
        self._to_front: queue.Queue[bytes | None] = queue.Queue()
        self.host = RunnerHost(config, self._to_front.put)
        self._thread = threading.Thread(target=self._serve, name=f"{config.name}", daemon=True)

    def _serve(self) -> None:
        try:
            self.host.serve(self._to_host.get, lambda: not self._to_host.empty())
        finally:
            self._to_front.put(None)

    def start(self) -> None:
        self._thread.start()

    def send(self, data: bytes) -> None:
        self._to_host.put(data)

    def recv(self) -> bytes | None:
        return self._to_front.get()

    def take_fd(self) -> int | None:
        return None

    def kill(self) -> None:
        self._to_host.put(None)

    def close(self, timeout: float) -> None:
        self._to_host.put(None)
        self._thread.join(timeout)

    def cause(self) -> str:
        return "its thread stopped"


SOCKET_BUFFER_BYTES = 4 << 20


def widen_buffers(conn: Any, size: int = SOCKET_BUFFER_BYTES) -> None:
    """Give a socket-pair connection ``size``-byte send and receive buffers. macOS's default
    for local stream sockets (net.local.stream.sendspace/recvspace) is 8 KiB, so a 1 MiB image
    crossed in 128 pieces; Linux sizes them itself and is left alone. A connection that is not
    a socket (a Windows pipe) is skipped."""
    try:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
    except OSError:
        return
    with sock:
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):  # a system maximum below ``size``: its own
                sock.setsockopt(socket.SOL_SOCKET, option, size)


class ProcessTransport:
    """The runner host in a child process started with spawn (the default runner)."""

    def __init__(self, config: HostConfig) -> None:
        ctx = multiprocessing.get_context("spawn")
        # One connection each way: the front's writes block (as they should) while its read
        # end can be non-blocking for the event loop. Socket pairs, not POSIX pipes: a pipe's
        # 64 KiB buffer made a 1 MiB image 1.7x slower to cross (benchmarks/runners.py).
        self._from_child, child_out = ctx.Pipe()
        child_in, self._to_child = ctx.Pipe()
        self._child_ends: tuple[Any, ...] = (child_in, child_out)
        if sys.platform == "darwin":  # its socket pairs buffer 8 KiB: 128 writes per MiB
            for conn in (self._from_child, child_out, child_in, self._to_child):
                widen_buffers(conn)
        self._process = ctx.Process(
            target=child_main,
            args=(child_in, child_out, dataclasses.asdict(config), FRAMED),
            name=f"pixelkiln-{config.name}",
            daemon=True,
        )
        self._send_lock = threading.Lock()
        self.pid: int | None = None

    def start(self) -> None:
        self._process.start()
        for end in self._child_ends:  # the child has them now: EOF comes when it exits
            end.close()
        self.pid = self._process.pid

    def send(self, data: bytes) -> None:
        with self._send_lock:
            self._to_child.send_bytes(data)

    def recv(self) -> bytes | None:
        try:
            data: bytes = self._from_child.recv_bytes()
        except (EOFError, OSError):
            return None
        return data

    def take_fd(self) -> int | None:
        """The read end as a file descriptor the caller owns and reads frames from (see
        frames.LoopReader); None where the runner sends through ``recv`` (Windows)."""
        if not FRAMED:
            return None
        fd = os.dup(self._from_child.fileno())
        self._from_child.close()
        return fd

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()

    def close(self, timeout: float) -> None:
        try:
            from .port import pack

            self.send(pack({"op": "shutdown"}))
        except (OSError, ValueError):
            pass
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout)
        self._to_child.close()
        self._from_child.close()  # a no-op once take_fd closed it

    def cause(self) -> str:
        self._process.join(1.0)
        code = self._process.exitcode
        if code is None:
            return "its connection closed"
        return exit_cause(code)


def exit_cause(code: int, platform: str = sys.platform) -> str:
    """A runner process's exit code in words. On Windows there are no signals: CPython reports
    TerminateProcess (the pool's kill) as -SIGTERM, and a crash exits with an NTSTATUS code
    (0xC0000005: an access violation), shown in hex as Windows tools show it."""
    if platform == "win32":
        if code == -signal.SIGTERM:
            return "terminated"
        if code & 0xFFFFFFFF >= 0xC0000000:
            return f"crashed with status 0x{code & 0xFFFFFFFF:08X}"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def child_main(conn_in: Any, conn_out: Any, config: dict[str, Any], framed: bool) -> None:
    """Entry point of a runner child process: messages come in on ``conn_in`` and go out on
    ``conn_out``, as frames (frames.py) when ``framed``."""
    # Ctrl+C in a terminal reaches the whole process group: the front decides when runners
    # stop (after its grace), so the child ignores the console's interrupts.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGBREAK"):  # Windows: Ctrl+Break
        signal.signal(signal.SIGBREAK, signal.SIG_IGN)
    host_config = HostConfig(**config)
    # The parent's quiet/--verbose choice (it travels in the environment), before torch loads.
    from ..logsetup import configure_from_env, logs_via_port, send_logs_to

    configure_from_env(runner=host_config.name)
    if host_config.threads:
        import torch

        torch.set_num_threads(host_config.threads)

    def recv() -> bytes | None:
        try:
            data: bytes = conn_in.recv_bytes()
        except (EOFError, OSError):
            return None
        return data

    def waiting() -> bool:
        try:
            return bool(conn_in.poll(0))
        except (EOFError, OSError):
            return True  # recv() says the front is gone

    send = frame_writer(conn_out.fileno()) if framed else conn_out.send_bytes
    host = RunnerHost(host_config, send, own_process=True)
    if logs_via_port():
        send_logs_to(lambda text: host.send({"ev": "log", "text": text}))
    host.serve(recv, waiting)
