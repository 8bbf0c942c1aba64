"""Client-side errors: every failed call raises PixelKilnError with the gRPC status code."""

from __future__ import annotations

import grpc


class PixelKilnError(Exception):
    """A call failed. ``code`` is the gRPC status code; ``message`` the daemon's explanation,
    which names the offending field and its limit for INVALID_ARGUMENT."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidArgumentError(PixelKilnError):
    pass


class NotFoundError(PixelKilnError):
    pass


class ResourceExhaustedError(PixelKilnError):
    pass


class CancelledError(PixelKilnError):
    pass


class UnavailableError(PixelKilnError):
    pass


_BY_CODE: dict[grpc.StatusCode, type[PixelKilnError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


def from_rpc_error(err: grpc.RpcError) -> PixelKilnError:
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    return _BY_CODE.get(code, PixelKilnError)(code, details or code.name)
