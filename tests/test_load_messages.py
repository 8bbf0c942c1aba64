"""A local diffusers folder that cannot be loaded says which folder and what is wrong with it
(gone, no or broken model_index.json, a component's weights missing or unreadable), as
NOT_FOUND like before, never the hub's advice (``hf download``, ``--offline``) that cannot help
a folder. Each case breaks a saved tiny-random folder and loads it through the backend; some
through a daemon (thread runner) over gRPC and WebSocket."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
import torch
from websockets.asyncio.client import connect

from pixelkiln import AsyncClient, NotFoundError
from pixelkiln.v1 import models_pb2 as models_pb
from pixelkiln_server.app import Daemon
from pixelkiln_server.backends.base import LoadOptions
from pixelkiln_server.backends.diffusers_load import load_pipeline
from pixelkiln_server.backends.folder_faults import folder_problem, is_local_path
from pixelkiln_server.backends.tiny_random import build_tiny_sd_pipeline
from pixelkiln_server.catalogue import spec_for_source
from pixelkiln_server.errors import NotFound

from .conftest import running_daemon
from .test_websocket import MAX, send, until

HUB_ADVICE = ("hf download", "--offline", "Hugging Face cache", "not available locally")
UNET = Path("unet/diffusion_pytorch_model.safetensors")
VAE = Path("vae/diffusion_pytorch_model.safetensors")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("saved") / "tiny"
    build_tiny_sd_pipeline(seed=0).save_pretrained(folder)
    return folder


def _copy(saved: Path, target: Path) -> Path:
    shutil.copytree(saved, target)
    return target


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.mkdir()


# How each case breaks the folder, and what the message must name (relative to the folder).
BREAKS: dict[str, tuple[Callable[[Path], object], tuple[str, ...]]] = {
    "removed": (shutil.rmtree, ("no longer exists",)),
    "empty": (_empty, ("has no model_index.json",)),
    "index-not-json": (
        lambda f: (f / "model_index.json").write_text("{not json"),
        ("model_index.json is not valid JSON (",),
    ),
    "unet-weights-deleted": (
        lambda f: (f / UNET).unlink(),
        ("component 'unet' has no weights file (looked for ", "/" + str(UNET)),
    ),
    "text-encoder-weights-deleted": (
        lambda f: (f / "text_encoder/model.safetensors").unlink(),
        ("component 'text_encoder' has no weights file", "/text_encoder/model.safetensors"),
    ),
    "vae-truncated": (
        lambda f: _truncate(f / VAE),
        ("/" + str(VAE) + " cannot be read (truncated",),
    ),
    "vae-garbage": (
        lambda f: (f / VAE).write_bytes(b"not a safetensors file at all" * 4),
        ("/" + str(VAE) + " cannot be read (",),
    ),
}


def _check(message: str, folder: Path, words: tuple[str, ...]) -> None:
    assert f"model folder {folder}" in message, message
    for word in words:
        assert word in message, (word, message)
    for advice in HUB_ADVICE:
        assert advice not in message, (advice, message)
    assert "Traceback" not in message


@pytest.mark.parametrize("case", list(BREAKS))
def test_a_broken_folder_names_itself_and_its_fault(
    saved: Path, tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as the probe ran; a folder never needs the hub
    folder = _copy(saved, tmp_path / "model")
    spec = spec_for_source("registered", str(folder))  # registered while it was whole
    brake, words = BREAKS[case]
    brake(folder)
    with pytest.raises(NotFound) as info:
        load_pipeline(spec, torch.float32, LoadOptions(offline=True))
    message = info.value.message
    _check(message, folder, words)
    assert message.startswith("model 'registered': ")


def test_the_whole_folder_has_no_fault(saved: Path) -> None:
    assert folder_problem(saved) == ""


def test_paths_and_hub_ids_are_told_apart() -> None:
    for path in ("/tmp/x/models/vanish", "./m", "~/m", "C:\\models\\m", "a/b/c"):
        assert is_local_path(path), path
    for hub in ("stabilityai/sd-turbo", "gpt2"):
        assert not is_local_path(hub), hub


@pytest_asyncio.fixture(scope="module")
async def registered(
    saved: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Daemon, Path]]:
    """A daemon (offline, thread runner) with a folder registered at start as 'vanish'."""
    folder = _copy(saved, tmp_path_factory.mktemp("models") / "vanish")
    async with running_daemon(offline=True, extra_models={"vanish": str(folder)}) as d:
        yield d, folder


async def test_a_registered_folder_removed_since_over_grpc_and_websocket(
    registered: tuple[Daemon, Path],
) -> None:
    daemon, folder = registered
    shutil.rmtree(folder)
    async with AsyncClient(daemon.address, timeout=60) as client:
        with pytest.raises(NotFoundError) as info:
            await client.load("vanish")
    assert info.value.code is grpc.StatusCode.NOT_FOUND
    message = info.value.message
    _check(message, folder, ("no longer exists",))
    async with connect(daemon.ws_url, max_size=MAX) as ws:
        await send(ws, "r", load_model=models_pb.LoadModelRequest(name="vanish"))
        envs = await until(ws, "r", "model_info")
    error = envs[-1].error
    assert error.code_name == "NOT_FOUND" and error.message == message


@pytest.mark.parametrize("case", ["unet-weights-deleted", "vae-truncated", "index-not-json"])
async def test_a_broken_folder_under_a_model_root_over_grpc(
    registered: tuple[Daemon, Path], saved: Path, tmp_path: Path, case: str
) -> None:
    daemon, _ = registered
    folder = _copy(saved, tmp_path / "broken")  # under the temporary directory: a model root
    brake, words = BREAKS[case]
    brake(folder)
    async with AsyncClient(daemon.address, timeout=60) as client:
        with pytest.raises(NotFoundError) as info:
            await client.load(str(folder))
    assert info.value.code is grpc.StatusCode.NOT_FOUND
    _check(info.value.message, folder, words)
