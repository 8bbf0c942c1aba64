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
    InvalidArgumentError,
    NotFoundError,
    PixelKilnError,
    ResourceExhaustedError,
    UnavailableError,
)
from .events import Accepted, Event, Image, Preview, Progress, Queued, Result, ResultImage

__version__ = "0.1.0"

__all__ = [
    "Accepted",
    "AsyncClient",
    "CancelledError",
    "Client",
    "Event",
    "GenerationStream",
    "Image",
    "InvalidArgumentError",
    "NotFoundError",
    "PixelKilnError",
    "Preview",
    "Progress",
    "Queued",
    "ResourceExhaustedError",
    "Result",
    "ResultImage",
    "UnavailableError",
]
