"""Health (SERVING only after warm-up), reflection, models and status over the real server."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from pixelkiln import AsyncClient, Client, NotFoundError
from pixelkiln_server.app import Daemon
from pixelkiln_server.backends.ldm_checkpoint import save_single_file_checkpoint
from pixelkiln_server.backends.tiny_random import build_tiny_sd_pipeline

from .conftest import decode, make_config, runner_host, running_daemon


async def test_health_serving_only_after_warm_up() -> None:
    d = Daemon(make_config())
    # Hold the model lock so warm-up cannot finish until we let it.
    runner_host(d).registry.lock.acquire()
    released = False
    try:
        await d.start()
        async with grpc.aio.insecure_channel(d.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ("", "pixelkiln.v1.Generator"):
                resp = await stub.Check(health_pb2.HealthCheckRequest(service=service))
                assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
            runner_host(d).registry.lock.release()
            released = True
            await d.wait_ready()
            resp = await stub.Check(health_pb2.HealthCheckRequest(service="pixelkiln.v1.Models"))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        if not released:
            runner_host(d).registry.lock.release()
        await d.stop(0)


def test_reflection_lists_services(served: str) -> None:
    with grpc.insecure_channel(served) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {
            "pixelkiln.v1.Generator",
            "pixelkiln.v1.Models",
            "grpc.health.v1.Health",
        } <= services
        desc = db.FindFileContainingSymbol("pixelkiln.v1.GenerateRequest")
        assert desc.package == "pixelkiln.v1"


async def test_models_and_status(daemon: Daemon, aclient: AsyncClient) -> None:
    models = {m.name: m for m in await aclient.models()}
    assert {"tiny-random", "sd-turbo", "sdxl-turbo"} <= set(models)
    tiny = models["tiny-random"]
    assert tiny.loaded and tiny.available_locally
    assert (tiny.native_width, tiny.default_steps, tiny.family) == (64, 4, "sd")
    assert models["sd-turbo"].default_steps == 1 and models["sd-turbo"].default_guidance == 0
    status = await aclient.status()
    assert status.ready and status.device == "cpu" and status.dtype == "fp32"
    assert "tiny-random" in status.loaded_models
    assert status.queue_capacity == 32 and status.max_message_bytes == 65 * 2**20
    assert status.memory_used_bytes > 1_000_000


async def test_load_from_saved_folder_and_unload(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    build_tiny_sd_pipeline(seed=5).save_pretrained(folder)
    async with running_daemon() as d, AsyncClient(d.address, timeout=60) as client:
        info = await client.load(str(folder))
        assert info.loaded and info.family == "sd" and info.source == str(folder)
        result = await client.generate("brick", model=str(folder), steps=1, seed=1, size=64)
        again = await client.generate("brick", model=str(folder), steps=1, seed=1, size=64)
        default = await client.generate("brick", steps=1, seed=1, size=64)
        assert np.array_equal(decode(result.image.data), decode(again.image.data))
        # Other weights (seed 5 vs the built-in seed 0), other pixels.
        assert not np.array_equal(decode(result.image.data), decode(default.image.data))
        assert str(folder) in (await client.status()).loaded_models
        assert await client.unload(str(folder))
        assert str(folder) not in (await client.status()).loaded_models
        assert not await client.unload(str(folder))
        with pytest.raises(NotFoundError):
            await client.load(str(tmp_path / "missing"))


async def test_load_single_file_checkpoint_with_local_config(tmp_path: Path) -> None:
    """A model-site style .safetensors (LDM layout) with a local config folder beside it."""
    pipe = build_tiny_sd_pipeline(seed=7)
    folder = tmp_path / "ref"
    pipe.save_pretrained(folder)
    config = tmp_path / "tiny7"  # <stem>/ beside <stem>.safetensors holds the configs
    shutil.copytree(folder, config, ignore=shutil.ignore_patterns("*.safetensors"))
    checkpoint = save_single_file_checkpoint(pipe, tmp_path / "tiny7.safetensors")
    async with running_daemon() as d, AsyncClient(d.address, timeout=60) as client:
        from_file = await client.generate("x", model=str(checkpoint), steps=1, seed=3, size=64)
        from_folder = await client.generate("x", model=str(folder), steps=1, seed=3, size=64)
    assert np.array_equal(decode(from_file.image.data), decode(from_folder.image.data))


def test_sync_client_against_child_daemon(served: str) -> None:
    with Client(served, timeout=60) as client:
        assert client.health() == "SERVING"
        seen: list[str] = []
        result = client.generate(
            "gold coin", seed=2, steps=2, on_event=lambda e: seen.append(type(e).__name__)
        )
        assert seen[0] == "Accepted" and seen[-1] == "Result" and "Progress" in seen
        assert decode(result.image.data).shape == (64, 64, 3)
        assert client.status().ready
