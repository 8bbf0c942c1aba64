"""One record per finished request, whatever the carrier: the access log and the metrics read it.

:class:`~.operations.Operations` fills a :class:`RequestRecord` as a request goes (the model,
size and steps it resolved to, the result's timings) and hands it to its listeners once, when
the request ends: with a result, an error, a cancel, or the client going away. The access log
is one line per record on the ``pixelkiln.access`` logger; with ``--log-format json`` its fields
are keys of the line's JSON object (logsetup.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from ..errors import Code, PixelKilnError
from ..types import Timings

access_log = logging.getLogger("pixelkiln.access")


def code_of(exc: BaseException | None) -> str:
    """The status code a client sees for ``exc`` (None: OK), as operations.to_error maps it."""
    if exc is None:
        return "OK"
    if isinstance(exc, PixelKilnError):
        return exc.code.value
    if isinstance(exc, asyncio.CancelledError):
        return Code.CANCELLED.value
    return Code.INTERNAL.value


@dataclass
class RequestRecord:
    """One request as the access log shows it. ``transport``: grpc or websocket."""

    method: str
    transport: str
    client_id: str
    peer: str
    request_id: str = ""
    client_request_id: str = ""
    model: str = ""
    width: int = 0
    height: int = 0
    steps: int = 0
    priority: str = ""
    code: str = ""
    message: str = ""
    timings: Timings | None = None
    # Live sessions: frames generated for the client.
    frames: int = 0
    started: float = field(default_factory=time.perf_counter)
    duration_ms: float = 0.0

    @property
    def done(self) -> bool:
        return bool(self.code)

    def finish(self, exc: BaseException | None) -> None:
        self.code = code_of(exc)
        if isinstance(exc, PixelKilnError):
            self.message = exc.message
        self.duration_ms = (time.perf_counter() - self.started) * 1000.0

    def fields(self) -> dict[str, object]:
        """The log line's fields (JSON keys with --log-format json)."""
        out: dict[str, object] = {
            "method": self.method,
            "transport": self.transport,
            "status": self.code,
            "request_id": self.request_id,
            "client_id": self.client_id,
            "peer": self.peer,
        }
        if self.client_request_id:
            out["client_request_id"] = self.client_request_id
        if self.model:
            out["model"] = self.model
        if self.width or self.height:
            out["width"], out["height"] = self.width, self.height
        if self.steps:
            out["steps"] = self.steps
        if self.priority:
            out["priority"] = self.priority
        if self.method == "Live":
            out["frames"] = self.frames
        if self.timings is not None:
            t = self.timings
            out["queue_ms"] = round(t.queue_ms, 3)
            out["model_ms"] = round(t.model_ms, 3)
            out["encode_ms"] = round(t.encode_ms, 3)
            out["total_ms"] = round(t.total_ms, 3)
        out["duration_ms"] = round(self.duration_ms, 3)
        if self.message:
            out["error"] = self.message
        return out


def log_access(record: RequestRecord) -> None:
    """The access-log line: ``Generate OK id=... client=... model=tiny-random 64x64 ...``."""
    fields = record.fields()
    words = [f"{record.method} {record.code}"]
    for key, value in fields.items():
        if key in ("method", "status", "width", "height", "error") or value == "":
            continue
        words.append(f"{key}={value}")
        sized = record.width or record.height
        if sized and (key == "model" or (key == "steps" and "model" not in fields)):
            words.append(f"size={record.width}x{record.height}")
    if record.message:
        words.append(f"error={record.message!r}")
    access_log.info(" ".join(words), extra={"access": fields})
