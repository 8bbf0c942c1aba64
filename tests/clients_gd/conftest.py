"""Fixtures of the GDScript client tests (the interpreter's and the real Godot's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..conftest import free_port, start_served


@pytest.fixture(scope="module")
def ws_daemon() -> Iterator[tuple[str, int]]:
    """(gRPC address, WebSocket port) of a `pixelkiln serve` child process."""
    ws_port = free_port()
    # The real Godot runs in a browser, whose page (on a loopback port chosen later) sends an
    # Origin: allowed here, as a studio would allow its web build's origin.
    proc, address = start_served(
        "--ws-port", str(ws_port), "--ws-allow-origin", "http://127.0.0.1:*"
    )
    yield address, ws_port
    proc.terminate()
    proc.wait(timeout=30)
