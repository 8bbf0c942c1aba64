"""Fixtures of the GDScript client tests (the interpreter's and the real Godot's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..conftest import free_port, start_served


@pytest.fixture(scope="module")
def ws_daemon() -> Iterator[tuple[str, int]]:
    """(gRPC address, WebSocket port) of a `pixelkiln serve` child process."""
    ws_port = free_port()
    proc, address = start_served("--ws-port", str(ws_port))
    yield address, ws_port
    proc.terminate()
    proc.wait(timeout=30)
