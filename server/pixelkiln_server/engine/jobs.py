"""A job: one resolved request, its cancel flag, and the channel its events travel on."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from ..catalogue import ModelSpec
from ..errors import Cancelled, ResourceExhausted
from ..types import DecodedInputs, Event, Failed, GenerationRequest, Preview, Result


def backlog_message(cap: int) -> str:
    return (
        f"the client fell behind: more than {cap} events wait to be sent on this stream (the "
        "limit set by --stream-backlog); read the stream as it comes, or ask for fewer previews"
    )


class EventChannel:
    """Carries events from any thread to one asyncio consumer, in order (a job's events all
    come from one thread: the loop's, in the daemon).

    At most ``cap`` events wait for a consumer that falls behind (a client that does not
    read): previews are dropped first, oldest first; when the rest still exceed the cap the
    channel ends with RESOURCE_EXHAUSTED and ``on_overflow`` runs (the engine cancels the job).
    ``result_only``: only the Result or Failed event is carried (PreviewSettings.result_only);
    the others are dropped as they are emitted, so the consumer wakes once.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, cap: int = 0, result_only: bool = False
    ) -> None:
        self._loop = loop
        self._cap = cap
        self._result_only = result_only
        self._events: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._overflowed = False
        self.dropped_previews = 0
        self.on_overflow: Callable[[], None] | None = None

    def emit(self, event: Event) -> None:
        if self._loop.is_closed() or (self._result_only and not isinstance(event, Result | Failed)):
            return
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:  # the daemon's case (the runner pool reads on the loop): no hand-off
            self._put(event)
            return
        with contextlib.suppress(RuntimeError):  # loop closed between the check and the call
            self._loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: Event) -> None:
        if self._overflowed:
            return
        events = self._events
        events.append(event)
        if self._cap and len(events) > self._cap:
            preview = next((e for e in events if isinstance(e, Preview)), None)
            if preview is not None:
                events.remove(preview)
                self.dropped_previews += 1
            else:
                self._overflowed = True
                events.clear()
                events.append(Failed(ResourceExhausted(backlog_message(self._cap))))
                if self.on_overflow is not None:
                    # Later, not inside the emit: the emitter (the scheduler renumbering its
                    # queue, the pool delivering a runner's message) finishes first.
                    self._loop.call_soon(self.on_overflow)
        self._ready.set()

    @property
    def backlog(self) -> int:
        """Events waiting for the consumer."""
        return len(self._events)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            while not self._events:
                self._ready.clear()
                await self._ready.wait()
            event = self._events.popleft()
            yield event
            if isinstance(event, Result | Failed):
                return


@dataclass(eq=False)
class Job:
    request: GenerationRequest
    inputs: DecodedInputs
    spec: ModelSpec
    emit: Callable[[Event], None]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    # Who asked (a connection): the scheduler is fair between clients.
    client_id: str = ""
    # Jobs of one affinity (a live session) run on one runner.
    affinity: str = ""
    # Times handed to a runner, and whether the runner has reported on it since.
    dispatches: int = 0
    heard: bool = False
    # SHA-256 of the init image and mask as sent (for the recipe), computed at admission.
    input_shas: tuple[str, str] = ("", "")
    # Warnings its result will carry (advice.py), found at admission.
    warnings: tuple[str, ...] = ()
    submitted_at: float = field(default_factory=time.perf_counter)
    seq: int = 0
    last_position: int = -1
    _cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = ""
    finished: bool = False

    def cancel(self, reason: str = "cancelled by the client") -> None:
        if not self._cancel.is_set():
            self.cancel_reason = reason
            self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled(self.cancel_reason or "cancelled")

    def finish(self, event: Result | Failed) -> None:
        """Emit the terminal event exactly once."""
        if not self.finished:
            self.finished = True
            self.emit(event)
