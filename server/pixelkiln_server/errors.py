"""Domain errors. Each carries the status code it maps to; the service layer does the mapping.

Codes are named like gRPC's so the mapping is one lookup, but nothing here imports grpc.
"""

from __future__ import annotations

from enum import Enum


class Code(str, Enum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    CANCELLED = "CANCELLED"
    UNAVAILABLE = "UNAVAILABLE"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    INTERNAL = "INTERNAL"


class PixelKilnError(Exception):
    """Base of every error a client may see. ``message`` is safe to send to a client."""

    code: Code = Code.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(PixelKilnError):
    code = Code.INVALID_ARGUMENT

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFound(PixelKilnError):
    code = Code.NOT_FOUND


class ResourceExhausted(PixelKilnError):
    code = Code.RESOURCE_EXHAUSTED


class Cancelled(PixelKilnError):
    code = Code.CANCELLED


class Unavailable(PixelKilnError):
    code = Code.UNAVAILABLE


class DeadlineExceeded(PixelKilnError):
    code = Code.DEADLINE_EXCEEDED


class FailedPrecondition(PixelKilnError):
    code = Code.FAILED_PRECONDITION


class Unauthenticated(PixelKilnError):
    code = Code.UNAUTHENTICATED


class PermissionDenied(PixelKilnError):
    code = Code.PERMISSION_DENIED


class Internal(PixelKilnError):
    code = Code.INTERNAL
