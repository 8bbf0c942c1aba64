"""The one place that maps domain errors to gRPC status codes.

Every RPC method is wrapped by :func:`unary` or :func:`streaming`; the exception becomes a
status through ``operations.to_error``, the mapping the WebSocket carrier uses too: a
PixelKilnError keeps its code and message; anything else is logged with its traceback and
reaches the client as INTERNAL with a generic message (never the stack trace).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from ..errors import Code, PixelKilnError
from .operations import to_error

log = logging.getLogger(__name__)

GRPC_CODES: dict[Code, grpc.StatusCode] = {code: grpc.StatusCode[code.value] for code in Code}

T = TypeVar("T")


def grpc_code(exc: PixelKilnError) -> grpc.StatusCode:
    return GRPC_CODES[exc.code]


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    error = to_error(exc, method)
    await context.abort(grpc_code(error), error.message)


def unary(
    fn: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]]:
    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
            await _abort(context, exc, fn.__name__)
            raise AssertionError("unreachable") from None

    return wrapper


def streaming(
    fn: Callable[[Any, Any, grpc.aio.ServicerContext], AsyncIterator[T]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], AsyncIterator[T]]:
    @functools.wraps(fn)
    async def wrapper(
        self: Any, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[T]:
        try:
            async for item in fn(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
            await _abort(context, exc, fn.__name__)

    return wrapper
