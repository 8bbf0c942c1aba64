"""Real-model failures say what to do: each of huggingface_hub's real exceptions, raised from
the download function diffusers calls (no network here), reaches the client over gRPC (and
one over WebSocket) as its status code with a message naming the fix, never INTERNAL, a
traceback or a path on the daemon's machine. A model too large for the GPU is refused before
any download when the catalogue's size exceeds the free memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import diffusers.configuration_utils
import grpc
import pytest
import pytest_asyncio
import torch
from huggingface_hub import errors as hf
from huggingface_hub.utils import httpx  # httpx2 in huggingface_hub 2.x
from websockets.asyncio.client import connect

from pixelkiln.v1 import models_pb2 as models_pb
from pixelkiln.v1 import models_pb2_grpc as models_grpc
from pixelkiln_server.app import Daemon
from pixelkiln_server.backends import load_errors
from pixelkiln_server.catalogue import PRESETS
from pixelkiln_server.errors import ResourceExhausted

from .conftest import running_daemon
from .test_websocket import MAX, send, until

HUB = "https://huggingface.co/api/models/stabilityai/sd-turbo"


def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", HUB))


def _offline(**_: Any) -> BaseException:
    return hf.LocalEntryNotFoundError(
        "An error happened while trying to locate the file on the Hub and we cannot find the "
        "requested files in the local cache."
    )


# What the online download raises in each case, built as huggingface_hub 2.x raises it.
FAILURES: dict[str, Callable[[], BaseException]] = {
    "no-network": _offline,
    "connect-error": lambda: httpx.ConnectError("[Errno -3] Temporary failure in resolution"),
    "offline-mode": lambda: hf.OfflineModeIsEnabled("Cannot reach the Hub: HF_HUB_OFFLINE=1"),
    "gated": lambda: hf.GatedRepoError("401 Client Error.", response=_response(401)),
    "no-such-repo": lambda: hf.RepositoryNotFoundError(
        "404 Client Error.", response=_response(404)
    ),
    "missing-file": lambda: hf.RemoteEntryNotFoundError("404 Entry.", response=_response(404)),
    "hub-down": lambda: hf.HfHubHTTPError("503 Server Error", response=_response(503)),
    "out-of-memory": lambda: torch.cuda.OutOfMemoryError("CUDA out of memory."),
    "out-of-memory-mps": lambda: RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"),
}

EXPECTED: dict[str, tuple[grpc.StatusCode, tuple[str, ...]]] = {
    "no-network": (grpc.StatusCode.UNAVAILABLE, ("cannot be reached", "hf download", "HF_HOME")),
    "connect-error": (grpc.StatusCode.UNAVAILABLE, ("cannot be reached", "stabilityai/sd-turbo")),
    "offline-mode": (grpc.StatusCode.NOT_FOUND, ("HF_HUB_OFFLINE", "hf download")),
    "gated": (
        grpc.StatusCode.PERMISSION_DENIED,
        ("HF_TOKEN", "hf auth login", "huggingface-cli login", "huggingface.co/stabilityai"),
    ),
    "no-such-repo": (grpc.StatusCode.NOT_FOUND, ("spelling", "HF_TOKEN", "HF_ENDPOINT")),
    "missing-file": (grpc.StatusCode.NOT_FOUND, ("missing", "model_index.json")),
    "hub-down": (grpc.StatusCode.UNAVAILABLE, ("server error", "try again")),
    "out-of-memory": (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        ("out of GPU memory", "--offload model", "--quantize", "pixelkiln-textures"),
    ),
    "out-of-memory-mps": (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        ("out of GPU memory", "--offload model", "--quantize", "pixelkiln-textures"),
    ),
}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """The download function diffusers calls first (for model_index.json), replaced: nothing
    is cached (LocalEntryNotFoundError, as huggingface_hub raises it with local_files_only),
    and the online call raises ``state["error"]``."""
    state: dict[str, Any] = {"error": None, "calls": 0}

    def fake_download(repo_id: str, *args: Any, local_files_only: bool = False, **kw: Any) -> str:
        state["calls"] += 1
        if local_files_only:
            raise _offline()
        raise state["error"]

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(diffusers.configuration_utils, "hf_hub_download", fake_download)
    return state


@pytest_asyncio.fixture(scope="module")
async def daemon() -> AsyncIterator[Daemon]:
    # Loopback without tokens is admin; --allow-downloads lets it name a preset not cached.
    async with running_daemon(allow_downloads=True) as d:
        yield d


async def _load(d: Daemon, name: str) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(d.address) as channel:
        stub = models_grpc.ModelsStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Load(models_pb.LoadModelRequest(name=name), timeout=120)
    return info.value


def _clean(message: str, home: Path) -> None:
    assert "Traceback" not in message and 'File "' not in message
    assert str(home) not in message and "/site-packages/" not in message
    assert "INTERNAL" not in message


@pytest.mark.parametrize("case", list(FAILURES))
async def test_hub_failures_reach_grpc_as_their_codes(
    daemon: Daemon, hub: dict[str, Any], tmp_path: Path, case: str
) -> None:
    hub["error"] = FAILURES[case]()
    error = await _load(daemon, "sd-turbo")
    code, words = EXPECTED[case]
    message = error.details() or ""
    assert error.code() is code, message
    for word in words:
        assert word in message, (word, message)
    assert "sd-turbo" in message
    _clean(message, tmp_path)
    assert hub["calls"] >= 2  # the local cache first, then the hub


async def test_no_network_over_websocket(
    daemon: Daemon, hub: dict[str, Any], tmp_path: Path
) -> None:
    hub["error"] = _offline()
    grpc_message = (await _load(daemon, "sd-turbo")).details()
    async with connect(daemon.ws_url, max_size=MAX) as ws:
        await send(ws, "r", load_model=models_pb.LoadModelRequest(name="sd-turbo"))
        envs = await until(ws, "r", "model_info")
    error = envs[-1].error
    assert error.code_name == "UNAVAILABLE" and error.message == grpc_message
    _clean(error.message, tmp_path)


async def test_the_daemon_serves_on_after_failed_loads(daemon: Daemon, hub: dict[str, Any]) -> None:
    hub["error"] = _offline()
    await _load(daemon, "sd-turbo")
    async with grpc.aio.insecure_channel(daemon.address) as channel:
        status = await models_grpc.ModelsStub(channel).Status(models_pb.StatusRequest())
    assert status.ready and "sd-turbo" not in status.loaded_models
    assert all(r.state == "ready" for r in status.runners)


def test_a_model_larger_than_the_free_memory_is_refused_before_loading() -> None:
    spec = PRESETS["flux.1-schnell"]  # 33.7 GB at bf16
    with pytest.raises(ResourceExhausted) as info:
        load_errors.check_fits(spec, "bf16", 24 * load_errors.GIB, offload="", quantize="")
    message = info.value.message
    for word in ("33.7 GB", "24.0 GB free", "--offload model", "--quantize", "z-image-turbo"):
        assert word in message, (word, message)
    assert "flux.1-schnell (" not in message  # never itself as the smaller preset
    # fp32 doubles the need and names --dtype; sd-turbo fits in 6 GB at fp16 but not fp32.
    load_errors.check_fits(PRESETS["sd-turbo"], "fp16", 6 * load_errors.GIB, "", "")
    with pytest.raises(ResourceExhausted, match="--dtype fp16"):
        load_errors.check_fits(PRESETS["sd-turbo"], "fp32", 4 * load_errors.GIB, "", "")


def test_offload_quantize_and_unknown_sizes_skip_the_check() -> None:
    spec = PRESETS["flux.1-schnell"]
    for offload, quantize in (("model", ""), ("", "nf4")):
        load_errors.check_fits(spec, "bf16", 1 * load_errors.GIB, offload, quantize)
    load_errors.check_fits(spec, "bf16", None, "", "")  # no GPU: nothing to compare
    load_errors.check_fits(PRESETS["tiny-random"], "fp32", 0, "", "")  # size unknown
