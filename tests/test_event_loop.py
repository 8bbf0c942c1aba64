"""`pixelkiln serve --event-loop`: uvloop where installed (the default), asyncio's own loop when
asked; both serve. (Every other test that starts `pixelkiln serve` runs it on the default.)"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from pixelkiln import Client
from pixelkiln_server import eventloop

from .conftest import start_served


def test_asyncio_when_asked_and_uvloop_by_default_where_installed() -> None:
    assert eventloop.choose("asyncio") == ("asyncio", asyncio.run)
    name, _ = eventloop.choose("auto")
    assert name == ("asyncio" if sys.platform == "win32" else "uvloop")


def test_without_uvloop_auto_falls_back_and_naming_it_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # "import uvloop" raises ImportError
    assert eventloop.choose("auto") == ("asyncio", asyncio.run)
    with pytest.raises(SystemExit, match="--event-loop uvloop needs uvloop"):
        eventloop.choose("uvloop")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/maps")
@pytest.mark.parametrize(("choice", "uvloop_loaded"), [("auto", True), ("asyncio", False)])
def test_serve_runs_and_stops_on_the_loop_asked_for(choice: str, uvloop_loaded: bool) -> None:
    proc, address = start_served("--event-loop", choice, "--runtime", "torch")
    try:
        with Client(address, timeout=60) as client:
            result = client.generate("mossy stone", steps=1, seed=1, size=64)
        assert result.image.data.startswith(b"\x89PNG")
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert ("uvloop" in maps) == uvloop_loaded
        proc.send_signal(signal.SIGTERM)  # the loop's signal handler: a graceful stop
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
