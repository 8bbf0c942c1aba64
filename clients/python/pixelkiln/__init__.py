"""PixelKiln Python client: generate textures and sprites from a running PixelKiln daemon.

from pixelkiln import Client

with Client() as client:                      # 127.0.0.1:50051
    result = client.generate("red brick wall", seed=1, on_event=print)
    result.image.save("brick.png")
"""

from .aio import AsyncClient
from .client import Client, GenerationStream
from .errors import (
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    PixelKilnError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from .events import (
    Accepted,
    Event,
    Image,
    LiveFrame,
    Preview,
    Progress,
    Queued,
    Result,
    ResultImage,
)
from .live import AsyncLiveSession, LiveSession

__version__ = "0.1.0"

__all__ = [
    "Accepted",
    "AsyncClient",
    "AsyncLiveSession",
    "CancelledError",
    "Client",
    "DeadlineExceededError",
    "Event",
    "FailedPreconditionError",
    "GenerationStream",
    "Image",
    "InvalidArgumentError",
    "LiveFrame",
    "LiveSession",
    "NotFoundError",
    "PermissionDeniedError",
    "PixelKilnError",
    "Preview",
    "Progress",
    "Queued",
    "ResourceExhaustedError",
    "Result",
    "ResultImage",
    "UnauthenticatedError",
    "UnavailableError",
]
