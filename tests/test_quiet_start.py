"""`pixelkiln serve` prints PixelKiln's own lines only; `--verbose` adds the libraries' output."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from pixelkiln import Client

from .conftest import ROOT, free_port, home_dir

# A PixelKiln line: one it prints, or a record of its own loggers (logsetup.FORMAT).
OWN_LINE = re.compile(
    r"^(pixelkiln: |\d{4}-\d\d-\d\d [\d:,]+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"pixelkiln(_server|\.access)\b)"
)


def serve_and_stop(*extra: str) -> tuple[str, str]:
    """Start the daemon on tiny-random, wait until ready, generate once, stop; its output."""
    port = free_port()
    env = {**os.environ, "PIXELKILN_HOME": str(home_dir()), "HF_HUB_OFFLINE": "1"}
    for name in ("TQDM_DISABLE", "TORCH_LOGS", "PYTHONWARNINGS", "TRANSFORMERS_VERBOSITY"):
        env.pop(name, None)  # as on a user's machine
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixelkiln.cli", "serve", "--model", "tiny-random"]
        + ["--port", str(port), "--ws-port", "0", *extra],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Client(f"127.0.0.1:{port}", timeout=120) as client:
            client.wait_ready(timeout=120)
            client.generate("moss", steps=2, seed=1)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out, err


def test_serve_prints_only_its_own_lines() -> None:
    out, err = serve_and_stop()
    lines = (out + err).splitlines()
    foreign = [line for line in lines if not OWN_LINE.match(line)]
    assert foreign == []
    assert "Warning" not in out + err and "it/s" not in out + err and "\r" not in out + err
    first, ready = out.splitlines()[:2]
    assert re.fullmatch(
        r"pixelkiln: listening on 127\.0\.0\.1:\d+ \(gRPC\), WebSocket ws://127\.0\.0\.1:\d+/v1; "
        r"warming up tiny-random",
        first,
    )
    assert re.fullmatch(r"pixelkiln: ready \(tiny-random\) in \d+\.\d s, health SERVING", ready)
    assert re.search(r"loading tiny-random from .+ on cpu", err)  # what model, where


def test_verbose_shows_the_libraries_output() -> None:
    out, err = serve_and_stop("--verbose")
    foreign = [line for line in (out + err).splitlines() if not OWN_LINE.match(line)]
    # What torch, diffusers and transformers print while loading (warnings, bars, notices).
    assert foreign, err


CHILD = """
import logging, warnings
from pixelkiln_server.logsetup import configure_from_env
configure_from_env()
logging.getLogger("torchao").warning("Failed to load a kernel library")
logging.getLogger("pixelkiln_server.engine.runner").info("runner for cpu started")
warnings.warn("`torch_dtype` is deprecated", FutureWarning)
logging.getLogger("diffusers").error("a library error still shows")
"""


def test_a_child_process_follows_the_parents_choice() -> None:
    """A runner process calls configure_from_env(); quiet or verbose comes with the env."""
    for verbose in ("0", "1"):
        env = {**os.environ, "PIXELKILN_VERBOSE": verbose, "PIXELKILN_LOG_LEVEL": "INFO"}
        env.pop("PYTHONWARNINGS", None)
        proc = subprocess.run(
            [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.splitlines()
        assert any(
            line.endswith("pixelkiln_server.engine.runner: runner for cpu started")
            for line in lines
        )
        assert any(line.endswith("diffusers: a library error still shows") for line in lines)
        library = [line for line in lines if "Failed to load" in line or "deprecated" in line]
        assert len(library) == (0 if verbose == "0" else 2), lines
