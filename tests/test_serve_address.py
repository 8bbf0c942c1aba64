"""A --host the daemon cannot listen on is named as such, never blamed on a port "in use by
another program" (that is said only when a plain socket finds the port taken); IPv6 hosts
are bound in brackets."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
from pathlib import Path

from pixelkiln_server.app import host_port, listen_error

ROOT = Path(__file__).resolve().parents[1]
# TEST-NET-1 (RFC 5737): never an address of this machine.
NOT_HERE = "192.0.2.1"


def test_listen_error_tells_a_taken_port_from_a_bad_host() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = listen_error("127.0.0.1", port, "gRPC")
    assert str(in_use) == f"cannot listen on 127.0.0.1:{port} (gRPC): in use by another program"
    assert in_use.errno == errno.EADDRINUSE

    absent = listen_error(NOT_HERE, 0, "gRPC")
    assert str(absent).startswith(f"--host {NOT_HERE}: cannot listen on {NOT_HERE}:0 (gRPC): ")
    assert "in use" not in str(absent) and absent.errno != errno.EADDRINUSE

    mapped = listen_error("::ffff:127.0.0.1", 0, "WebSocket")
    assert str(mapped) == (
        "--host ::ffff:127.0.0.1: cannot listen on [::ffff:127.0.0.1]:0 (WebSocket): an "
        "IPv4-mapped address; give the IPv4 address 127.0.0.1 instead"
    )
    assert mapped.errno != errno.EADDRINUSE


def test_ipv6_hosts_are_bracketed() -> None:
    assert host_port("::1", 50051) == "[::1]:50051"
    assert host_port("[::1]", 50051) == "[::1]:50051"
    assert host_port("127.0.0.1", 0) == "127.0.0.1:0"
    assert host_port("localhost", 9) == "localhost:9"


def test_serve_on_a_host_it_cannot_bind_names_the_host() -> None:
    for host, extra in ((NOT_HERE, ["--insecure"]), ("::ffff:127.0.0.1", ["--ws-port", "0"])):
        proc = subprocess.run(
            [sys.executable, "-m", "pixelkiln.cli", "serve", "--model", "tiny-random"]
            + ["--host", host, "--port", "0", "--ws-port", "-1", *extra],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 2, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]  # gRPC core may log its own line first
        assert last.startswith(f"pixelkiln serve: error: --host {host}: cannot listen on "), last
        assert "in use" not in last and "choose free ports" not in last
        assert "Traceback" not in proc.stderr
