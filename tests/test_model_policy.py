"""The model-loading policy over gRPC and WebSocket: presets, models given at start and paths
under --model-root load; anything else is PERMISSION_DENIED with a message that does not tell
whether the path exists; one model per resolved path; downloads only for admins with
--allow-downloads; pickle-based weights refused unless --allow-pickle."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from pixelkiln.v1 import envelope_pb2 as env_pb
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import generator_pb2_grpc as gen_grpc
from pixelkiln.v1 import models_pb2 as models_pb
from pixelkiln.v1 import models_pb2_grpc as models_grpc
from pixelkiln_server.app import Daemon
from pixelkiln_server.auth import Scope
from pixelkiln_server.backends.tiny_random import ensure_tiny_random
from pixelkiln_server.cli import config_from_args
from pixelkiln_server.cli import main as serve_main
from pixelkiln_server.errors import NotFound, PermissionDenied
from pixelkiln_server.services.disclosure import scrub_paths
from pixelkiln_server.services.model_policy import ModelPolicy, pickle_weights

from .conftest import home_dir, make_config
from .test_websocket import MAX, send, until

USER = "pk_user-generate-token-0123456789abc"
ADMIN = "pk_admin-admin-token-0123456789abcd"
OPTIONS = [("grpc.max_receive_message_length", MAX), ("grpc.max_send_message_length", MAX)]


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model root holding a tiny model and pickle files, and models outside it (the daemon
    below has only ``root`` as its model root)."""
    base = tmp_path_factory.mktemp("policy")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    tiny = ensure_tiny_random(home_dir() / "models")
    shutil.copytree(tiny, root / "tiny")
    shutil.copytree(tiny, outside / "registered-model")
    os.symlink(tiny, outside / "secret-model")
    os.symlink(outside / "secret-model", root / "escape")  # a link leading out of the root
    (root / "old.ckpt").write_bytes(b"not really a pickle")
    binonly = root / "bin-only" / "unet"
    binonly.mkdir(parents=True)
    (binonly / "diffusion_pytorch_model.bin").write_bytes(b"x")
    (root / "bin-only" / "model_index.json").write_text("{}")
    tokens = base / "tokens"
    tokens.write_text(f"user generate {USER}\nadmin admin {ADMIN}\n")
    tokens.chmod(0o600)
    return {"root": root, "outside": outside, "tokens": tokens}


@pytest_asyncio.fixture(scope="module")
async def daemon(places: dict[str, Path]) -> AsyncIterator[Daemon]:
    d = Daemon(
        make_config(
            model_roots=(places["root"],),
            token_file=places["tokens"],
            offline=True,
            extra_models={"registered": str(places["outside"] / "registered-model")},
        )
    )
    await d.start()
    await d.wait_ready()
    yield d
    await d.stop(0)


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def grpc_load(d: Daemon, name: str, token: str = ADMIN) -> models_pb.ModelInfo:
    async with grpc.aio.insecure_channel(d.address, options=OPTIONS) as channel:
        stub = models_grpc.ModelsStub(channel)
        return await stub.Load(models_pb.LoadModelRequest(name=name), metadata=auth(token))


async def grpc_generate(d: Daemon, model: str, token: str = USER) -> list[gen_pb.GenerateEvent]:
    request = gen_pb.GenerateRequest(prompt="x", model=model, steps=1, width=64, height=64)
    async with grpc.aio.insecure_channel(d.address, options=OPTIONS) as channel:
        stub = gen_grpc.GeneratorStub(channel)
        return [e async for e in stub.Generate(request, metadata=auth(token))]


async def grpc_denied(call: object) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED, info.value.details()
    return str(info.value.details())


async def ws_error(d: Daemon, token: str, **body: object) -> env_pb.Error:
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(d.ws_url, max_size=MAX, additional_headers=headers) as ws:
        await send(ws, "r", **body)
        envs = await until(ws, "r", "model_info", "result", "live_frame")
    assert envs[-1].WhichOneof("body") == "error", envs[-1]
    return envs[-1].error


def without(name: str, message: str) -> str:
    return message.replace(name, "NAME")


async def test_paths_outside_the_roots_are_refused_alike_whether_they_exist_or_not(
    daemon: Daemon, places: dict[str, Path]
) -> None:
    existing = str(places["outside"] / "secret-model")
    missing = str(places["outside"] / "no-such-model")
    escape = str(places["root"] / "escape")  # inside the root, a link to the outside
    dotdot = f"{places['root']}/../outside/secret-model"
    messages = set()
    for name in (existing, missing, escape, dotdot, "/etc", "../../etc/passwd"):
        load = await grpc_denied(grpc_load(daemon, name))
        generate = await grpc_denied(grpc_generate(daemon, name))
        ws_load = await ws_error(daemon, ADMIN, load_model=models_pb.LoadModelRequest(name=name))
        request = gen_pb.GenerateRequest(prompt="x", model=name, steps=1, width=64, height=64)
        ws_generate = await ws_error(daemon, USER, generate=request)
        assert ws_load.code_name == ws_generate.code_name == "PERMISSION_DENIED"
        assert load == ws_load.message
        # A generate-scope caller sees the paths cut to their last part (services/disclosure).
        assert generate == ws_generate.message == scrub_paths(load)
        assert "--model-root" in load
        messages.add(without(name, load))
    assert len(messages) == 1  # one text whatever the path: existence is never revealed
    assert daemon.engine.status().loaded_models == ["tiny-random"]


async def test_live_settings_obey_the_policy_on_both(
    daemon: Daemon, places: dict[str, Path]
) -> None:
    name = str(places["outside"] / "secret-model")
    settings = gen_pb.LiveSettings(model=name, prompt="x", steps=1, width=64, height=64)
    live_input = gen_pb.LiveInput(seq=1, settings=settings)

    async def inputs() -> AsyncIterator[gen_pb.LiveInput]:
        yield live_input

    async with grpc.aio.insecure_channel(daemon.address, options=OPTIONS) as channel:
        stub = gen_grpc.GeneratorStub(channel)
        call = stub.Live(inputs(), metadata=auth(USER))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _frame in call:
                pass
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    error = await ws_error(daemon, USER, live_input=live_input)
    assert error.code_name == "PERMISSION_DENIED"
    assert error.message == info.value.details()


async def test_one_model_per_resolved_path_on_both(daemon: Daemon, places: dict[str, Path]) -> None:
    root = places["root"]
    plain = str((root / "tiny").resolve())
    spellings = [str(root / "tiny"), f"{root}/./tiny", f"{root}//tiny", f"{root}/x/../tiny"]
    info = await grpc_load(daemon, spellings[1])
    assert info.name == plain and info.loaded
    events = await grpc_generate(daemon, spellings[2])
    assert events[0].accepted.model == plain
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with connect(daemon.ws_url, max_size=MAX, additional_headers=headers) as ws:
        await send(ws, "l", load_model=models_pb.LoadModelRequest(name=spellings[3]))
        (env,) = await until(ws, "l", "model_info")
        assert env.model_info.name == plain
        request = gen_pb.GenerateRequest(prompt="x", model=spellings[0], steps=1, width=64)
        await send(ws, "g", generate=request)
        envs = await until(ws, "g", "result")
        assert envs[0].event.accepted.model == plain
    loaded = daemon.engine.status().loaded_models
    assert loaded.count(plain) == 1 and len(loaded) == 2  # tiny-random and this one
    assert (await grpc_unload(daemon, spellings[1])).unloaded
    # The registered model by its own path is the registered model, not a second copy.
    info = await grpc_load(daemon, f"{places['outside']}/./registered-model")
    assert info.name == "registered"
    assert (await grpc_unload(daemon, "registered")).unloaded


async def grpc_unload(d: Daemon, name: str) -> models_pb.UnloadModelResponse:
    async with grpc.aio.insecure_channel(d.address, options=OPTIONS) as channel:
        stub = models_grpc.ModelsStub(channel)
        return await stub.Unload(models_pb.UnloadModelRequest(name=name), metadata=auth(ADMIN))


async def test_pickle_weights_are_refused_with_how_to_convert(
    daemon: Daemon, places: dict[str, Path]
) -> None:
    for name in (str(places["root"] / "old.ckpt"), str(places["root"] / "bin-only")):
        message = await grpc_denied(grpc_load(daemon, name))
        ws = await ws_error(daemon, ADMIN, load_model=models_pb.LoadModelRequest(name=name))
        assert ws.code_name == "PERMISSION_DENIED" and ws.message == message
        assert "pickle" in message and "safetensors" in message and "--allow-pickle" in message


async def test_hub_downloads_need_an_admin_and_allow_downloads(daemon: Daemon) -> None:
    hub_id = "nobody-here/not-a-model"
    for token in (USER, ADMIN):  # the daemon runs without --allow-downloads
        message = await grpc_denied(grpc_generate(daemon, hub_id, token))
        assert "--allow-downloads" in message
    assert "--allow-downloads" in await grpc_denied(grpc_load(daemon, hub_id))
    # A catalogue preset that is not downloaded would download too.
    message = await grpc_denied(grpc_generate(daemon, "sdxl-turbo"))
    assert "not downloaded" in message and "--allow-downloads" in message
    error = await ws_error(daemon, ADMIN, load_model=models_pb.LoadModelRequest(name="sdxl-turbo"))
    assert error.code_name == "PERMISSION_DENIED" and error.message == message


async def test_with_allow_downloads_an_admin_may_name_a_hub_id(
    places: dict[str, Path],
) -> None:
    config = make_config(token_file=places["tokens"], allow_downloads=True, offline=True)
    d = Daemon(config)
    await d.start()
    try:
        await d.wait_ready()
        await grpc_denied(grpc_generate(d, "nobody-here/not-a-model", USER))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await grpc_load(d, "nobody-here/not-a-model", ADMIN)
        # Past the policy: offline, the hub model is simply not there.
        assert info.value.code() is grpc.StatusCode.NOT_FOUND
    finally:
        await d.stop(0)


def test_the_policy_rules(places: dict[str, Path]) -> None:
    root = places["root"]
    policy = ModelPolicy([root], {"registered": "some/hub-model"})
    assert policy.admit("tiny-random", Scope.GENERATE) == "tiny-random"
    assert policy.admit("registered", Scope.GENERATE) == "registered"
    assert policy.admit(f"{root}//tiny/.", Scope.GENERATE) == str((root / "tiny").resolve())
    with pytest.raises(PermissionDenied):
        policy.admit(str(root.parent), Scope.ADMIN)  # the root's parent
    with pytest.raises(PermissionDenied):
        policy.admit(str(root / "old.ckpt"), Scope.ADMIN)
    lenient = ModelPolicy([root], allow_pickle=True, allow_downloads=True)
    assert lenient.admit(str(root / "old.ckpt"), Scope.GENERATE).endswith("old.ckpt")
    assert lenient.admit(str(root / "bin-only"), Scope.GENERATE).endswith("bin-only")
    assert lenient.admit("org/model", Scope.ADMIN) == "org/model"
    with pytest.raises(PermissionDenied):
        lenient.admit("org/model", Scope.GENERATE)
    assert policy.canonical(f"{root}/./tiny") == str((root / "tiny").resolve())
    # owner/name that is no local path is a hub id, whatever the daemon's working directory
    # (CI clones under the temp dir, which the tests' daemons have as a model root).
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with pytest.raises(PermissionDenied):
            policy.admit("nobody-here/not-a-model", Scope.GENERATE)
    finally:
        os.chdir(cwd)
    # Names registered since start (a model loaded before, code in the daemon's process).
    known = ModelPolicy([], known=lambda name: name == "bench-memory")
    assert known.admit("bench-memory", Scope.GENERATE) == "bench-memory"
    with pytest.raises(NotFound):
        known.admit("bench-other", Scope.GENERATE)


def test_serve_flags_and_a_pickle_model_given_at_start(
    places: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from pixelkiln_server.cli import add_serve_arguments

    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(
        ["--model-root", str(places["root"]), "--model-root", ".", "--allow-downloads"]
        + ["--max-request-megapixels", "2.5", "--max-jobs-per-client", "3"]
        + ["--stream-backlog", "9"]
    )
    config = config_from_args(args)
    assert config.model_roots == (places["root"], Path("."))
    assert config.allow_downloads and not config.allow_pickle
    assert config.limits.max_request_pixels == 2_500_000
    assert config.max_jobs_per_client == 3 and config.stream_backlog == 9
    with pytest.raises(SystemExit) as info:
        serve_main(["--model", str(places["root"] / "old.ckpt")])
    assert "pickle" in str(info.value) and "--allow-pickle" in str(info.value)
    with pytest.raises(SystemExit) as info:
        serve_main(["--max-jobs-per-client", "0"])
    assert "--max-jobs-per-client" in str(info.value)


def test_the_loader_itself_takes_safetensors_only(tmp_path: Path) -> None:
    """Below the policy: a folder saved with pickle (.bin) weights does not load unless
    allow_pickle, and a .ckpt single file is refused before diffusers sees it."""
    import torch

    from pixelkiln_server.backends.base import LoadOptions
    from pixelkiln_server.backends.diffusers_load import load_pipeline
    from pixelkiln_server.backends.tiny_random import build_tiny_sd_pipeline
    from pixelkiln_server.catalogue import spec_for_source
    from pixelkiln_server.errors import PixelKilnError

    folder = tmp_path / "pickled"
    build_tiny_sd_pipeline(seed=3).save_pretrained(folder, safe_serialization=False)
    # diffusers' own components in pickle; transformers writes safetensors regardless.
    assert list((folder / "unet").glob("*.bin")) and not list(folder.glob("unet/*.safetensors"))
    assert pickle_weights(folder) == "unet/diffusion_pytorch_model.bin"
    spec = spec_for_source(str(folder), str(folder))
    with pytest.raises(PixelKilnError):
        load_pipeline(spec, torch.float32, LoadOptions(device="cpu", offline=True))
    options = LoadOptions(device="cpu", offline=True, allow_pickle=True)
    pipe = load_pipeline(spec, torch.float32, options)
    assert pipe.unet is not None
    checkpoint = tmp_path / "old.ckpt"
    checkpoint.write_bytes(b"never read")
    with pytest.raises(PermissionDenied) as info:
        load_pipeline(spec_for_source("old", str(checkpoint)), torch.float32, LoadOptions())
    assert "--allow-pickle" in info.value.message
