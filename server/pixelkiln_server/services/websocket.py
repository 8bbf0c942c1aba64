"""The WebSocket carrier: the same contract for engines without HTTP/2 (Unity, Godot).

Every binary frame is one ``pixelkiln.v1.Envelope`` (see proto/pixelkiln/v1/envelope.proto).
It calls the same :class:`~.operations.Operations` as the gRPC services, so every rule, code
and message is the same; a failure answers that request's ``error`` envelope and never ends
the connection or the other requests on it.

The handshake is checked before the connection opens: a browser's ``Origin`` not allowed by
``--ws-allow-origin`` answers HTTP 403, and with tokens on, a missing or unknown
``authorization: Bearer`` header answers HTTP 401; the response body starts with the gRPC
code name (``PERMISSION_DENIED: ...`` / ``UNAUTHENTICATED: ...``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from pixelkiln.v1 import envelope_pb2 as env_pb
from pixelkiln.v1 import generator_pb2 as gen_pb

from .. import convert
from ..engine.live import LiveSession
from ..errors import InvalidArgument, NotFound, PixelKilnError
from ..tracepoints import mark
from ..types import Failed, Result
from ..validation import MAX_CLIENT_ID_CHARS
from .identity import Gatekeeper, one_value
from .operations import Caller, Operations, OwnedJob, to_error
from .status import grpc_code

log = logging.getLogger(__name__)

PATH = "/v1"
# Envelope body -> the operation's name, the same as the gRPC method's (logs, INTERNAL text).
OPERATION = {
    "generate": "Generate",
    "cancel": "Cancel",
    "live_input": "Live",
    "live_end": "Live",
    "list_models": "List",
    "load_model": "Load",
    "unload_model": "Unload",
    "status": "Status",
}
MAX_CONNECTIONS_PER_CLIENT = 16
HTTP_STATUS = {
    "UNAUTHENTICATED": HTTPStatus.UNAUTHORIZED,
    "PERMISSION_DENIED": HTTPStatus.FORBIDDEN,
}


def error_envelope(request_id: str, exc: BaseException, operation: str = "") -> env_pb.Envelope:
    error = to_error(exc, operation or "WebSocket", request_id)
    code = grpc_code(error)
    return env_pb.Envelope(
        request_id=request_id,
        error=env_pb.Error(code=code.value[0], code_name=code.name, message=error.message),
    )


class _Connection:
    """One WebSocket client: its running generations and live sessions, by request id."""

    def __init__(
        self, ops: Operations, ws: ServerConnection, caller: Caller, stall_s: float
    ) -> None:
        self.ops = ops
        self.ws = ws
        self.caller = caller
        self.stall_s = stall_s
        self.queued = 0  # bytes of envelopes handed to the connection
        self.jobs: dict[str, OwnedJob] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.lives: dict[str, LiveSession] = {}

    async def send(self, envelope: env_pb.Envelope) -> None:
        """Send one envelope. A client that takes none of it for ``stall_s`` seconds stopped
        reading: it is disconnected, and its requests end as if it had gone, instead of
        holding their results (and its job slots) for as long as it stays connected. A slow
        client that keeps taking bytes is not (a large image over a slow link takes as long
        as it takes). websockets' keepalive cannot tell: its ping waits behind the same full
        buffer."""
        sending = asyncio.ensure_future(self._write(envelope.SerializeToString()))
        try:
            await asyncio.sleep(0)  # the write's first step runs: its bytes are in the buffer
            await self._until_sent(sending)
        except ConnectionClosed:
            pass
        finally:
            sending.cancel()  # nothing once it is done; else the connection is gone

    async def _write(self, data: bytes) -> None:
        # websockets puts a message's frame in the connection's buffer before its first await,
        # so ``queued`` and the buffer change together (see _sent).
        self.queued += len(data)
        await self.ws.send(data)

    def _sent(self) -> int:
        """About how many bytes have left for the client: those handed over minus those still
        in the connection's buffer (which every sending task shares)."""
        return self.queued - self.ws.transport.get_write_buffer_size()

    async def _until_sent(self, sending: asyncio.Future[None]) -> None:
        sent = self._sent()
        while not (await asyncio.wait({sending}, timeout=self.stall_s or None))[0]:
            now = self._sent()
            if now <= sent:
                log.warning(
                    "WebSocket client %s took nothing for %g s (it stopped reading): disconnected",
                    self.caller.peer,
                    self.stall_s,
                )
                self.ws.transport.abort()
                return
            sent = now
        sending.result()

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        try:
            async for data in self.ws:
                if self.ws.state is not State.OPEN:
                    break  # aborted (it stopped reading): what it queued before goes unread
                await self.dispatch(data)
        except ConnectionClosed:
            pass
        finally:
            for job in list(self.jobs.values()):
                job.cancel("the WebSocket client went away")
            for task in list(self.tasks):
                task.cancel()
            for session in list(self.lives.values()):
                await self.ops.close_live(session)

    async def dispatch(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await self.send(error_envelope("", InvalidArgument("frame", "send binary frames")))
            return
        try:
            envelope = env_pb.Envelope.FromString(data)
        except Exception:  # noqa: BLE001 - any undecodable frame is the caller's mistake
            await self.send(error_envelope("", InvalidArgument("frame", "not an Envelope")))
            return
        rid = envelope.request_id
        kind = envelope.WhichOneof("body")
        if len(rid) > MAX_CLIENT_ID_CHARS:  # not echoed: the answer would be as large
            too_long = f"at most {MAX_CLIENT_ID_CHARS} characters, got {len(rid):,}"
            await self.send(error_envelope("", InvalidArgument("request_id", too_long)))
            return
        try:
            await self.handle(rid, kind, envelope)
        except Exception as exc:  # noqa: BLE001 - one request's failure, not the connection's
            await self.send(error_envelope(rid, exc, OPERATION.get(kind or "", "WebSocket")))

    async def handle(self, rid: str, kind: str | None, envelope: env_pb.Envelope) -> None:
        ops, caller = self.ops, self.caller
        if kind == "generate":
            if rid in self.jobs:
                raise InvalidArgument("request_id", f"{rid!r} is already running")
            mark("front.received")
            with ops.converting(caller, "Generate"):
                request = convert.request_from_pb(envelope.generate)
            job = await ops.generate(caller, request)
            mark("front.queued")
            self.jobs[rid] = job
            self.spawn(self.stream_events(rid, job))
        elif kind == "cancel":
            # An envelope id of this connection's generate names that job; otherwise the id is
            # a server id or client_request_id, as over gRPC.
            target = envelope.cancel.request_id or rid
            running = self.jobs.get(target)
            cancelled = ops.cancel(caller, running.id if running is not None else target)
            response = gen_pb.CancelResponse(cancelled=cancelled)
            await self.send(env_pb.Envelope(request_id=rid, cancel_response=response))
        elif kind == "live_input":
            session = self.lives.get(rid)
            if session is None:
                session = ops.open_live(caller)
                self.lives[rid] = session
                self.spawn(self.stream_frames(rid, session))
            ops.push_live(
                session, functools.partial(convert.live_input_from_pb, envelope.live_input)
            )
        elif kind == "live_end":
            session = self.lives.get(rid)
            if session is None:
                raise NotFound(f"no live session {rid!r} on this connection")
            session.end_input()
        elif kind == "list_models":
            response = convert.models_to_pb(*ops.list_models(caller))
            await self.send(env_pb.Envelope(request_id=rid, list_models_response=response))
        elif kind == "status":
            status = convert.status_to_pb(ops.status(caller))
            await self.send(env_pb.Envelope(request_id=rid, status_response=status))
        elif kind == "load_model":
            info = convert.model_info_to_pb(await ops.load(caller, envelope.load_model.name))
            await self.send(env_pb.Envelope(request_id=rid, model_info=info))
        elif kind == "unload_model":
            result = await ops.unload(caller, envelope.unload_model.name)
            response = convert.unload_to_pb(result)
            await self.send(env_pb.Envelope(request_id=rid, unload_model_response=response))
        else:
            raise InvalidArgument("body", f"cannot handle {kind or 'an empty envelope'} here")

    async def stream_events(self, rid: str, job: OwnedJob) -> None:
        try:
            async for event in job:
                if isinstance(event, Failed):
                    await self.send(error_envelope(rid, event.error, "Generate"))
                    return
                envelope = env_pb.Envelope(request_id=rid)
                # CopyFrom, not the event= keyword: that one copied the images' bytes again.
                envelope.event.CopyFrom(convert.event_to_pb(job.id, event))
                if isinstance(event, Result):
                    mark("front.to_client")
                await self.send(envelope)
        except Exception as exc:  # noqa: BLE001 - answered like over gRPC
            job.cancel("the daemon failed to deliver this request's events")
            await self.send(error_envelope(rid, exc, "Generate"))
        finally:
            self.jobs.pop(rid, None)

    async def stream_frames(self, rid: str, session: LiveSession) -> None:
        try:
            async for frame in session.frames():
                envelope = env_pb.Envelope(request_id=rid)
                convert.live_frame_to_pb(frame, into=envelope.live_frame)
                await self.send(envelope)
            await self.send(env_pb.Envelope(request_id=rid, live_end=env_pb.LiveEnd()))
        except Exception as exc:  # noqa: BLE001 - answered like over gRPC
            await self.send(error_envelope(rid, exc, "Live"))
        finally:
            self.lives.pop(rid, None)
            await self.ops.close_live(session)


class WebSocketCarrier:
    """Serves ``ws://HOST:PORT/v1`` (``wss://`` with ``ssl``); frames up to ``max_size`` bytes
    (larger ones close the connection with code 1009). Compression is off: images are
    compressed already."""

    def __init__(
        self,
        ops: Operations,
        host: str,
        port: int,
        max_size: int,
        gate: Gatekeeper | None = None,
        ssl_context: ssl.SSLContext | None = None,
        send_stall_s: float = 60.0,
    ) -> None:
        self.ops = ops
        self.send_stall_s = send_stall_s
        self.host = host
        self.port = port
        self.max_size = max_size
        self.gate = gate or Gatekeeper()
        self.ssl_context = ssl_context
        self._server: Server | None = None
        self._connections: set[_Connection] = set()

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            max_size=self.max_size,
            # Frames read ahead while one is handled: with 65 MiB frames, websockets' 16 let a
            # client that never reads make the daemon hold ~1.1 GiB per connection.
            max_queue=2,
            compression=None,
            process_request=self._check_handshake,
            ssl=self.ssl_context,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def _check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        try:
            self.gate.check_origin(one_value(request.headers.get_all("Origin"), "Origin"))
            self.gate.ws_caller(request.headers, "")
        except PixelKilnError as exc:
            log.info("WebSocket handshake refused: %s: %s", exc.code.value, exc.message)
            status = HTTP_STATUS.get(exc.code.value, HTTPStatus.BAD_REQUEST)
            return connection.respond(status, f"{exc.code.value}: {exc.message}\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.request is None or ws.request.path != PATH:
            await ws.close(1008, f"unknown path; use {PATH}")
            return
        peer = ws.remote_address
        caller = self.gate.ws_caller(ws.request.headers, f"ws:{peer[0]}:{peer[1]}" if peer else "")
        held = sum(1 for c in self._connections if c.caller.client_id == caller.client_id)
        if held >= MAX_CONNECTIONS_PER_CLIENT:  # each may hold a few frames of up to 65 MiB
            log.info("WebSocket client %s refused: %d connections open", caller.client_id, held)
            await ws.close(
                1008,
                f"RESOURCE_EXHAUSTED: {held} connections of this client are open, the most "
                "one client may hold; close one",
            )
            return
        connection = _Connection(self.ops, ws, caller, self.send_stall_s)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)

    async def stop(self, grace: float = 0.0) -> None:
        """Stop accepting; give running jobs and live sessions ``grace`` seconds (new ones are
        refused with UNAVAILABLE meanwhile), as gRPC's ``server.stop(grace)`` does; then close
        every connection, cancelling what is left."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        if grace > 0 and any(c.jobs or c.lives for c in self._connections):
            await self.ops.wait_idle(grace)
        for connection in list(self._connections):
            await connection.ws.close(1001, "the daemon is shutting down")
        await self._server.wait_closed()
