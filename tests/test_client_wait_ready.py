"""wait_ready of both Python clients against a real grpc.aio health server that is slow to
answer while it starts: a poll that times out is "not up yet", not a failure, as long as the
overall timeout is not spent; any other refusal still raises at once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pixelkiln.aio import AsyncClient
from pixelkiln.client import Client
from pixelkiln.errors import PixelKilnError

POLL_TIMEOUT_S = 0.3


class SlowStart(health_pb2_grpc.HealthServicer):
    """Answers nothing in time for ``stall_s`` (a daemon busy starting), then SERVING; or,
    with ``code``, refuses every check with it."""

    def __init__(self, stall_s: float, code: grpc.StatusCode | None = None) -> None:
        self.started = time.monotonic()
        self.stall_s, self.code, self.checks = stall_s, code, 0

    async def Check(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self.checks += 1
        if self.code is not None:
            await context.abort(self.code, "no such service")
        if time.monotonic() - self.started < self.stall_s:
            await asyncio.sleep(POLL_TIMEOUT_S * 3)  # longer than the client's call timeout
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
def serve_health(request: pytest.FixtureRequest) -> Iterator[tuple[str, SlowStart]]:
    servicer = SlowStart(*request.param)
    ready, stop = threading.Event(), None
    port: list[int] = []

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port.append(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        ready.set()
        await stop.wait()
        await server.stop(None)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    servicer.started = time.monotonic()
    yield f"127.0.0.1:{port[0]}", servicer
    loop.call_soon_threadsafe(stop.set)  # type: ignore[union-attr]
    thread.join(10)


@pytest.mark.parametrize("serve_health", [(1.5,)], indirect=True)
def test_sync_client_keeps_polling_through_slow_answers(
    serve_health: tuple[str, SlowStart],
) -> None:
    address, servicer = serve_health
    with Client(address, timeout=POLL_TIMEOUT_S) as client:
        client.wait_ready(timeout=30)
    assert servicer.checks >= 2  # at least one poll timed out before SERVING came


@pytest.mark.parametrize("serve_health", [(1.5,)], indirect=True)
async def test_async_client_keeps_polling_through_slow_answers(
    serve_health: tuple[str, SlowStart],
) -> None:
    address, servicer = serve_health
    async with AsyncClient(address, timeout=POLL_TIMEOUT_S) as client:
        await client.wait_ready(timeout=30)
    assert servicer.checks >= 2


@pytest.mark.parametrize("serve_health", [(60.0,)], indirect=True)
def test_the_overall_timeout_still_ends_the_wait(serve_health: tuple[str, SlowStart]) -> None:
    address, _ = serve_health
    started = time.monotonic()
    with Client(address, timeout=POLL_TIMEOUT_S) as client, pytest.raises(PixelKilnError) as info:
        client.wait_ready(timeout=1.0)
    assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "not ready after 1 s" in str(info.value)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("serve_health", [(0.0, grpc.StatusCode.NOT_FOUND)], indirect=True)
def test_any_other_refusal_raises_at_once(serve_health: tuple[str, SlowStart]) -> None:
    address, servicer = serve_health
    with Client(address, timeout=5) as client, pytest.raises(PixelKilnError) as info:
        client.wait_ready(timeout=30)
    assert info.value.code is grpc.StatusCode.NOT_FOUND and servicer.checks == 1


def test_no_daemon_says_how_to_start_one() -> None:
    """A script that calls a daemon that is not running is told to start one, by both
    clients; grpcio's own words stay in the message for the details."""
    from pixelkiln.errors import NO_DAEMON_HINT, UnavailableError

    with Client("127.0.0.1:1", timeout=2) as client, pytest.raises(UnavailableError) as sync:
        client.status()

    async def status() -> None:
        async with AsyncClient("127.0.0.1:1", timeout=2) as aclient:
            await aclient.status()

    # On a thread of its own: asyncio.run leaves its thread without an event loop, and later
    # tests on this worker's main thread build grpc.aio servers outside a loop.
    with (
        concurrent.futures.ThreadPoolExecutor(1) as pool,
        pytest.raises(UnavailableError) as aio,
    ):
        pool.submit(asyncio.run, status()).result(timeout=60)
    for err in (sync.value, aio.value):
        assert err.message.startswith(f"{NO_DAEMON_HINT} (")
        assert "127.0.0.1:1" in err.message or "connect" in err.message.lower()
