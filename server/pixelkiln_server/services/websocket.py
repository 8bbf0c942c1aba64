"""The WebSocket carrier: the same contract for engines without HTTP/2 (Unity, Godot).

Every binary frame is one ``pixelkiln.v1.Envelope`` (see proto/pixelkiln/v1/envelope.proto).
It calls the same engine as the gRPC services, through the same conversions, and reports
failures with the same status codes and messages (as ``error`` envelopes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from google.protobuf.message import DecodeError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from pixelkiln.v1 import envelope_pb2 as env_pb
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import models_pb2 as models_pb

from .. import convert
from ..engine.core import Engine, JobHandle
from ..engine.live import LiveSession
from ..errors import InvalidArgument, NotFound, PixelKilnError
from ..types import Failed
from .status import grpc_code

log = logging.getLogger(__name__)

PATH = "/v1"


def error_envelope(request_id: str, exc: Exception) -> env_pb.Envelope:
    if isinstance(exc, PixelKilnError):
        code = grpc_code(exc)
        message = exc.message
    else:
        log.error("websocket request %s failed", request_id, exc_info=exc)
        from grpc import StatusCode

        code, message = StatusCode.INTERNAL, "internal error; see the daemon log"
    return env_pb.Envelope(
        request_id=request_id,
        error=env_pb.Error(code=code.value[0], code_name=code.name, message=message),
    )


class _Connection:
    """One WebSocket client: its running generations and live sessions, by request id."""

    def __init__(self, engine: Engine, ws: ServerConnection) -> None:
        self.engine = engine
        self.ws = ws
        self.client_id = f"ws:{uuid.uuid4().hex}"
        self.handles: dict[str, JobHandle] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.lives: dict[str, LiveSession] = {}

    async def send(self, envelope: env_pb.Envelope) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(envelope.SerializeToString())

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        try:
            async for data in self.ws:
                await self.dispatch(data)
        except ConnectionClosed:
            pass
        finally:
            for handle in list(self.handles.values()):
                handle.cancel("the WebSocket client went away")
            for task in list(self.tasks):
                task.cancel()
            for session in list(self.lives.values()):
                await self.engine.close_live(session)

    async def dispatch(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await self.send(error_envelope("", InvalidArgument("frame", "send binary frames")))
            return
        try:
            envelope = env_pb.Envelope.FromString(data)
        except DecodeError:
            await self.send(error_envelope("", InvalidArgument("frame", "not an Envelope")))
            return
        rid = envelope.request_id
        kind = envelope.WhichOneof("body")
        try:
            await self.handle(rid, kind, envelope)
        except PixelKilnError as exc:
            await self.send(error_envelope(rid, exc))

    async def handle(self, rid: str, kind: str | None, envelope: env_pb.Envelope) -> None:
        engine = self.engine
        if kind == "generate":
            if rid in self.handles:
                raise InvalidArgument("request_id", f"{rid!r} is already running")
            handle = await engine.submit(
                convert.request_from_pb(envelope.generate), client_id=self.client_id
            )
            self.handles[rid] = handle
            self.spawn(self.stream_events(rid, handle))
        elif kind == "cancel":
            target = envelope.cancel.request_id or rid
            running = self.handles.get(target)
            if running is not None:
                running.cancel("cancelled by the client")
                cancelled = True
            else:
                cancelled = engine.cancel(target)
            await self.send(
                env_pb.Envelope(
                    request_id=rid, cancel_response=gen_pb.CancelResponse(cancelled=cancelled)
                )
            )
        elif kind == "live_input":
            session = self.lives.get(rid)
            if session is None:
                session = engine.open_live(self.client_id)
                self.lives[rid] = session
                self.spawn(self.stream_frames(rid, session))
            session.push(convert.live_input_from_pb(envelope.live_input))
        elif kind == "live_end":
            session = self.lives.get(rid)
            if session is None:
                raise NotFound(f"no live session {rid!r} on this connection")
            session.end_input()
        elif kind == "list_models":
            response = models_pb.ListModelsResponse(
                models=[convert.model_info_to_pb(m) for m in engine.models()],
                default_model=engine.config.default_model,
            )
            await self.send(env_pb.Envelope(request_id=rid, list_models_response=response))
        elif kind == "status":
            status = convert.status_to_pb(engine.status())
            await self.send(env_pb.Envelope(request_id=rid, status_response=status))
        elif kind == "load_model":
            info = await engine.load(envelope.load_model.name)
            model_info = convert.model_info_to_pb(info)
            await self.send(env_pb.Envelope(request_id=rid, model_info=model_info))
        elif kind == "unload_model":
            response = convert.unload_to_pb(await engine.unload_model(envelope.unload_model.name))
            await self.send(env_pb.Envelope(request_id=rid, unload_model_response=response))
        else:
            raise InvalidArgument("body", f"cannot handle {kind or 'an empty envelope'} here")

    async def stream_events(self, rid: str, handle: JobHandle) -> None:
        try:
            async for event in handle:
                if isinstance(event, Failed):
                    await self.send(error_envelope(rid, event.error))
                    return
                await self.send(
                    env_pb.Envelope(request_id=rid, event=convert.event_to_pb(handle.id, event))
                )
        finally:
            self.handles.pop(rid, None)

    async def stream_frames(self, rid: str, session: LiveSession) -> None:
        try:
            async for frame in session.frames():
                await self.send(
                    env_pb.Envelope(request_id=rid, live_frame=convert.live_frame_to_pb(frame))
                )
            await self.send(env_pb.Envelope(request_id=rid, live_end=env_pb.LiveEnd()))
        except PixelKilnError as exc:
            await self.send(error_envelope(rid, exc))
        finally:
            self.lives.pop(rid, None)
            await self.engine.close_live(session)


class WebSocketCarrier:
    """Serves ``ws://HOST:PORT/v1``; frames up to ``max_size`` bytes (larger ones close the
    connection with code 1009). Compression is off: images are compressed already."""

    def __init__(self, engine: Engine, host: str, port: int, max_size: int) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.max_size = max_size
        self._server: Server | None = None

    async def start(self) -> None:
        self._server = await serve(
            self._handle, self.host, self.port, max_size=self.max_size, compression=None
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.request is None or ws.request.path != PATH:
            await ws.close(1008, f"unknown path; use {PATH}")
            return
        await _Connection(self.engine, ws).run()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
