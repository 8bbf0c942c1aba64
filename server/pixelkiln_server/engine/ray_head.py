"""``--ray-address local``: a private Ray head as a process of its own (``ray start --head
--block``), joined like any cluster and ended with the daemon.

Not ``ray.init()`` inside the daemon: that starts Ray's processes from this process with a
Python ``preexec_fn`` after ``fork``, while the daemon's gRPC and worker threads run; a lock
held by one of them at the fork leaves the child stuck before ``exec`` (seen in CI: the GCS
never started, "Timed out waiting for file .../gcs_server_port"). ``ray start`` forks from a
fresh interpreter whose only other thread waits on a pipe. Its ``--block`` mode ends every
process it started when it is terminated (Ray's reaper; on Windows, Ray's job object).

The head lives exactly as long as the daemon: it runs as ``python -m
pixelkiln_server.engine.ray_head ARGS`` (this file), which terminates itself when its stdin
(a pipe from the daemon) closes, so a daemon that is killed outright leaves no Ray behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT_S = 120.0  # a loaded 2-core machine took over 60 s to start Ray's processes
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalHead:
    process: subprocess.Popen[bytes]
    address: str  # 127.0.0.1:PORT of its GCS
    log: Path

    def stop(self) -> None:
        """End the head (closing its pipe; then terminate, and kill if it lingers)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)

    def tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def head_command(gcs_port: int) -> list[str]:
    """``ray start`` for a head, its ports picked free (a second private Ray
    on the machine must not collide on Ray's fixed defaults), no dashboard, no usage stats."""
    return [
        sys.executable, "-m", __name__, "start", "--head", "--block",
        "--node-ip-address=127.0.0.1", f"--port={gcs_port}",
        f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
        "--include-dashboard=false", "--disable-usage-stats",
    ]  # fmt: skip


def start(timeout_s: float = READY_TIMEOUT_S) -> LocalHead:
    """Start the head and wait until its GCS accepts connections; raises RuntimeError with the
    tail of its log when it exits or does not come up within ``timeout_s``."""
    gcs_port = free_port()
    fd, name = tempfile.mkstemp(prefix=f"pixelkiln-ray-head-{gcs_port}-", suffix=".log")
    env = {**os.environ, "RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1"}
    windows = sys.platform == "win32"
    # Its own process group / session: a Ctrl+C in the daemon's terminal is the daemon's to
    # handle (its graceful stop ends the head after the replicas' last jobs).
    group = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) if windows else 0
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            head_command(gcs_port), stdin=subprocess.PIPE, stdout=log,
            stderr=subprocess.STDOUT, env=env, creationflags=group,
            start_new_session=not windows,
        )  # fmt: skip
    head = LocalHead(process, f"127.0.0.1:{gcs_port}", Path(name))
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"ray start exited with status {process.returncode}: {head.tail()} "
                f"(log: {head.log})"
            )
        try:
            with socket.create_connection(("127.0.0.1", gcs_port), timeout=1.0):
                return head
        except OSError:
            pass
        if time.monotonic() > deadline:
            head.stop()
            raise RuntimeError(
                f"the private Ray head did not come up in {timeout_s:.0f} s: {head.tail()} "
                f"(log: {head.log})"
            )
        time.sleep(0.2)


def _end_when_the_daemon_goes() -> None:
    """In the head: EOF on stdin (the daemon closed the pipe or died) ends this process the
    way ``ray stop`` would, and with it Ray's processes."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    threading.Thread(target=_end_when_the_daemon_goes, daemon=True).start()
    from ray.scripts.scripts import main

    sys.argv = ["ray", *sys.argv[1:]]
    main()
