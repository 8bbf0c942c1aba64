"""One record per finished request, whatever the carrier: the access log and the metrics read it.

:class:`~.operations.Operations` fills a :class:`RequestRecord` as a request goes (the model,
size and steps it resolved to, the result's timings) and hands it to its listeners once, when
the request ends: with a result, an error, a cancel, or the client going away. The access log
is one line per record on the ``pixelkiln.access`` logger; with ``--log-format json`` its fields
are keys of the line's JSON object (logsetup.py).

Values come from callers (a client_request_id, a model name, a Cancel's request id), so the
line never shows them raw: each is cut to :data:`MAX_VALUE_CHARS` characters, and in the text
line a value with spaces, quotes, ``=`` or unprintable characters is a quoted JSON-style string
(a newline in a value cannot start a line of its own; a request id of megabytes is not logged).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from ..errors import Code, PixelKilnError
from ..types import Timings

access_log = logging.getLogger("pixelkiln.access")
# The most characters of one value an access-log line shows.
MAX_VALUE_CHARS = 200
_NEEDS_QUOTES = frozenset('"=\\')


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


def clip(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``value`` cut to ``limit`` characters, saying how long it was: ``abc…(5000 chars)``."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}…({len(value)} chars)"


def quote(text: str) -> str:
    """``text`` as a JSON string on one line, unprintable characters (line and paragraph
    separators, DEL, C1 controls...) escaped as ``\\uXXXX`` too."""
    return "".join(
        c if c.isprintable() else json.dumps(c)[1:-1] for c in json.dumps(text, ensure_ascii=False)
    )


def text_value(value: object) -> str:
    """One value as the text line shows it: clipped, and quoted unless it is one plain word."""
    text = clip(str(value))
    if not text or any(c in _NEEDS_QUOTES or c.isspace() or not c.isprintable() for c in text):
        return quote(text)
    return text


def shown_fields(fields: dict[str, object]) -> dict[str, object]:
    """The fields with every string value clipped (the JSON line's keys)."""
    return {k: clip(v) if isinstance(v, str) else v for k, v in fields.items()}


def format_access(record: RequestRecord) -> tuple[str, dict[str, object]]:
    """The access-log line and the fields the JSON format adds as keys, both with the
    caller's values clipped; the line holds no raw newline, quote or control character."""
    fields = record.fields()
    words = [f"{text_value(record.method)} {text_value(record.code)}"]
    for key, value in fields.items():
        if key in ("method", "status", "width", "height", "error") or value == "":
            continue
        words.append(f"{key}={text_value(value)}")
        sized = record.width or record.height
        if sized and (key == "model" or (key == "steps" and "model" not in fields)):
            words.append(f"size={record.width}x{record.height}")
    if record.message:
        words.append(f"error={quote(clip(record.message))}")
    return " ".join(words), shown_fields(fields)


def log_access(record: RequestRecord) -> None:
    """The access-log line: ``Generate OK id=... client=... model=tiny-random 64x64 ...``."""
    line, fields = format_access(record)
    access_log.info(line, extra={"access": fields})
