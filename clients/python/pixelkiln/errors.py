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


# grpcio's words when nothing listens at the address (as opposed to a daemon answering
# UNAVAILABLE, say for a runner that died).
_NO_LISTENER = (
    "failed to connect",
    "connection refused",
    "dns resolution failed",
    "errors resolving",
    "address lookup failed",
)
NO_DAEMON_HINT = (
    "no PixelKiln daemon answered: start one with `pixelkiln serve`, or check the address"
)


def no_daemon(err: PixelKilnError) -> bool:
    """No daemon answered at all (as opposed to a daemon that answered UNAVAILABLE)."""
    text = err.message.lower()
    return err.code is grpc.StatusCode.UNAVAILABLE and any(hint in text for hint in _NO_LISTENER)


def from_rpc_error(err: grpc.RpcError) -> PixelKilnError:
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    error = _BY_CODE.get(code, PixelKilnError)(code, details or code.name)
    if no_daemon(error):
        error = type(error)(code, f"{NO_DAEMON_HINT} ({error.message})")
    return error
