"""Live sessions from Python: send frames at any rate, read frames for the newest input.

with client.live(prompt="mossy stone", strength=0.6) as session:
    session.send(sketch)                 # a path, PNG bytes, a PIL image or an array
    for frame in session:                # LiveFrame(seq, image, unchanged, timings, ...)
        show(frame.image)
        session.send(next_sketch, prompt="lava")   # settings persist until changed
"""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc

from ._request import ImageInput, build_live_input, check_live_settings
from .errors import from_rpc_error
from .events import LiveFrame
from .v1 import generator_pb2 as gen_pb

_CLOSE = None


class LiveSession:
    """Blocking live session (see :meth:`pixelkiln.Client.live`). ``send`` never blocks;
    iterate for frames. Leaving the ``with`` block ends the session."""

    def __init__(
        self, stub: Any, settings: dict[str, Any], timeout: float | None, metadata: Any = None
    ) -> None:
        check_live_settings(settings)  # a misspelt one is named before the stream opens
        self._inputs: queue.Queue[gen_pb.LiveInput | None] = queue.Queue()
        self._settings = settings
        self._seq = 0
        self._lock = threading.Lock()
        self._call = stub.Live(self._requests(), timeout=timeout, metadata=metadata)

    def _requests(self) -> Iterator[gen_pb.LiveInput]:
        while (item := self._inputs.get()) is not _CLOSE:
            assert item is not None
            yield item

    def send(self, image: ImageInput | None = None, **settings: Any) -> int:
        """Queue an input (and any changed settings); returns its sequence number."""
        with self._lock:
            self._seq += 1
            if self._settings:
                settings = {**self._settings, **settings}
                self._settings = {}
            self._inputs.put(build_live_input(self._seq, image, **settings))
            return self._seq

    def __iter__(self) -> Iterator[LiveFrame]:
        try:
            for msg in self._call:
                yield LiveFrame.from_pb(msg)
        except grpc.RpcError as err:
            if err.code() is not grpc.StatusCode.CANCELLED or not self._closed():
                raise from_rpc_error(err) from None

    def _closed(self) -> bool:
        return self._call.done()

    def close(self) -> None:
        """Stop sending; frames for inputs already sent still arrive."""
        self._inputs.put(_CLOSE)

    def cancel(self) -> None:
        self._inputs.put(_CLOSE)
        self._call.cancel()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class AsyncLiveSession:
    """asyncio live session (see :meth:`pixelkiln.AsyncClient.live`)."""

    def __init__(
        self, stub: Any, settings: dict[str, Any], timeout: float | None, metadata: Any = None
    ) -> None:
        check_live_settings(settings)
        self._call = stub.Live(timeout=timeout, metadata=metadata)
        self._settings = settings
        self._seq = 0

    async def send(self, image: ImageInput | None = None, **settings: Any) -> int:
        self._seq += 1
        if self._settings:
            settings = {**self._settings, **settings}
            self._settings = {}
        try:
            await self._call.write(build_live_input(self._seq, image, **settings))
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        return self._seq

    async def __aiter__(self) -> AsyncIterator[LiveFrame]:
        try:
            async for msg in self._call:
                yield LiveFrame.from_pb(msg)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    async def close(self) -> None:
        await self._call.done_writing()

    async def __aenter__(self) -> AsyncLiveSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._call.cancel()
