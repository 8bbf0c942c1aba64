"""One operations layer for both transports: what used to differ between gRPC and WebSocket
(an empty model name, an unexpected exception, the INTERNAL text, shutdown grace, cancel)
now answers the same on both."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pixelkiln import AsyncClient, CancelledError, PixelKilnError, Progress, Result
from pixelkiln.v1 import envelope_pb2 as env_pb
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import models_pb2 as models_pb
from pixelkiln_server.app import Daemon

from .conftest import make_config, png_bytes
from .test_websocket import MAX, recv, send, until

SLOW = {"steps": 40, "size": 256}


def slow_pb(**fields: Any) -> gen_pb.GenerateRequest:
    return gen_pb.GenerateRequest(prompt="x", steps=40, width=256, height=256, **fields)


@pytest.mark.parametrize("method", ["load", "unload"])
async def test_empty_model_name_is_refused_on_both(
    daemon: Daemon, aclient: AsyncClient, method: str
) -> None:
    loaded_before = list(daemon.engine.status().loaded_models)
    with pytest.raises(PixelKilnError) as info:
        await getattr(aclient, method)("")
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    body = {"load": "load_model", "unload": "unload_model"}[method]
    request = {
        "load": models_pb.LoadModelRequest(name=""),
        "unload": models_pb.UnloadModelRequest(name=""),
    }[method]
    async with connect(daemon.ws_url, max_size=MAX) as ws:
        await send(ws, "e", **{body: request})
        (env,) = await until(ws, "e", "model_info", "unload_model_response")
    assert env.error.code_name == "INVALID_ARGUMENT"
    assert env.error.message == info.value.message == "name: must name a model"
    assert daemon.engine.status().loaded_models == loaded_before


async def test_unexpected_exception_is_internal_on_both_and_the_connection_lives(
    daemon: Daemon, aclient: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("secret detail /home/someone/stack")

    async with connect(daemon.ws_url, max_size=MAX) as ws:
        # Another request on the same connection is running when the failure happens.
        await send(ws, "other", generate=gen_pb.GenerateRequest(prompt="x", steps=6, seed=1))
        await until(ws, "other", "progress")
        monkeypatch.setattr(daemon.engine, "status", broken)
        await send(ws, "s", status=models_pb.StatusRequest())
        (ws_error,) = await until(ws, "s", "status_response")
        with pytest.raises(PixelKilnError) as info:
            await aclient.status()
        monkeypatch.undo()
        envs = await until(ws, "other", "result")
        assert envs[-1].event.WhichOneof("event") == "result"  # not cancelled
        await send(ws, "s2", status=models_pb.StatusRequest())
        (env,) = await until(ws, "s2", "status_response")
        assert env.status_response.ready
    assert info.value.code is grpc.StatusCode.INTERNAL
    assert ws_error.error.code_name == "INTERNAL"
    assert (
        ws_error.error.message
        == info.value.message
        == ("internal error in Status; see the daemon log")
    )
    assert "secret" not in ws_error.error.message


async def test_shutdown_grace_is_the_same_on_both() -> None:
    d = Daemon(make_config(shutdown_grace_s=120.0))
    await d.start()
    await d.wait_ready()
    client = AsyncClient(d.address, timeout=120)
    try:
        grpc_stream = client.stream("grpc job", seed=1, steps=12, size=128)
        async for event in grpc_stream:
            if isinstance(event, Progress):
                break
        async with connect(d.ws_url, max_size=MAX) as ws:
            await send(ws, "job", generate=gen_pb.GenerateRequest(prompt="x", steps=12, seed=2))
            await until(ws, "job", "progress")
            stopping = asyncio.create_task(d.stop())
            await asyncio.sleep(0)
            # New work is refused meanwhile, with the same code on both carriers...
            await send(ws, "late", generate=gen_pb.GenerateRequest(prompt="x", steps=1))
            (late,) = await until(ws, "late", "result")
            assert late.error.code_name == "UNAVAILABLE" and "shutting down" in late.error.message
            # ...while the jobs already running finish within the grace.
            envs = await until(ws, "job", "result")
            assert envs[-1].event.WhichOneof("event") == "result"
            results = [e async for e in grpc_stream if isinstance(e, Result)]
            assert len(results) == 1
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            await stopping
    finally:
        await client.close()
        await d.stop(0)


async def test_a_client_cancels_only_its_own_jobs_on_grpc(daemon: Daemon) -> None:
    async with (
        AsyncClient(daemon.address, timeout=60) as a,
        AsyncClient(daemon.address, timeout=60) as b,
    ):
        stream = a.stream("mine", seed=1, client_request_id="same", **SLOW)
        async for event in stream:
            if isinstance(event, Progress):
                server_id = event.request_id
                break
        # The other client can neither cancel it by server id nor by client_request_id.
        assert await b.cancel(server_id) is False
        assert await b.cancel("same") is False
        async for event in stream:
            if isinstance(event, Progress):
                break  # still running
        assert await a.cancel("same") is True
        with pytest.raises(CancelledError):
            async for _ in stream:
                pass


async def test_a_client_cancels_only_its_own_jobs_on_websocket(daemon: Daemon) -> None:
    async with connect(daemon.ws_url, max_size=MAX) as a, connect(daemon.ws_url, max_size=MAX) as b:
        await send(a, "g", generate=slow_pb(client_request_id="same", seed=1))
        envs = await until(a, "g", "progress")
        server_id = envs[0].event.request_id
        for target in (server_id, "same", "g"):
            await send(b, "c", cancel=gen_pb.CancelRequest(request_id=target))
            (ack,) = await until(b, "c", "cancel_response")
            assert ack.cancel_response.cancelled is False, target
        await until(a, "g", "progress")  # still running
        # Its owner cancels it by client_request_id, as over gRPC.
        await send(a, "c", cancel=gen_pb.CancelRequest(request_id="same"))
        (ack,) = await until(a, "c", "cancel_response")
        assert ack.cancel_response.cancelled
        envs = await until(a, "g", "result")
        assert envs[-1].error.code_name == "CANCELLED"


async def test_client_request_ids_are_scoped_to_their_client(daemon: Daemon) -> None:
    """Two clients may use the same client_request_id; each cancel reaches its own job."""
    async with (
        connect(daemon.ws_url, max_size=MAX) as ws,
        AsyncClient(daemon.address, timeout=60) as client,
    ):
        await send(ws, "w", generate=slow_pb(client_request_id="job-1", seed=1))
        await until(ws, "w", "accepted")
        stream = client.stream("grpc", seed=2, client_request_id="job-1", **SLOW)
        async for _ in stream:
            break  # accepted: queued behind the WebSocket job, or running
        assert await client.cancel("job-1") is True
        with pytest.raises(CancelledError):
            async for _ in stream:
                pass
        # The WebSocket client's job with the same id was not touched.
        await send(ws, "c", cancel=gen_pb.CancelRequest(request_id="job-1"))
        (ack,) = await until(ws, "c", "cancel_response")
        assert ack.cancel_response.cancelled
        envs = await until(ws, "w", "result")
        assert envs[-1].error.code_name == "CANCELLED"


async def test_a_live_session_gets_the_grace_too() -> None:
    sketch = png_bytes(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    d = Daemon(make_config(shutdown_grace_s=120.0))
    await d.start()
    await d.wait_ready()
    try:
        async with connect(d.ws_url, max_size=MAX) as ws:
            first = gen_pb.LiveInput(seq=1, settings=gen_pb.LiveSettings(prompt="m", steps=2))
            first.image.data = sketch
            await send(ws, "live", live_input=first)
            envs = await until(ws, "live", "live_frame")
            assert envs[-1].WhichOneof("body") == "live_frame", envs[-1].error.message
            stopping = asyncio.create_task(d.stop())
            await asyncio.sleep(0)
            # A new session is refused; the open one keeps working until its client ends it.
            await send(ws, "other", live_input=first)
            (refused,) = await until(ws, "other", "live_frame")
            assert refused.error.code_name == "UNAVAILABLE"
            second = gen_pb.LiveInput(seq=2, settings=gen_pb.LiveSettings(seed=5))
            second.image.data = sketch
            await send(ws, "live", live_input=second)
            (frame,) = await until(ws, "live", "live_frame")
            assert frame.live_frame.seq == 2 and frame.live_frame.image.data
            assert not stopping.done()
            await send(ws, "live", live_end=env_pb.LiveEnd())
            await until(ws, "live", "live_end")
            await stopping
    finally:
        await d.stop(0)
