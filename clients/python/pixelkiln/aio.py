"""asyncio client, same surface as :class:`pixelkiln.Client`.

async with AsyncClient() as client:
    async for event in client.stream("red brick wall", preview_every=1):
        print(event)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from . import _replay, _request
from ._channel import PemSource, Security
from .client import (
    CLIENT_ID_HEADER,
    MAX_MESSAGE_BYTES,
    STARTING,
    channel_options,
    load_recipe,
    one_of_batch,
    resolve_address,
)
from .errors import PixelKilnError, from_rpc_error
from .events import Event, Result, event_from_pb
from .live import AsyncLiveSession
from .v1 import generator_pb2 as gen_pb
from .v1 import generator_pb2_grpc as gen_grpc
from .v1 import models_pb2 as models_pb
from .v1 import models_pb2_grpc as models_grpc


class AsyncClient:
    """The asyncio client. It may be made anywhere (at module level too): its gRPC channel is
    opened by the first call, on the event loop running it, and opened again by a call on
    another loop (a second ``asyncio.run``); a channel of grpc.aio serves one loop only."""

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        token: str | None = None,
        tls: bool | None = None,
        root_certificates: PemSource = None,
        client_cert: PemSource = None,
        client_key: PemSource = None,
    ) -> None:
        """Address and security arguments as :class:`pixelkiln.Client`'s (address, else
        $PIXELKILN_ADDRESS, else 127.0.0.1:50051; token, TLS roots, client cert)."""
        self.address = resolve_address(address)
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex
        self._security = Security.resolve(token, tls, root_certificates, client_cert, client_key)
        self._metadata = self._security.metadata(CLIENT_ID_HEADER, self.client_id)
        self._options = channel_options(max_message_bytes)
        self._channel: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stubs: tuple[Any, Any, Any] = (None, None, None)

    def _connected(self) -> tuple[Any, Any, Any]:
        """The stubs (Generator, Models, Health) on a channel of the running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "AsyncClient calls need a running asyncio event loop (call them from "
                "async code, e.g. under asyncio.run); for blocking calls use pixelkiln.Client"
            ) from None
        if self._channel is None or self._loop is not loop:
            # A channel of a loop that ended (an earlier asyncio.run) cannot be closed from
            # this one; it is dropped, and one is opened on this loop.
            self._channel = self._security.aio_channel(self.address, self._options)
            self._loop = loop
            self._stubs = (
                gen_grpc.GeneratorStub(self._channel),
                models_grpc.ModelsStub(self._channel),
                health_pb2_grpc.HealthStub(self._channel),
            )
        return self._stubs

    @property
    def _gen(self) -> Any:
        return self._connected()[0]

    @property
    def _models(self) -> Any:
        return self._connected()[1]

    @property
    def _health(self) -> Any:
        return self._connected()[2]

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        channel, loop = self._channel, self._loop
        self._channel, self._loop, self._stubs = None, None, (None, None, None)
        if channel is not None and loop is asyncio.get_running_loop():
            await channel.close()

    async def _unary(self, method: Callable[..., Any], request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err, self.timeout, "AsyncClient") from None

    async def stream(self, prompt: str = "", **options: Any) -> AsyncIterator[Event]:
        """Yield Accepted/Queued/Progress/Preview/Result. Breaking out of the loop (or
        cancelling the task) cancels the request on the daemon."""
        _request.check_keywords("stream", options)
        request = _request.build_request(prompt, **options)
        call = self._gen.Generate(request, timeout=self.timeout, metadata=self._metadata)
        try:
            async for msg in call:
                yield event_from_pb(msg)
        except grpc.RpcError as err:
            raise from_rpc_error(err, self.timeout, "AsyncClient") from None
        finally:
            call.cancel()

    async def generate(
        self, prompt: str = "", *, on_event: Callable[[Event], None] | None = None, **options: Any
    ) -> Result:
        """As ``Client.generate``: without ``on_event``, the Result alone."""
        _request.check_keywords("generate", options, extra=("on_event",))
        if on_event is None:
            _request.quiet_defaults(options)
        async for event in self.stream(prompt, **options):
            if on_event is not None:
                on_event(event)
            if isinstance(event, Result):
                return event
        raise PixelKilnError(grpc.StatusCode.UNKNOWN, "stream ended without a result")

    async def replay(self, recipe: Any, **overrides: Any) -> Result:
        """As :meth:`pixelkiln.Client.replay`."""
        data = load_recipe(recipe)
        index = _replay.image_index(data)
        result = await self.generate(**_replay.replay_request(data, overrides))
        return result if index is None else one_of_batch(result, index)

    def live(self, **settings: Any) -> AsyncLiveSession:
        """Open a live session: ``async with client.live(prompt=...) as s: await s.send(img)``
        and ``async for frame in s``. The client's ``timeout`` does not apply to it."""
        return AsyncLiveSession(self._gen, settings, None, self._metadata)

    async def cancel(self, request_id: str) -> bool:
        resp = await self._unary(self._gen.Cancel, gen_pb.CancelRequest(request_id=request_id))
        return bool(resp.cancelled)

    async def models(self) -> list[models_pb.ModelInfo]:
        return list((await self._unary(self._models.List, models_pb.ListModelsRequest())).models)

    async def catalogue(self) -> models_pb.ListModelsResponse:
        """The models (``.models``) and the name of the daemon's default (``.default_model``)."""
        return await self._unary(self._models.List, models_pb.ListModelsRequest())

    async def load(self, name: str) -> models_pb.ModelInfo:
        return await self._unary(self._models.Load, models_pb.LoadModelRequest(name=name))

    async def unload(self, name: str) -> bool:
        resp = await self._unary(self._models.Unload, models_pb.UnloadModelRequest(name=name))
        return bool(resp.unloaded)

    async def status(self) -> models_pb.StatusResponse:
        return await self._unary(self._models.Status, models_pb.StatusRequest())

    async def health(self, service: str = "") -> str:
        resp = await self._unary(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))

    async def wait_ready(self, timeout: float = 60.0, interval: float = 0.1) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if await self.health() == "SERVING":
                    return
            except PixelKilnError as err:
                if err.code not in STARTING:
                    raise
            if time.monotonic() > deadline:
                raise PixelKilnError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"daemon at {self.address} not ready after {timeout:.0f} s",
                )
            await asyncio.sleep(interval)
