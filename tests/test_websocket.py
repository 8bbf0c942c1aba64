"""The WebSocket carrier end to end with a real WebSocket client: same engine, same errors."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import struct
from dataclasses import replace
from typing import Any

import grpc
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pixelkiln import AsyncClient
from pixelkiln.v1 import envelope_pb2 as env_pb
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import image_pb2 as image_pb
from pixelkiln.v1 import models_pb2 as models_pb
from pixelkiln_server.app import Daemon
from pixelkiln_server.backends.fake import FAKE_SPEC
from pixelkiln_server.services.access import RequestRecord

from .conftest import decode, png_bytes, running_daemon

MAX = 64 * 2**20


async def send(ws: Any, request_id: str, **body: Any) -> None:
    await ws.send(env_pb.Envelope(request_id=request_id, **body).SerializeToString())


async def recv(ws: Any) -> env_pb.Envelope:
    return env_pb.Envelope.FromString(await ws.recv())


async def until(ws: Any, request_id: str, *kinds: str) -> list[env_pb.Envelope]:
    """Envelopes for ``request_id`` up to and including one whose body is in ``kinds``."""
    out = []
    while True:
        env = await recv(ws)
        if env.request_id != request_id:
            continue
        out.append(env)
        kind = env.WhichOneof("body")
        if (
            kind in kinds
            or kind == "error"
            or (kind == "event" and env.event.WhichOneof("event") in kinds)
        ):
            return out


async def test_generate_over_websocket_matches_grpc(daemon: Daemon, aclient: AsyncClient) -> None:
    request = gen_pb.GenerateRequest(prompt="red brick wall", seed=42, steps=2)
    request.preview.every_n_steps = 1
    quiet = gen_pb.GenerateRequest(prompt="red brick wall", seed=42, steps=2)
    quiet.preview.result_only = True
    async with connect(daemon.ws_url, max_size=MAX) as ws:
        await send(ws, "g1", generate=request)
        envs = await until(ws, "g1", "result")
        await send(ws, "g2", generate=quiet)
        (only,) = await until(ws, "g2", "result")  # result_only: one envelope, as over gRPC
    kinds = [e.event.WhichOneof("event") for e in envs]
    assert kinds[0] == "accepted" and kinds[-1] == "result"
    assert kinds.count("progress") == 2 and kinds.count("preview") == 2
    ws_png = envs[-1].event.result.images[0].image.data
    assert only.event.WhichOneof("event") == "result" and only.event.request_id
    assert only.event.result.images[0].image.data == ws_png
    grpc_result = await aclient.generate("red brick wall", seed=42, steps=2)
    assert np.array_equal(decode(ws_png), decode(grpc_result.image.data))


async def test_errors_are_the_same_as_grpc(daemon: Daemon) -> None:
    async with connect(daemon.ws_url, max_size=MAX) as ws:
        await send(ws, "bad", generate=gen_pb.GenerateRequest(prompt="x", width=100))
        (env,) = await until(ws, "bad", "result")
        assert env.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert env.error.code_name == "INVALID_ARGUMENT"
        assert env.error.message.startswith("width") and "multiple of 8" in env.error.message
        await send(ws, "nf", generate=gen_pb.GenerateRequest(prompt="x", model="nope"))
        (env,) = await until(ws, "nf", "result")
        assert env.error.code_name == "NOT_FOUND"
        await ws.send(b"\xff\xff not protobuf")
        env = await recv(ws)
        assert env.error.code_name == "INVALID_ARGUMENT" and "Envelope" in env.error.message
        await ws.send("text frame")
        env = await recv(ws)
        assert env.error.code_name == "INVALID_ARGUMENT" and "binary" in env.error.message
        # The connection survives its errors.
        await send(ws, "s", status=models_pb.StatusRequest())
        (env,) = await until(ws, "s", "status_response")
        assert env.status_response.ready


async def test_models_status_load_unload(daemon: Daemon) -> None:
    async with connect(daemon.ws_url, max_size=MAX) as ws:
        await send(ws, "m", list_models=models_pb.ListModelsRequest())
        (env,) = await until(ws, "m", "list_models_response")
        names = {m.name for m in env.list_models_response.models}
        assert "tiny-random" in names and env.list_models_response.default_model == "tiny-random"
        await send(ws, "l", load_model=models_pb.LoadModelRequest(name="tiny-random"))
        (env,) = await until(ws, "l", "model_info")
        assert env.model_info.loaded
        await send(ws, "u", unload_model=models_pb.UnloadModelRequest(name="never-loaded"))
        (env,) = await until(ws, "u", "unload_model_response")
        assert not env.unload_model_response.unloaded


async def test_cancel_over_websocket(daemon: Daemon) -> None:
    async with connect(daemon.ws_url, max_size=MAX) as ws:
        await send(
            ws,
            "slow",
            generate=gen_pb.GenerateRequest(prompt="x", steps=40, width=256, height=256, seed=1),
        )
        await until(ws, "slow", "progress")
        await send(ws, "c", cancel=gen_pb.CancelRequest(request_id="slow"))
        (ack,) = await until(ws, "c", "cancel_response")
        assert ack.cancel_response.cancelled
        envs = await until(ws, "slow", "result")
        assert envs[-1].error.code_name == "CANCELLED"


async def test_live_over_websocket(daemon: Daemon) -> None:
    sketch = png_bytes(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    settings = gen_pb.LiveSettings(prompt="moss", strength=0.5, steps=2, seed=3)
    async with connect(daemon.ws_url, max_size=MAX) as ws:
        for seq in (1, 2, 3):
            live_input = gen_pb.LiveInput(seq=seq, settings=settings if seq == 1 else None)
            live_input.image.data = sketch
            await send(ws, "live", live_input=live_input)
        await send(ws, "live", live_end=env_pb.LiveEnd())
        envs = await until(ws, "live", "live_end")
    frames = [e.live_frame for e in envs if e.WhichOneof("body") == "live_frame"]
    assert frames[-1].seq == 3
    assert frames[0].image.data and frames[0].seed == 3
    assert all(f.unchanged for f in frames[1:])  # same bytes and settings: free
    assert envs[-1].WhichOneof("body") == "live_end"


async def test_disconnect_cancels_and_oversized_frames_close() -> None:
    async with running_daemon(max_message_bytes=2**20) as d:
        async with connect(d.ws_url, max_size=MAX) as ws:
            await send(
                ws,
                "slow",
                generate=gen_pb.GenerateRequest(prompt="x", steps=40, width=256, height=256),
            )
            await until(ws, "slow", "progress")
        for _ in range(200):
            if not d.engine.running:
                break
            await asyncio.sleep(0.01)
        assert not d.engine.running
        async with connect(d.ws_url, max_size=MAX) as ws:
            await ws.send(b"\0" * (2**20 + 1))
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_unknown_path_is_refused(daemon: Daemon) -> None:
    async with connect(daemon.ws_url.replace("/v1", "/v0"), max_size=MAX) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008


def _masked_frame(payload: bytes) -> bytes:
    """One binary WebSocket frame as a client sends it (RFC 6455: masked)."""
    n, mask = len(payload), os.urandom(4)
    if n < 126:
        head = bytes([0x82, 0x80 | n])
    elif n < 2**16:
        head = bytes([0x82, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", n)
    masked = np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)
    return head + mask + masked.tobytes()


async def _raw_client(url: str, rcvbuf: int) -> socket.socket:
    """A WebSocket connection by hand, with a small receive buffer, that reads only when told."""
    host, port = url.removeprefix("ws://").removesuffix("/v1").rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(
        sock,
        f"GET /v1 HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode(),
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += await loop.sock_recv(sock, 1)
    assert answer.startswith(b"HTTP/1.1 101")
    return sock


async def _ask_for_big_results(sock: socket.socket, count: int) -> None:
    request = gen_pb.GenerateRequest(prompt="step_ms=0", width=1024, height=1024, steps=1)
    request.output_encoding = image_pb.ENCODING_RAW_RGBA8  # 4 MiB a result
    request.preview.result_only = True
    for i in range(count):
        envelope = env_pb.Envelope(request_id=f"r{i}", generate=request)
        await asyncio.get_running_loop().sock_sendall(
            sock, _masked_frame(envelope.SerializeToString())
        )


FAKE_256 = replace(FAKE_SPEC, native_width=256, native_height=256)


async def test_a_client_that_stops_reading_is_disconnected_and_its_requests_end() -> None:
    """A client that never reads once held its finished results and its job slots for as long
    as it stayed connected: websockets' keepalive ping waits behind the same full buffer."""
    records: list[RequestRecord] = []
    async with running_daemon(register=(FAKE_256,), default_model="fake", ws_send_stall_s=1.0) as d:
        d.ops.request_listeners.append(records.append)
        sock = await _raw_client(d.ws_url, 4096)
        try:
            await _ask_for_big_results(sock, 4)
            for _ in range(300):  # each finishes as its result goes to the connection's buffer
                generates = [r for r in records if r.method == "Generate"]
                if len(generates) == 4:
                    break
                await asyncio.sleep(0.05)
            assert {r.code for r in generates} <= {"OK", "CANCELLED"}
            # ... but their job slots stay taken until the client takes them, or is dropped.
            assert await d.ops.wait_idle(15.0)
            assert d.websocket is not None and not d.websocket._connections
        finally:
            sock.close()


async def test_a_slow_client_that_keeps_reading_is_not_disconnected() -> None:
    """The stall is time without progress, not the time a large message takes to go out."""
    async with running_daemon(register=(FAKE_256,), default_model="fake", ws_send_stall_s=1.0) as d:
        sock = await _raw_client(d.ws_url, 2**20)
        loop = asyncio.get_running_loop()
        try:
            await _ask_for_big_results(sock, 4)
            received, started = 0, loop.time()
            while received < 16 * 2**20:  # about 3 MiB/s: over a second for each result
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 10)
                assert chunk, "the daemon closed the connection"
                received += len(chunk)
                await asyncio.sleep(0.02)
            took = loop.time() - started
            assert await d.ops.wait_idle(10.0)
            assert d.websocket is not None and len(d.websocket._connections) == 1
        finally:
            sock.close()
    assert took > 4 * 1.0  # longer than the stall for each result, and none was cut


async def test_an_envelope_id_is_bounded_and_logged_quoted(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """A 5 MB envelope id was echoed whole and written as one 5 MB log line; one with a
    newline forged a log line. Ids over 128 characters are refused without the echo; the
    daemon's log quotes what a client sent."""
    caplog.set_level(logging.DEBUG)
    async with connect(daemon.ws_url, max_size=MAX) as ws:
        await send(ws, "x" * 200_000, status=models_pb.StatusRequest())
        env = await recv(ws)
        assert env.request_id == "" and env.error.code_name == "INVALID_ARGUMENT"
        assert env.error.message == "request_id: at most 128 characters, got 200,000"
        forged = "a\n2026-12-07 00:00:00,000 WARNING pixelkiln.access: FORGED"
        await send(ws, forged)  # no body: refused, naming the envelope
        (env,) = await until(ws, forged, "error")
        assert env.error.code_name == "INVALID_ARGUMENT"
        await send(ws, "s", status=models_pb.StatusRequest())  # the connection goes on
        assert (await until(ws, "s", "status_response"))[0].status_response.ready
    lines = [r.getMessage() for r in caplog.records]
    assert not any("\n" in line for line in lines)
    assert all(len(line) < 2000 for line in lines)
    assert any("FORGED" in line for line in lines)  # logged, on one line
