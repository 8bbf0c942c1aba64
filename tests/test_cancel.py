"""Cancellation (explicit, disconnect, deadline), queue limits and positions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from pixelkiln import (
    Accepted,
    AsyncClient,
    CancelledError,
    PixelKilnError,
    Progress,
    Queued,
    ResourceExhaustedError,
    Result,
)
from pixelkiln_server.app import Daemon

from .conftest import runner_models, running_daemon

SLOW = {"steps": 40, "size": 256}  # ~seconds on these CPUs; cancelled long before the end


@pytest.fixture
def decode_calls(daemon: Daemon) -> Iterator[list[int]]:
    """Counts VAE decodes of the loaded tiny-random pipeline."""
    model: Any = runner_models(daemon)[0]
    vae = model._pipes["txt2img"].vae
    original = vae.decode
    calls: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    vae.decode = counting
    yield calls
    vae.decode = original


async def wait_idle(daemon: Daemon, timeout: float = 5.0) -> float:
    start = time.perf_counter()
    while daemon.engine.running or daemon.engine.scheduler.depth:
        if time.perf_counter() - start > timeout:
            raise AssertionError("worker still busy")
        await asyncio.sleep(0.005)
    return time.perf_counter() - start


async def test_cancel_mid_run_skips_decode(
    daemon: Daemon, aclient: AsyncClient, decode_calls: list[int]
) -> None:
    steps_seen: list[int] = []
    with pytest.raises(CancelledError) as info:
        async for event in aclient.stream("cancel me", seed=1, **SLOW):
            if isinstance(event, Progress):
                steps_seen.append(event.step)
                if event.step == 2:
                    assert await aclient.cancel(event.request_id)
            assert not isinstance(event, Result)
    assert info.value.code is grpc.StatusCode.CANCELLED
    assert "cancel" in info.value.message
    assert max(steps_seen) < SLOW["steps"] // 2
    assert decode_calls == []
    await wait_idle(daemon)
    # The worker takes the next job at once, and it runs to a result.
    result = await aclient.generate("next", seed=1, steps=1)
    assert result.timings["queue_ms"] < 1000
    assert decode_calls == [1]


async def test_cancel_by_client_request_id_and_unknown(
    daemon: Daemon, aclient: AsyncClient
) -> None:
    with pytest.raises(CancelledError):
        async for event in aclient.stream("x", client_request_id="mine-1", **SLOW):
            if isinstance(event, Progress):
                assert await aclient.cancel("mine-1")
    await wait_idle(daemon)
    assert await aclient.cancel("mine-1") is False
    assert await aclient.cancel("no-such-request") is False


async def test_client_disconnect_frees_worker(
    daemon: Daemon, aclient: AsyncClient, decode_calls: list[int]
) -> None:
    stream = aclient.stream("walk away", seed=2, **SLOW)
    async for event in stream:
        if isinstance(event, Progress):
            break
    await stream.aclose()  # cancels the RPC, as a closed editor or a killed script would
    waited = await wait_idle(daemon)
    assert waited < 3.0
    assert decode_calls == []


async def test_deadline_cancels_the_job(daemon: Daemon, decode_calls: list[int]) -> None:
    async with AsyncClient(daemon.address, timeout=0.5) as short:
        with pytest.raises(PixelKilnError) as info:
            await short.generate("too slow", seed=3, **SLOW)
    assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    await wait_idle(daemon)
    assert decode_calls == []


async def test_queue_full_and_positions() -> None:
    async with running_daemon(queue_size=1) as d, AsyncClient(d.address, timeout=60) as client:
        first = client.stream("a", seed=1, **SLOW)
        async for event in first:
            if isinstance(event, Progress):
                break  # now running
        second_events: list[object] = []
        second = client.stream("b", seed=2, steps=1)
        async for event in second:
            second_events.append(event)
            if isinstance(event, Queued):
                break
        assert isinstance(second_events[0], Accepted)
        queued = second_events[-1]
        assert isinstance(queued, Queued) and queued.position == 0 and queued.queue_depth == 1
        with pytest.raises(ResourceExhaustedError) as info:
            await client.generate("c", seed=3, steps=1)
        assert "queue is full" in info.value.message and "1" in info.value.message
        # Cancelling a queued request ends its stream with CANCELLED.
        assert await client.cancel(second_events[0].request_id)  # type: ignore[attr-defined]
        with pytest.raises(CancelledError):
            async for _ in second:
                pass
        await first.aclose()


async def test_priority_orders_the_queue() -> None:
    async with running_daemon() as d, AsyncClient(d.address, timeout=60) as client:
        blocker = client.stream("blocker", seed=1, **SLOW)
        async for event in blocker:
            if isinstance(event, Progress):
                break
        order: list[str] = []

        async def run(name: str, priority: str) -> None:
            await client.generate(name, seed=1, steps=1, priority=priority)
            order.append(name)

        batch = asyncio.create_task(run("batch", "batch"))
        await asyncio.sleep(0.05)
        interactive = asyncio.create_task(run("interactive", "interactive"))
        await asyncio.sleep(0.05)
        await blocker.aclose()
        await asyncio.gather(batch, interactive)
        assert order == ["interactive", "batch"]
