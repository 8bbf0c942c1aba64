"""The `pixelkiln` command against a daemon in a child process, and graceful shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelkiln import Client, PixelKilnError, Progress

from .conftest import ROOT, png_bytes, start_served


def pixelkiln(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixelkiln.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_generate_writes_a_valid_png_with_recipe(served: str, tmp_path: Path) -> None:
    out = tmp_path / "stone.png"
    proc = pixelkiln(
        "generate",
        "mossy cobblestone",
        "-o",
        str(out),
        "--seed",
        "7",
        "--steps",
        "2",
        "--address",
        served,
    )
    assert proc.returncode == 0, proc.stderr
    assert "step 2/2" in proc.stderr  # the progress bar
    assert f"{out} (64x64, seed 7)" in proc.stdout
    with Image.open(out) as img:
        img.load()
        assert img.format == "PNG" and img.size == (64, 64)
        recipe = json.loads(img.text["pixelkiln"])
    assert recipe["request"]["seed"] == 7 and recipe["request"]["prompt"] == "mossy cobblestone"
    assert not list(tmp_path.glob(".*.part"))  # written through a temporary file

    # Replay from the PNG gives the same bytes.
    again = tmp_path / "again.png"
    proc = pixelkiln("replay", str(out), "-o", str(again), "--address", served)
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(out)))


def test_generate_img2img_and_count(served: str, tmp_path: Path) -> None:
    init = tmp_path / "sketch.png"
    init.write_bytes(png_bytes(np.full((64, 64, 3), 90, np.uint8)))
    out = tmp_path / "edit.png"
    proc = pixelkiln(
        "generate",
        "bricks",
        "--init",
        str(init),
        "--strength",
        "0.5",
        "--steps",
        "2",
        "--count",
        "2",
        "--seed",
        "1",
        "-o",
        str(out),
        "--address",
        served,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "edit_0.png").is_file() and (tmp_path / "edit_1.png").is_file()


def test_bad_input_exits_nonzero_with_the_message(served: str, tmp_path: Path) -> None:
    proc = pixelkiln(
        "generate", "x", "--size", "100", "-o", str(tmp_path / "x.png"), "--address", served
    )
    assert proc.returncode == 1
    assert "INVALID_ARGUMENT" in proc.stderr and "multiple of 8" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_models_and_status_commands(served: str) -> None:
    models = pixelkiln("models", "--address", served)
    assert models.returncode == 0
    assert "tiny-random" in models.stdout and "sd-turbo" in models.stdout
    status = pixelkiln("status", "--address", served)
    assert status.returncode == 0
    assert "ready         yes" in status.stdout and "cpu" in status.stdout


def test_unreachable_daemon_is_a_clear_error() -> None:
    proc = pixelkiln("status", "--address", "127.0.0.1:1", "--timeout", "2")
    assert proc.returncode == 1
    assert "UNAVAILABLE" in proc.stderr or "DEADLINE_EXCEEDED" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_finishes_in_flight_work(sig: signal.Signals) -> None:
    proc, address = start_served("--grace", "30")
    outcome: dict[str, object] = {}
    started = threading.Event()

    def run() -> None:
        with Client(address, timeout=60) as client:
            try:
                outcome["result"] = client.generate(
                    "finish me",
                    seed=1,
                    steps=12,
                    size=128,
                    on_event=lambda e: started.set() if isinstance(e, Progress) else None,
                )
            except PixelKilnError as err:
                outcome["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(60)
    proc.send_signal(sig)
    thread.join(60)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "result" in outcome, outcome  # in-flight work finished within the grace period
    assert b"shutting down" in output


def test_shutdown_grace_cancels_what_does_not_finish() -> None:
    proc, address = start_served("--grace", "0.2")
    errors: list[PixelKilnError] = []
    started = threading.Event()

    def run() -> None:
        with Client(address, timeout=60) as client:
            try:
                client.generate(
                    "too long",
                    seed=1,
                    steps=50,
                    size=512,
                    on_event=lambda e: started.set() if isinstance(e, Progress) else None,
                )
            except PixelKilnError as err:
                errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(60)
    proc.send_signal(signal.SIGTERM)
    thread.join(30)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert errors and errors[0].code.name in ("CANCELLED", "UNAVAILABLE")
