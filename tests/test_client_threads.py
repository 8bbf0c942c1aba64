"""The blocking Python client reads a Generate stream on the thread that iterates it
(grpcio's SingleThreadedUnaryStream): a cancel from another thread (an editor's UI thread
while a worker thread reads) must still end the iteration, before and after the request id
is known, and an ordinary generate must still work."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest

from pixelkiln import Client, PixelKilnError, Progress, Result

SLOW = {"steps": 40, "size": 256, "seed": 9}  # seconds of work for tiny-random on the CPU


def read_in_thread(stream: Any) -> tuple[threading.Thread, list[Any]]:
    got: list[Any] = []

    def read() -> None:
        try:
            for event in stream:
                got.append(event)
        except PixelKilnError as err:
            got.append(err)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, got


def test_a_generate_stream_read_on_one_thread_and_cancelled_from_another(served: str) -> None:
    with Client(served, timeout=120) as client:
        stream = client.stream("cancelled mid-run", **SLOW)
        # Read on the iterating thread (the option is in effect), not gRPC's channel thread.
        assert type(stream._call).__name__ == "_SingleThreadedRendezvous"
        thread, got = read_in_thread(stream)
        deadline = time.monotonic() + 60
        while not any(isinstance(e, Progress) for e in got) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.request_id  # known: the cancel goes through Cancel
        assert stream.cancel()
        thread.join(30)
        assert not thread.is_alive()
        assert isinstance(got[-1], PixelKilnError)
        assert got[-1].code == grpc.StatusCode.CANCELLED
        assert not any(isinstance(e, Result) for e in got)
        # The channel still serves.
        assert client.generate("after the cancel", steps=1, size=64, seed=1).image.data


def test_a_cancel_before_the_first_event_ends_the_stream(served: str) -> None:
    with Client(served, timeout=120) as client:
        stream = client.stream("cancelled at once", **SLOW)
        thread, got = read_in_thread(stream)
        assert stream.cancel()  # no request id yet: cancels the call itself
        thread.join(30)
        assert not thread.is_alive()
        assert got and isinstance(got[-1], PixelKilnError)
        assert got[-1].code == grpc.StatusCode.CANCELLED


def test_a_deadline_still_ends_a_blocking_stream(served: str) -> None:
    with Client(served, timeout=0.3) as client, pytest.raises(PixelKilnError) as err:
        client.generate("too slow for its deadline", **SLOW)
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
