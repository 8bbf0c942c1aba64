"""Daemon.stop as clients see it: within the grace, requests finish and new ones are refused in
words; after it, what is left (live sessions too) ends with UNAVAILABLE and the daemon's reason
on its own stream, gRPC and WebSocket alike, and the records say the same."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from websockets.asyncio.client import connect

from pixelkiln import AsyncClient, PixelKilnError
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln_server.app import Daemon
from pixelkiln_server.backends.fake import FAKE_SPEC
from pixelkiln_server.services.access import RequestRecord

from .conftest import make_config
from .test_websocket import MAX, send, until

SHUTTING_DOWN = "the daemon is shutting down"


async def started_daemon(**overrides: object) -> Daemon:
    d = Daemon(make_config(default_model="fake", **overrides))
    d.engine.registry.register(FAKE_SPEC)
    await d.start()
    await d.wait_ready()
    return d


async def test_what_outlives_the_grace_ends_with_the_daemons_reason_on_both_carriers() -> None:
    records: list[RequestRecord] = []
    d = await started_daemon(max_batch=1)
    d.ops.request_listeners.append(records.append)
    client = AsyncClient(d.address, timeout=60)
    ws = await connect(d.ws_url, max_size=MAX)
    outcomes: dict[str, BaseException | None] = {}

    async def run(name: str, prompt: str) -> None:
        try:
            await client.generate(prompt, steps=40)
            outcomes[name] = None
        except PixelKilnError as exc:
            outcomes[name] = exc

    try:
        long_one = asyncio.create_task(run("running", "step_ms=100"))  # 4 s, past the grace
        await asyncio.sleep(0.5)
        queued = asyncio.create_task(run("queued", "step_ms=100"))
        await send(ws, "w", generate=gen_pb.GenerateRequest(prompt="step_ms=100", steps=40))
        await until(ws, "w", "accepted")
        live = client.live(prompt="step_ms=0", steps=1)
        await live.__aenter__()
        await live.send()
        await asyncio.sleep(0.5)
        started = time.monotonic()
        stopping = asyncio.create_task(d.stop(1.0))
        await asyncio.sleep(0.3)
        # Within the grace the port still answers: a new request is refused in words.
        with pytest.raises(PixelKilnError) as refused:
            await client.generate("step_ms=0", steps=1)
        assert refused.value.code is grpc.StatusCode.UNAVAILABLE
        assert SHUTTING_DOWN in refused.value.message
        await live.send(seed=2)  # a live session gets the grace too
        with pytest.raises(PixelKilnError) as live_end:
            async for _ in live:
                pass
        assert live_end.value.code is grpc.StatusCode.UNAVAILABLE
        assert SHUTTING_DOWN in live_end.value.message
        env = (await until(ws, "w", "result"))[-1]  # its error envelope, before the close
        assert env.error.code_name == "UNAVAILABLE" and SHUTTING_DOWN in env.error.message
        await stopping
        took = time.monotonic() - started
        await asyncio.gather(long_one, queued)
    finally:
        await ws.close()
        await client.close()
    for name in ("running", "queued"):
        error = outcomes[name]
        assert isinstance(error, PixelKilnError), (name, error)
        assert error.code is grpc.StatusCode.UNAVAILABLE and SHUTTING_DOWN in error.message
    assert took < 1.0 + 4.0  # the grace, one step to take the cancel, the runner's exit
    codes = sorted(r.code for r in records if r.method in ("Generate", "Live"))
    assert "CANCELLED" not in codes and "OK" not in [r.code for r in records if r.method == "Live"]
    assert codes.count("UNAVAILABLE") >= 5  # 3 generates, the live session, the refused one


async def test_a_passed_deadline_is_recorded_as_such() -> None:
    records: list[RequestRecord] = []
    d = await started_daemon()
    d.ops.request_listeners.append(records.append)
    try:
        async with AsyncClient(d.address, timeout=0.5) as client:
            with pytest.raises(PixelKilnError) as info:
                await client.generate("step_ms=100", steps=20)
        assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
        for _ in range(100):
            if any(r.method == "Generate" for r in records):
                break
            await asyncio.sleep(0.05)
        (record,) = [r for r in records if r.method == "Generate"]
        assert record.code == "DEADLINE_EXCEEDED", record
    finally:
        await d.stop(0)
