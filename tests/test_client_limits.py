"""Per-client limits over gRPC and WebSocket: requests too large to hold or to deliver are
refused before Accepted, --max-jobs-per-client, and a client that never reads its stream:
previews are dropped first, then the stream ends with RESOURCE_EXHAUSTED and the job is
cancelled, so the daemon's memory does not grow."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from websockets.asyncio.client import connect

from pixelkiln.v1 import envelope_pb2 as env_pb
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import generator_pb2_grpc as gen_grpc
from pixelkiln_server.app import Daemon
from pixelkiln_server.services.operations import OwnedJob

from .conftest import running_daemon
from .test_websocket import MAX, recv, send, until

OPTIONS = [("grpc.max_receive_message_length", MAX), ("grpc.max_send_message_length", MAX)]
# A client that does not read keeps the HTTP/2 window at its initial 64 KiB (no BDP probe
# grows it), so the daemon's writes wait as they would for a slow reader on a real network.
NOT_READING = [*OPTIONS, ("grpc.http2.bdp_probe", 0)]


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait for a condition of the daemon's state (bounded by pytest's own timeout)."""
    while not condition():
        await asyncio.sleep(0.05)


def finished(job: OwnedJob) -> Callable[[], bool]:
    return lambda: job.handle.job.finished


def jobs(d: Daemon) -> list[OwnedJob]:
    return list({id(j): j for own in d.ops._jobs.values() for j in own.values()}.values())


async def grpc_error(d: Daemon, request: gen_pb.GenerateRequest) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(d.address, options=OPTIONS) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _event in gen_grpc.GeneratorStub(channel).Generate(request):
                pass
    return info.value


async def ws_error(d: Daemon, request: gen_pb.GenerateRequest) -> env_pb.Error:
    async with connect(d.ws_url, max_size=MAX) as ws:
        await send(ws, "r", generate=request)
        envs = await until(ws, "r", "result")
    assert [e.WhichOneof("body") for e in envs] == ["error"]  # nothing before it: no Accepted
    return envs[0].error


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        # 5 x 2048x2048 = 20,971,520 pixels > 16,800,000
        ({"num_images": 5}, ["num_images", "20,971,520 pixels", "--max-request-megapixels"]),
        # 4 x 2048x2048 fits the pixels, but with a normal map it is 128 MiB raw > 65 MiB
        (
            {"num_images": 4, "maps": [gen_pb.MAP_KIND_NORMAL]},
            ["num_images", "needs up to 134,758,400 bytes", "68,157,440", "--max-message-mib"],
        ),
    ],
    ids=["megapixels", "undeliverable"],
)
async def test_requests_too_large_are_refused_before_accepted_on_both(
    daemon: Daemon, fields: dict[str, object], words: list[str]
) -> None:
    request = gen_pb.GenerateRequest(prompt="x", width=2048, height=2048, steps=1, **fields)  # type: ignore[arg-type]
    grpc_failure = await grpc_error(daemon, request)
    ws_failure = await ws_error(daemon, request)
    assert grpc_failure.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert ws_failure.code_name == "INVALID_ARGUMENT"
    assert ws_failure.message == grpc_failure.details()
    for word in words:
        assert word in ws_failure.message
    assert not jobs(daemon)


async def test_max_jobs_per_client_on_both() -> None:
    slow = gen_pb.GenerateRequest(prompt="x", steps=40, width=256, height=256)
    async with running_daemon(max_jobs_per_client=2) as d:
        async with grpc.aio.insecure_channel(d.address, options=OPTIONS) as channel:
            stub = gen_grpc.GeneratorStub(channel)
            calls = [stub.Generate(slow) for _ in range(2)]
            for call in calls:
                assert (await call.read()).WhichOneof("event") == "accepted"
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Generate(slow).read()
            assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-jobs-per-client" in str(info.value.details())
            # Another client (another connection, without tokens) has its own count.
            own_connection = [*OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
            async with grpc.aio.insecure_channel(d.address, options=own_connection) as other:
                other_call = gen_grpc.GeneratorStub(other).Generate(slow)
                assert (await other_call.read()).WhichOneof("event") == "accepted"
                other_call.cancel()
            for call in calls:
                call.cancel()
        await eventually(lambda: not jobs(d))
        async with connect(d.ws_url, max_size=MAX) as ws:
            for rid in ("a", "b"):
                await send(ws, rid, generate=slow)
                await until(ws, rid, "accepted")
            await send(ws, "c", generate=slow)
            (env,) = await until(ws, "c", "accepted")
            assert env.error.code_name == "RESOURCE_EXHAUSTED"
            assert "has 2 requests queued or running" in env.error.message
            assert "--max-jobs-per-client" in env.error.message
            # A finished job frees its place.
            await send(ws, "x", cancel=gen_pb.CancelRequest(request_id="a"))
            await until(ws, "a", "result")
            await send(ws, "d", generate=slow)
            (env,) = await until(ws, "d", "accepted")
            assert env.event.WhichOneof("event") == "accepted"


async def test_a_grpc_client_that_never_reads_gets_resource_exhausted() -> None:
    request = gen_pb.GenerateRequest(
        prompt="x",
        steps=20,
        width=512,
        height=512,
        preview=gen_pb.PreviewSettings(every_n_steps=1, max_side=512),
    )
    async with running_daemon(stream_backlog=4) as d:
        async with grpc.aio.insecure_channel(d.address, options=NOT_READING) as channel:
            call = gen_grpc.GeneratorStub(channel).Generate(request)
            await eventually(lambda: bool(jobs(d)))
            (job,) = jobs(d)
            # The daemon gives up on the reader: the job ends (cancelled) while unread.
            await eventually(finished(job))
            channel_state = job.handle._channel
            assert channel_state.dropped_previews > 0  # previews went first
            assert channel_state.backlog <= 4
            kinds = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for event in call:
                    kinds.append(event.WhichOneof("event"))
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--stream-backlog" in str(info.value.details())
        assert "result" not in kinds and kinds.count("progress") < 20
        assert job.handle.job.cancelled
        await eventually(lambda: d.engine.running == 0)


async def never_reading_ws(d: Daemon) -> AsyncIterator[object]:
    """A WebSocket whose socket takes in little and whose client reads nothing until told."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    port = int(d.ws_url.rsplit(":", 1)[1].split("/")[0])
    sock.connect(("127.0.0.1", port))
    async with connect(d.ws_url, sock=sock, max_size=MAX, max_queue=1) as ws:
        yield ws


async def test_a_websocket_client_that_never_reads_gets_resource_exhausted() -> None:
    """A large result fills the socket; the next request's events then wait in the daemon,
    up to the cap, and its stream ends with RESOURCE_EXHAUSTED."""
    big = gen_pb.GenerateRequest(prompt="x", steps=1, width=512, height=512, num_images=8)
    small = gen_pb.GenerateRequest(prompt="x", steps=12, width=64, height=64)
    async with running_daemon(stream_backlog=2) as d:
        async for ws in never_reading_ws(d):
            await send(ws, "big", generate=big)
            await eventually(lambda: bool(jobs(d)))
            (first,) = jobs(d)
            await eventually(finished(first))
            await send(ws, "small", generate=small)
            await eventually(lambda: len(jobs(d)) == 2)
            second = next(j for j in jobs(d) if j is not first)
            await eventually(finished(second))
            assert second.handle.job.cancelled  # ended by the daemon, not run to the end
            envs = []
            while (
                not envs
                or envs[-1].request_id != "small"
                or envs[-1].WhichOneof("body") not in ("error",)
            ):
                envs.append(await recv(ws))
        results = [e for e in envs if e.request_id == "big" and e.event.HasField("result")]
        assert len(results) == 1 and len(results[0].event.result.images) == 8
        error = envs[-1].error
        assert error.code_name == "RESOURCE_EXHAUSTED" and "--stream-backlog" in error.message
        small_kinds = [e.event.WhichOneof("event") for e in envs[:-1] if e.request_id == "small"]
        assert "result" not in small_kinds and small_kinds.count("progress") < 12


async def test_a_live_session_that_is_never_read_ends_with_resource_exhausted() -> None:
    """Live frames are never dropped (each answers an input): unread ones end the session."""
    inputs: asyncio.Queue[gen_pb.LiveInput] = asyncio.Queue()

    async def feed() -> AsyncIterator[gen_pb.LiveInput]:
        while True:
            yield await inputs.get()

    def live_input(seq: int) -> gen_pb.LiveInput:
        # The same settings each time: after the first, frames are "unchanged" and cheap.
        settings = gen_pb.LiveSettings(prompt="x", seed=1, steps=1, width=256, height=256)
        return gen_pb.LiveInput(seq=seq, settings=settings)

    async with running_daemon(stream_backlog=2) as d:
        async with grpc.aio.insecure_channel(d.address, options=NOT_READING) as channel:
            call = gen_grpc.GeneratorStub(channel).Live(feed())
            await inputs.put(live_input(1))
            await eventually(lambda: bool(d.ops._lives))
            (session,) = d.ops._lives
            await eventually(lambda: session.processed == 1)
            for seq in range(2, 10):
                before = session.frames_out
                await inputs.put(live_input(seq))
                await eventually(
                    lambda: session.error is not None or session.frames_out > before  # noqa: B023
                )
                if session.error is not None:
                    break
            assert session.error is not None and session.error.code.value == "RESOURCE_EXHAUSTED"
            seqs = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for frame in call:
                    seqs.append(frame.seq)
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--stream-backlog" in str(info.value.details())
        assert seqs[0] == 1 and len(seqs) < seq


async def test_a_websocket_live_session_that_is_never_read_ends_with_resource_exhausted() -> None:
    big = gen_pb.GenerateRequest(prompt="x", steps=1, width=512, height=512, num_images=8)
    settings = gen_pb.LiveSettings(prompt="x", seed=1, steps=1, width=64, height=64)
    async with running_daemon(stream_backlog=2) as d:
        async for ws in never_reading_ws(d):
            await send(ws, "big", generate=big)  # its result fills the socket
            await eventually(lambda: bool(jobs(d)))
            (first,) = jobs(d)
            await eventually(finished(first))
            await send(ws, "live", live_input=gen_pb.LiveInput(seq=1, settings=settings))
            await eventually(lambda: bool(d.ops._lives))
            (session,) = d.ops._lives
            await eventually(lambda: session.processed == 1)  # noqa: B023
            for seq in range(2, 10):
                before = session.frames_out
                await send(ws, "live", live_input=gen_pb.LiveInput(seq=seq, settings=settings))
                await eventually(
                    lambda: session.error is not None or session.frames_out > before  # noqa: B023
                )
                if session.error is not None:
                    break
            envs = []
            while not envs or envs[-1].request_id != "live" or not envs[-1].HasField("error"):
                envs.append(await recv(ws))
        error = envs[-1].error
        assert error.code_name == "RESOURCE_EXHAUSTED" and "--stream-backlog" in error.message
        frames = [e.live_frame.seq for e in envs if e.HasField("live_frame")]
        assert frames[0] == 1 and len(frames) < seq


async def test_a_client_request_id_names_one_request() -> None:
    """An id that already names another of the caller's requests (its server id or its own
    client_request_id) is refused: it hid the first request from the per-client limit, and
    Cancel by that id reached the second one."""
    slow = gen_pb.GenerateRequest(prompt="x", steps=40, width=256, height=256)
    daemon = running_daemon(max_jobs_per_client=2)
    async with daemon as d, grpc.aio.insecure_channel(d.address, options=OPTIONS) as channel:
        stub = gen_grpc.GeneratorStub(channel)
        first = stub.Generate(slow)
        first_id = (await first.read()).request_id
        clash = gen_pb.GenerateRequest(client_request_id=first_id)
        clash.MergeFrom(slow)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Generate(clash).read()
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert str(info.value.details()).startswith("client_request_id: ")
        mine = gen_pb.GenerateRequest(client_request_id="mine")
        mine.MergeFrom(slow)
        second = stub.Generate(mine)
        await second.read()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Generate(mine).read()  # "mine" is taken while the second runs
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        cancelled = await stub.Cancel(gen_pb.CancelRequest(request_id=first_id))
        assert cancelled.cancelled
        with pytest.raises(grpc.aio.AioRpcError) as info:
            while await first.read() is not grpc.aio.EOF:
                pass
        assert info.value.code() is grpc.StatusCode.CANCELLED  # the first, not the second
        second.cancel()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Cancel(gen_pb.CancelRequest(request_id="x" * 129))
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert str(info.value.details()).startswith("request_id: is longer than 128")
