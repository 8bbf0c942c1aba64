"""The Generator service: Generate streams one job's events; Cancel cancels by id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import generator_pb2_grpc as gen_grpc

from .. import convert
from ..engine.core import Engine
from ..types import Failed
from .status import streaming, unary

CLIENT_ID_HEADER = "pixelkiln-client-id"


def client_id(context: grpc.aio.ServicerContext) -> str:
    """Who is asking, for fairness: the client's id header (one per Client object; channels
    to the same address share connections, so the peer address alone cannot tell two
    clients apart), else the peer."""
    for key, value in context.invocation_metadata() or ():
        if key == CLIENT_ID_HEADER:
            return f"id:{value}"
    return str(context.peer())


class GeneratorService(gen_grpc.GeneratorServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @streaming
    async def Generate(  # noqa: N802 - gRPC method name
        self, request: gen_pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gen_pb.GenerateEvent]:
        handle = await self.engine.submit(convert.request_from_pb(request), client_id(context))
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

    @streaming
    async def Live(  # noqa: N802
        self, request_iterator: AsyncIterator[gen_pb.LiveInput], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gen_pb.LiveFrame]:
        session = self.engine.open_live(client_id(context))

        async def read() -> None:
            async for msg in request_iterator:
                session.push(convert.live_input_from_pb(msg))
            session.end_input()

        reader = asyncio.create_task(read())
        try:
            async for frame in session.frames():
                yield convert.live_frame_to_pb(frame)
        finally:
            reader.cancel()
            await self.engine.close_live(session)

    @unary
    async def Cancel(  # noqa: N802
        self, request: gen_pb.CancelRequest, context: grpc.aio.ServicerContext
    ) -> gen_pb.CancelResponse:
        return gen_pb.CancelResponse(cancelled=self.engine.cancel(request.request_id))
