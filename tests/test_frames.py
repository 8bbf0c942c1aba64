"""Frames on a pipe read by the event loop (runners/frames.py): whole, in pieces, large,
empty, garbled, and the end reported once. Real pipes, a real event loop."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from pixelkiln_server.runners.frames import HEADER, MAX_FRAME, LoopReader, frame_writer

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the loop reads pipes on POSIX only")


class Collected:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.ends = 0
        self.ended = asyncio.Event()

    def frame(self, data: bytearray) -> None:
        self.frames.append(bytes(data))

    def end(self) -> None:
        self.ends += 1
        self.ended.set()


async def read_all(write: object) -> Collected:
    """Start a reader on a fresh pipe, run ``write(fd)`` on a thread, wait for the end."""
    r, w = os.pipe()
    got = Collected()
    LoopReader(r, asyncio.get_running_loop(), got.frame, got.end)

    def writer() -> None:
        try:
            write(w)  # type: ignore[operator]
        finally:
            os.close(w)

    thread = threading.Thread(target=writer)
    thread.start()
    await asyncio.wait_for(got.ended.wait(), 30)
    thread.join()
    return got


async def test_frames_arrive_whole_and_in_order_with_a_large_and_an_empty_one() -> None:
    big = os.urandom(3 * 1024 * 1024 + 7)  # larger than a pipe's buffer: read in many pieces
    sent = [b"first", b"", big, b"last"]

    def write(fd: int) -> None:
        send = frame_writer(fd)
        for data in sent:
            send(data)

    got = await read_all(write)
    assert got.frames == sent
    assert got.ends == 1


async def test_a_frame_written_a_byte_at_a_time_is_read_whole() -> None:
    data = b"\x81\xa2ev\xa6result"
    raw = HEADER.pack(len(data)) + data

    def write(fd: int) -> None:
        for i in range(len(raw)):
            os.write(fd, raw[i : i + 1])

    got = await read_all(write)
    assert got.frames == [data]


async def test_a_pipe_that_ends_mid_frame_reports_the_end_once_and_no_frame() -> None:
    def write(fd: int) -> None:
        os.write(fd, HEADER.pack(100) + b"only part of it")

    got = await read_all(write)
    assert got.frames == [] and got.ends == 1


async def test_a_garbled_length_ends_reading() -> None:
    def write(fd: int) -> None:
        os.write(fd, HEADER.pack(MAX_FRAME + 1) + b"junk")

    got = await read_all(write)
    assert got.frames == [] and got.ends == 1


async def test_close_stops_reading_and_reports_the_end_once() -> None:
    r, w = os.pipe()
    got = Collected()
    reader = LoopReader(r, asyncio.get_running_loop(), got.frame, got.end)
    reader.close()
    reader.close()
    assert got.ends == 1
    with pytest.raises(OSError):
        os.fstat(r)  # the reader closed its descriptor
    os.close(w)


def test_the_writer_sends_every_byte_through_partial_writes() -> None:
    r, w = os.pipe()
    data = os.urandom(1024 * 1024)
    out = bytearray()

    def drain() -> None:
        while chunk := os.read(r, 65536):
            out.extend(chunk)

    thread = threading.Thread(target=drain)
    thread.start()
    frame_writer(w)(memoryview(data))  # type: ignore[arg-type]
    os.close(w)
    thread.join()
    os.close(r)
    assert bytes(out) == HEADER.pack(len(data)) + data
