"""Shared fixtures: a real daemon on an ephemeral loopback port, serving tiny-random.

In-process daemons (``daemon``) run on the session's event loop and are driven with
AsyncClient. The sync client and the CLI talk to a daemon in a child process (``served``).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

# pytest-xdist (pyproject's addopts: one worker per core, at most 4): a worker and the daemons
# it starts use one thread each for torch, ONNX Runtime's own pools aside, so the workers do
# not fight over the cores (two threads each on two cores ran several times slower). Set
# before anything imports torch; a developer's own setting wins.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import pytest
import pytest_asyncio
from PIL import Image

from pixelkiln import AsyncClient, Client, PixelKilnError
from pixelkiln_server.app import Daemon
from pixelkiln_server.config import ServerConfig, default_home

ROOT = Path(__file__).resolve().parent.parent


def home_dir() -> Path:
    """Built models are cached across runs (tiny-random builds in a few seconds)."""
    return default_home()


def make_config(**overrides: object) -> ServerConfig:
    values: dict[str, object] = {
        "port": 0,
        "ws_port": 0,
        "home": home_dir(),
        "shutdown_grace_s": 0.5,
        "default_model": "tiny-random",  # fast; the shipped model has its own tests
        # In-process daemons run their model runner on a thread, so fault-injection tests can
        # reach the runner's models (``runner_models``); the subprocess runner has its own
        # end-to-end tests (test_runners_e2e.py) and is what `pixelkiln serve` uses.
        "runner": "thread",
        # Tests load folders and files they saved under the temporary directory.
        "model_roots": (Path(tempfile.gettempdir()),),
    }
    values.update(overrides)
    return ServerConfig(**values)  # type: ignore[arg-type]


@pytest_asyncio.fixture(scope="session")
async def daemon() -> AsyncIterator[Daemon]:
    d = Daemon(make_config())
    await d.start()
    await d.wait_ready()
    yield d
    await d.stop(0)


@pytest_asyncio.fixture(scope="session")
async def aclient(daemon: Daemon) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(daemon.address, timeout=60)
    yield client
    await client.close()


@contextlib.asynccontextmanager
async def running_daemon(
    *, register: tuple[Any, ...] = (), **overrides: object
) -> AsyncIterator[Daemon]:
    """A daemon from ``make_config(**overrides)``, warmed up; ``register``: model specs made
    in code (e.g. the fake backend's) to register before it starts."""
    d = Daemon(make_config(**overrides))
    for spec in register:
        d.engine.registry.register(spec)
    await d.start()
    try:
        await d.wait_ready()
        yield d
    finally:
        await d.stop(0)


def runner_host(daemon: Daemon, index: int = 0) -> Any:
    """The model side of an in-thread runner (tests only: the process runner has no such
    object in this process)."""
    return daemon.engine.runners[index].transport.host  # type: ignore[attr-defined]


def runner_models(daemon: Daemon) -> list[Any]:
    """The models loaded in the daemon's (in-thread) runners."""
    return [m for r in daemon.engine.runners for m in r.transport.host.registry.loaded()]  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_served(
    *extra: str, env: dict[str, str] | None = None, ready_s: float = 120.0
) -> tuple[subprocess.Popen[bytes], str]:
    """`pixelkiln serve EXTRA` in a child process, once it says SERVING. ``env`` is added to
    this environment. A daemon that exits or never turns SERVING fails the test with its
    output (not only with pytest-timeout's stacks of this process)."""
    port = free_port()
    env = {**os.environ, "PIXELKILN_HOME": str(home_dir()), "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pixelkiln.cli",
            "serve",
            "--port",
            str(port),
            "--ws-port",
            "-1",
            *(() if "--model" in extra else ("--model", "tiny-random")),
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + ready_s
    with Client(address, timeout=5) as client:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                client.wait_ready(timeout=1.0)
                return proc, address
            except PixelKilnError as err:  # wait_ready's own timeout: look at the process
                if err.code != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise
    proc.kill()
    out = proc.communicate()[0].decode(errors="replace")
    state = f"exited with {proc.returncode}" if proc.returncode else f"not ready in {ready_s} s"
    pytest.fail(f"pixelkiln serve {' '.join(extra)}: {state}\n{out[-4000:]}")


@pytest.fixture(scope="session")
def served() -> Iterator[str]:
    """Address of a `pixelkiln serve` child process on tiny-random."""
    proc, address = start_served()
    yield address
    proc.terminate()
    proc.wait(timeout=30)


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def wait_until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
