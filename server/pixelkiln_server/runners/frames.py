"""Length-prefixed frames on a pipe, read by the event loop itself (POSIX).

A runner child writes each port message as an 8-byte little-endian length and the message's
bytes; the front's event loop reads them as they arrive (``loop.add_reader`` on the
non-blocking read end) instead of a reader thread handing each message to the loop. That is
one wake-up per message where the thread took two, at the moment (a result, right after the
model) when the front and the client wait for the same cores as the runner.

The loop never blocks on the pipe: a frame that arrives in pieces (a 1 MiB image) is
gathered over several callbacks, straight into its own buffer. Windows' proactor loop cannot
watch a pipe this way; there the reader thread stays (``transports.ProcessTransport``).
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Callable

HEADER = struct.Struct("<Q")
# Nothing the port carries comes near this: a larger length is a garbled stream.
MAX_FRAME = 1 << 34


class GarbledFrame(ValueError):
    pass


def frame_writer(fd: int) -> Callable[[bytes], None]:
    """``send(data)`` for a blocking pipe's write end: one frame per call, without copying
    ``data`` (callers serialise their calls; RunnerHost.send holds a lock)."""

    def send(data: bytes) -> None:
        parts: list[memoryview] = [memoryview(HEADER.pack(len(data))), memoryview(data)]
        while parts:
            written = os.writev(fd, parts)
            while parts and written >= len(parts[0]):
                written -= len(parts[0])
                parts.pop(0)
            if parts and written:
                parts[0] = parts[0][written:]

    return send


class LoopReader:
    """Reads frames from ``fd`` on ``loop``: ``on_frame(bytes)`` per frame, then ``on_end()``
    once, at end of file or on an error (``on_frame`` raising GarbledFrame included). Owns
    ``fd`` from then on: it is closed when reading ends or on ``close()``."""

    def __init__(
        self,
        fd: int,
        loop: asyncio.AbstractEventLoop,
        on_frame: Callable[[bytearray], None],
        on_end: Callable[[], None],
    ) -> None:
        self._fd: int | None = fd
        self._loop = loop
        self._on_frame = on_frame
        self._on_end = on_end
        self._head = bytearray()
        self._body: bytearray | None = None
        self._got = 0
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            while self._fd is not None and self._read_some():
                pass
        except BlockingIOError:
            return
        except (OSError, GarbledFrame):
            self.close()

    def _read_some(self) -> bool:
        """Read what one call can; False once the pipe is at its end (then closed)."""
        assert self._fd is not None
        if self._body is None:
            chunk = os.read(self._fd, HEADER.size - len(self._head))
            if not chunk:
                self.close()
                return False
            self._head += chunk
            if len(self._head) < HEADER.size:
                return True
            (size,) = HEADER.unpack(self._head)
            self._head.clear()
            if size > MAX_FRAME:
                raise GarbledFrame(f"a frame of {size} bytes")
            self._body, self._got = bytearray(size), 0
        else:
            got = os.readv(self._fd, [memoryview(self._body)[self._got :]])
            if not got:
                self.close()
                return False
            self._got += got
        if self._got == len(self._body):
            body, self._body = self._body, None
            self._on_frame(body)
        return True

    def close(self) -> None:
        """Stop reading (on the loop's thread), close the pipe and report the end once."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self._loop.remove_reader(fd)
        os.close(fd)
        self._on_end()
