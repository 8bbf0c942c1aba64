"""EventChannel: events from the loop's thread and from others arrive in order; a slow
consumer's backlog ends the channel, and the overflow callback runs after the emit returns;
result_only carries the Result alone."""

from __future__ import annotations

import asyncio
import threading

from pixelkiln_server.engine.jobs import EventChannel
from pixelkiln_server.errors import Code, PixelKilnError
from pixelkiln_server.types import Event, Failed, Progress, Queued, Result, Timings


def _result() -> Result:
    return Result(images=[], recipe=None, timings=Timings())  # type: ignore[arg-type]


async def _drain(channel: EventChannel) -> list[Event]:
    return [event async for event in channel]


async def test_events_from_the_loop_and_from_a_thread_keep_their_order() -> None:
    loop = asyncio.get_running_loop()
    channel = EventChannel(loop)
    channel.emit(Queued(position=0, queue_depth=1))  # on the loop: put at once
    assert channel.backlog == 1
    worker = threading.Thread(
        target=lambda: [channel.emit(Progress(step=s, total=3, elapsed_ms=0.0)) for s in (1, 2)]
    )
    worker.start()
    worker.join()
    await asyncio.sleep(0)  # the thread's events were handed to the loop
    channel.emit(Progress(step=3, total=3, elapsed_ms=0.0))
    channel.emit(_result())
    events = await _drain(channel)
    steps = [e.step for e in events if isinstance(e, Progress)]
    assert isinstance(events[0], Queued) and steps == [1, 2, 3]
    assert isinstance(events[-1], Result)


async def test_overflow_ends_the_channel_and_calls_back_after_the_emit() -> None:
    channel = EventChannel(asyncio.get_running_loop(), cap=2)
    calls: list[int] = []
    channel.on_overflow = lambda: calls.append(channel.backlog)
    for step in (1, 2, 3):
        channel.emit(Progress(step=step, total=3, elapsed_ms=0.0))
    assert calls == []  # not inside emit
    await asyncio.sleep(0)
    assert calls == [1]
    (event,) = await _drain(channel)
    assert isinstance(event, Failed) and isinstance(event.error, PixelKilnError)
    assert event.error.code is Code.RESOURCE_EXHAUSTED


async def test_result_only_carries_the_result_alone() -> None:
    channel = EventChannel(asyncio.get_running_loop(), result_only=True)
    channel.emit(Queued(position=0, queue_depth=1))
    channel.emit(Progress(step=1, total=1, elapsed_ms=0.0))
    assert channel.backlog == 0
    channel.emit(_result())
    (event,) = await _drain(channel)
    assert isinstance(event, Result)
