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


class DeadlineExceededError(PixelKilnError):
    """The call's deadline passed: the client's ``timeout=`` (the message says so), or the
    daemon's own (a live session idle for its --live-idle-timeout)."""


class FailedPreconditionError(PixelKilnError):
    pass


class UnauthenticatedError(PixelKilnError):
    """No token, or one the daemon does not know (``token=`` or PIXELKILN_TOKEN)."""


class PermissionDeniedError(PixelKilnError):
    """The token's scope does not allow the call, or the model named is not one clients may
    load (a path outside the daemon's --model-root, a hub id it may not download)."""


_BY_CODE: dict[grpc.StatusCode, type[PixelKilnError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
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


def timeout_hint(timeout: float, owner: str = "Client") -> str:
    """Said after a DEADLINE_EXCEEDED of a call made with the client's ``timeout``."""
    return f" (the client's timeout of {timeout:g} s passed; raise {owner}(timeout=...))"


def from_rpc_error(
    err: grpc.RpcError, timeout: float | None = None, owner: str = "Client"
) -> PixelKilnError:
    """``err`` as a PixelKilnError subclass. ``timeout``: the client's timeout the call was
    made with, named in the message of a DEADLINE_EXCEEDED (``owner``: the client's class)."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    message = details or code.name
    if no_daemon(PixelKilnError(code, message)):
        message = f"{NO_DAEMON_HINT} ({message})"
    elif code is grpc.StatusCode.DEADLINE_EXCEEDED and timeout:
        message += timeout_hint(timeout, owner)
    return _BY_CODE.get(code, PixelKilnError)(code, message)
