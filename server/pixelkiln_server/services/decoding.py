"""Bytes that are not the method's protobuf message answer INVALID_ARGUMENT, on every method.

grpc.aio decodes a request with the handler's ``request_deserializer`` before (unary) or while
(streaming) the servicer runs; a ``DecodeError`` there reaches the client as ``UNKNOWN``
("Unexpected <class 'DecodeError'>") and, on a request stream, surfaces inside the servicer's
iteration. :class:`DecodeGuard` swaps every handler's deserializer for one that never raises:
undecodable bytes become an :class:`Undecodable` marker, and the wrapped handler aborts the
call with INVALID_ARGUMENT naming ``request`` and the message type. On a request stream the
abort happens where the servicer reads the next message, so a Live session ends at once
instead of waiting for its idle timeout.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc


class Undecodable:
    """Stands for a request message whose bytes could not be decoded."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _type_name(deserializer: Callable[[bytes], Any]) -> str:
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "") or "the request message")


def tolerant(deserializer: Callable[[bytes], Any], method: str) -> Callable[[bytes], Any]:
    """``deserializer`` that returns an :class:`Undecodable` instead of raising."""
    type_name = _type_name(deserializer)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - any bytes a client sends are its mistake
            detail = str(exc).rsplit(": ", 1)[-1] or type(exc).__name__
            return Undecodable(
                f"request: the {len(data)} bytes sent to {method} are not a valid {type_name} "
                f"({detail})"
            )

    return deserialize


async def _abort(context: grpc.aio.ServicerContext, bad: Undecodable) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bad.message)


def _guard_iterator(
    requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    async def checked() -> AsyncIterator[Any]:
        async for item in requests:
            if isinstance(item, Undecodable):
                await _abort(context, item)
            yield item

    return checked()


def _wrap(behavior: Any, request_streaming: bool) -> Any:
    """The same kind of callable as ``behavior`` (coroutine or async generator function), that
    aborts on an Undecodable request before ``behavior`` sees it."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if request_streaming:
                request = _guard_iterator(request, context)
            elif isinstance(request, Undecodable):
                await _abort(context, request)
            async for item in behavior(request, context):
                yield item

        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request_streaming:
            request = _guard_iterator(request, context)
        elif isinstance(request, Undecodable):
            await _abort(context, request)
        return await behavior(request, context)

    return call


_FACTORIES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def guard(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """``handler`` with a deserializer that never raises; unchanged when it has no
    deserializer or runs synchronously (not on this asyncio server)."""
    deserializer = handler.request_deserializer
    attr, factory = _FACTORIES[(handler.request_streaming, handler.response_streaming)]
    behavior = getattr(handler, attr)
    if deserializer is None or not (
        inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)
    ):
        return handler
    return factory(
        _wrap(behavior, handler.request_streaming),
        request_deserializer=tolerant(deserializer, method),
        response_serializer=handler.response_serializer,
    )


class DecodeGuard(grpc.aio.ServerInterceptor):
    """Installs :func:`guard` on every method's handler (ours, health and reflection)."""

    def __init__(self) -> None:
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._guarded.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        guarded = guard(handler, method)
        self._guarded[method] = (handler, guarded)
        return guarded
