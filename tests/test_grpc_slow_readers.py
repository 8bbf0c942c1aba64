"""gRPC clients that stop reading. grpcio's own client takes messages as they come whether the
program reads them or not, so these tests speak HTTP/2 by hand (the ``h2`` library) to control
the flow-control window."""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import replace
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings

from pixelkiln import AsyncClient
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import image_pb2 as image_pb
from pixelkiln_server.backends.fake import FAKE_SPEC
from pixelkiln_server.services.access import RequestRecord

from .conftest import running_daemon

FAKE_256 = replace(FAKE_SPEC, native_width=256, native_height=256)
RESULT_BYTES = 256 * 256 * 4  # a 256x256 raw RGBA result


class RawGrpc:
    """One HTTP/2 connection that grants the daemon only the window it is told to."""

    def __init__(self, sock: socket.socket, conn: h2.connection.H2Connection) -> None:
        self.sock, self.conn = sock, conn
        self.received = 0
        self.ended: dict[int, str] = {}  # stream id -> "reset" or the trailers' grpc-status

    @classmethod
    async def open(cls, address: str, window: int) -> RawGrpc:
        host, port = address.rsplit(":", 1)
        sock = socket.socket()
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        raw = cls(sock, conn)
        await raw.flush()
        return raw

    async def flush(self) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, self.conn.data_to_send())

    async def generate(self, request: gen_pb.GenerateRequest) -> int:
        return await self.call("Generate", request, end_stream=True)

    async def call(self, method: str, message: Any, end_stream: bool) -> int:
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            stream,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", f"/pixelkiln.v1.Generator/{method}"),
                (":authority", "localhost"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("pixelkiln-client-id", "slow-reader"),
            ],
        )
        body = message.SerializeToString()
        self.conn.send_data(stream, struct.pack(">BI", 0, len(body)) + body, end_stream=end_stream)
        await self.flush()
        return stream

    async def pump(self, seconds: float, grant: int = 0) -> None:
        """Read frames for ``seconds``; ``grant``: acknowledge what arrives so the daemon may
        send that much more (a reader), else never (a client that stopped reading)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while (left := until - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), left)
            except TimeoutError:
                return
            if not data:
                return
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    self.received += len(event.data)
                    if grant:
                        self.conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                elif isinstance(event, h2.events.StreamReset):  # after trailers, or alone
                    self.ended.setdefault(event.stream_id, "reset")
                elif isinstance(event, h2.events.TrailersReceived | h2.events.ResponseReceived):
                    status = dict(event.headers).get(b"grpc-status")  # trailers-only: at once
                    if status is not None:
                        self.ended[event.stream_id] = status.decode()
            await self.flush()
            if grant:
                await asyncio.sleep(len(data) / grant)  # read at about ``grant`` bytes/s

    def close(self) -> None:
        self.sock.close()


def big_request() -> gen_pb.GenerateRequest:
    request = gen_pb.GenerateRequest(prompt="step_ms=0", width=256, height=256, steps=1)
    request.output_encoding = image_pb.ENCODING_RAW_RGBA8
    request.preview.result_only = True
    return request


async def test_a_grpc_client_that_grants_no_window_holds_no_more_than_its_own_jobs() -> None:
    """Such a client keeps its finished results (gRPC cannot end a call whose data waits on
    the client's window: grpc.aio has no way to reset one stream), but only within its own
    --max-jobs-per-client; the next one is refused and other clients are served."""
    records: list[RequestRecord] = []
    async with running_daemon(
        register=(FAKE_256,), default_model="fake", max_jobs_per_client=2
    ) as d:
        d.ops.request_listeners.append(records.append)
        raw = await RawGrpc.open(d.address, window=1024)  # less than one result
        try:
            held = [await raw.generate(big_request()) for _ in range(2)]
            await raw.pump(1.0)
            refused = await raw.generate(big_request())
            await raw.pump(2.0)
            assert raw.ended == {refused: "8"}, raw.ended  # RESOURCE_EXHAUSTED
            assert raw.received < RESULT_BYTES and not set(held) & set(raw.ended)
            async with AsyncClient(d.address, timeout=30) as other:
                assert (await other.generate("step_ms=0", steps=1)).images
            assert not await d.ops.wait_idle(0.5)  # the two are held ...
        finally:
            raw.close()
        assert await d.ops.wait_idle(10.0)  # ... until their client goes
    generates = sorted(r.code for r in records if r.method == "Generate")
    assert generates.count("RESOURCE_EXHAUSTED") == 1, generates


async def test_a_slow_grpc_reader_gets_its_results() -> None:
    """Reading at ~128 KiB/s, a 256 KiB result takes about 2 s: a slow link is served."""
    records: list[RequestRecord] = []
    async with running_daemon(register=(FAKE_256,), default_model="fake") as d:
        d.ops.request_listeners.append(records.append)
        raw = await RawGrpc.open(d.address, window=65535)
        try:
            stream = await raw.generate(big_request())
            loop = asyncio.get_running_loop()
            started = loop.time()
            while stream not in raw.ended and loop.time() - started < 20:
                await raw.pump(0.5, grant=128 * 1024)
            took = loop.time() - started
            assert raw.ended.get(stream) == "0", raw.ended  # grpc-status OK
            assert raw.received > RESULT_BYTES
            assert [r.code for r in records if r.method == "Generate"] == ["OK"]
        finally:
            raw.close()
    assert took > 1.5  # it was read slowly


async def test_live_sessions_of_a_client_that_stopped_reading_free_their_places() -> None:
    """Its sessions end at --live-idle-timeout and free their places under --max-live-sessions
    for other clients, though their streams (with a frame that cannot be written) stay open
    until the client goes; those still count against that client, which can open no more."""
    settings = gen_pb.LiveSettings(prompt="step_ms=0", width=256, height=256)
    settings.output_encoding = image_pb.ENCODING_RAW_RGBA8  # 256 KiB frames
    live_input = gen_pb.LiveInput(seq=1, settings=settings)
    async with running_daemon(
        register=(FAKE_256,), default_model="fake", max_live_sessions=2, live_idle_timeout_s=1.0
    ) as d:
        raw = await RawGrpc.open(d.address, window=1024)
        try:
            held = [await raw.call("Live", live_input, end_stream=False) for _ in range(2)]
            await raw.pump(3.0)  # their first frames wait on the window; then they idle out
            assert d.engine.live_sessions == 0 and not raw.ended
            other = AsyncClient(d.address, timeout=30)
            async with other, other.live(prompt="step_ms=0", steps=1) as session:
                await session.send()
                await session.close()
                frames = [frame async for frame in session]
            assert len(frames) == 1
            refused = await raw.call("Live", live_input, end_stream=False)
            await raw.pump(1.0)
            assert raw.ended == {refused: "8"}, raw.ended  # RESOURCE_EXHAUSTED
            assert not set(held) & set(raw.ended)
        finally:
            raw.close()
        assert await d.ops.wait_idle(10.0)


async def test_a_peer_without_a_token_is_refused_before_its_message_arrives(
    tmp_path: Any,
) -> None:
    """A refusal does not read the request: a peer with no token that declares a 1 MiB message
    and sends 1 KB of it gets UNAUTHENTICATED at once (grpc read whole messages before a unary
    refusal ran, so 16 half-sent 60 MiB messages held 750 MiB for as long as the peer stayed).
    Health Check stays open; Watch, which holds a stream, needs a token too."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice generate pk_{'a' * 43}\n")
    tokens.chmod(0o600)
    async with running_daemon(token_file=tokens, ws_port=None) as d:
        raw = await RawGrpc.open(d.address, window=65535)
        try:
            calls = {
                "/pixelkiln.v1.Generator/Generate": b"\0" + struct.pack(">I", 2**20) + b"x" * 1024,
                "/grpc.health.v1.Health/Watch": b"\0\0\0\0\0",
                "/grpc.health.v1.Health/Check": b"\0\0\0\0\0",
            }
            streams = {}
            for path, data in calls.items():
                stream = raw.conn.get_next_available_stream_id()
                headers = [(":method", "POST"), (":scheme", "http"), (":path", path)]
                headers += [(":authority", "localhost"), ("content-type", "application/grpc")]
                raw.conn.send_headers(stream, [*headers, ("te", "trailers")])
                raw.conn.send_data(stream, data, end_stream=path.endswith("Check"))
                streams[path] = stream
            await raw.flush()
            for _ in range(20):
                await raw.pump(0.5)
                if all(s in raw.ended for s in streams.values()):
                    break
        finally:
            raw.close()
    assert raw.ended.get(streams["/pixelkiln.v1.Generator/Generate"]) == "16"  # UNAUTHENTICATED
    assert raw.ended.get(streams["/grpc.health.v1.Health/Watch"]) == "16"
    assert raw.ended.get(streams["/grpc.health.v1.Health/Check"]) == "0"


async def test_a_connection_holds_at_most_64_calls_at_once() -> None:
    """The daemon tells each HTTP/2 peer how many calls it may open at once (an open Watch or
    Generate holds memory; 18,400 of them were held for one peer before)."""
    async with running_daemon(ws_port=None) as d:
        raw = await RawGrpc.open(d.address, window=65535)
        try:
            await raw.pump(0.5)  # the daemon's SETTINGS
        finally:
            raw.close()
    assert raw.conn.remote_settings.max_concurrent_streams == 64
