"""The Generator service: Generate streams one job's events; Cancel cancels by id."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import generator_pb2_grpc as gen_grpc

from .. import convert
from ..engine.core import Engine
from ..types import Failed
from .status import streaming, unary


class GeneratorService(gen_grpc.GeneratorServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @streaming
    async def Generate(  # noqa: N802 - gRPC method name
        self, request: gen_pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gen_pb.GenerateEvent]:
        handle = await self.engine.submit(convert.request_from_pb(request))
        finished = False
        try:
            async for event in handle:
                if isinstance(event, Failed):
                    finished = True
                    raise event.error
                yield convert.event_to_pb(handle.id, event)
            finished = True
        finally:
            if not finished:
                # The client went away, its deadline passed, or the server is stopping.
                handle.cancel("the client went away or its deadline passed")

    @unary
    async def Cancel(  # noqa: N802
        self, request: gen_pb.CancelRequest, context: grpc.aio.ServicerContext
    ) -> gen_pb.CancelResponse:
        return gen_pb.CancelResponse(cancelled=self.engine.cancel(request.request_id))
