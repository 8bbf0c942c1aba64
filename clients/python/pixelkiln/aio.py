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
    default_address,
    load_recipe,
    one_of_batch,
)
from .errors import PixelKilnError, from_rpc_error
from .events import Event, Result, event_from_pb
from .live import AsyncLiveSession
from .v1 import generator_pb2 as gen_pb
from .v1 import generator_pb2_grpc as gen_grpc
from .v1 import models_pb2 as models_pb
from .v1 import models_pb2_grpc as models_grpc


class AsyncClient:
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
        self.address = address = address or default_address()
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex
        security = Security.resolve(token, tls, root_certificates, client_cert, client_key)
        self._metadata = security.metadata(CLIENT_ID_HEADER, self.client_id)
        self._channel = security.aio_channel(address, channel_options(max_message_bytes))
        self._gen = gen_grpc.GeneratorStub(self._channel)
        self._models = models_grpc.ModelsStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _unary(self, method: Callable[..., Any], request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

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
            raise from_rpc_error(err) from None
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
        and ``async for frame in s``."""
        return AsyncLiveSession(self._gen, settings, self.timeout, self._metadata)

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
