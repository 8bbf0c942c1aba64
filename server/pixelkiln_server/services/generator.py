"""The Generator service: Generate streams one job's events; Cancel cancels by id; Live."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

import grpc

from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import generator_pb2_grpc as gen_grpc

from .. import convert
from ..errors import Cancelled, DeadlineExceeded, PixelKilnError
from ..tracepoints import mark
from ..types import Failed, Result
from .identity import CLIENT_ID_HEADER, Gatekeeper
from .operations import Operations
from .status import streaming, unary

__all__ = ["CLIENT_ID_HEADER", "GeneratorService"]


def _why_gone(context: grpc.aio.ServicerContext) -> PixelKilnError:
    """What the records say of a call that ended before its job did."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return DeadlineExceeded("the client's deadline passed")
    return Cancelled("the client went away")


class GeneratorService(gen_grpc.GeneratorServicer):
    def __init__(self, ops: Operations, gate: Gatekeeper) -> None:
        self.ops = ops
        self.gate = gate

    @streaming
    async def Generate(  # noqa: N802 - gRPC method name
        self, request: gen_pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gen_pb.GenerateEvent]:
        mark("front.received")
        caller = self.gate.grpc_caller(context)
        with self.ops.converting(caller, "Generate"):
            converted = convert.request_from_pb(request)
        job = await self.ops.generate(caller, converted)
        job.why_gone = functools.partial(_why_gone, context)
        mark("front.queued")
        finished = False
        try:
            async for event in job:
                if isinstance(event, Failed):
                    finished = True
                    raise event.error
                message = convert.event_to_pb(job.id, event)
                if isinstance(event, Result):
                    mark("front.to_client")
                yield message
            finished = True
        finally:
            if not finished:
                # The client went away, its deadline passed, or the server is stopping.
                job.cancel("the client went away or its deadline passed")

    @streaming
    async def Live(  # noqa: N802
        self, request_iterator: AsyncIterator[gen_pb.LiveInput], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gen_pb.LiveFrame]:
        session = self.ops.open_live(self.gate.grpc_caller(context))

        async def read() -> None:
            try:
                async for msg in request_iterator:
                    self.ops.push_live(session, functools.partial(convert.live_input_from_pb, msg))
            finally:
                # Also when reading fails (an undecodable input aborts the call with
                # INVALID_ARGUMENT, services/decoding.py): the session ends, never waits idle.
                session.end_input()

        reader = asyncio.create_task(read())
        try:
            async for frame in session.frames():
                yield convert.live_frame_to_pb(frame)
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
        finally:
            reader.cancel()
            await self.ops.close_live(session)

    @unary
    async def Cancel(  # noqa: N802
        self, request: gen_pb.CancelRequest, context: grpc.aio.ServicerContext
    ) -> gen_pb.CancelResponse:
        cancelled = self.ops.cancel(self.gate.grpc_caller(context), request.request_id)
        return gen_pb.CancelResponse(cancelled=cancelled)
