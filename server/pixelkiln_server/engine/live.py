"""Live img2img sessions: the newest input wins, one generation in flight, repeats are free.

A transport feeds inputs with :meth:`LiveSession.push` (never blocks) and reads frames from
:meth:`LiveSession.frames`. The session runs each input as an ordinary job of priority LIVE
through the engine, so validation, scheduling, cancel and errors are the same as Generate.

Options (LiveSettings): an input similar to the last processed one (``similarity``: mean
absolute difference of small grayscales under ``similar_skip_threshold``) is answered with a
``similar`` frame and no image, at most ``similar_skip_max`` times in a row; the input is
decoded once, off the event loop, and the job reuses the pixels. With ``stream_batch`` the
runner may answer "no frame yet" (a Result without images) and later images come from earlier
inputs: each job's client_request_id is ``<session id>:<seq>``, the runner names the input an
image answers (``Result.answers``) and how many it holds (``Result.held``); a repeat of the
last input runs again while the runner holds an earlier input, so a still input flushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING

from .. import validation
from ..errors import (
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    PixelKilnError,
    ResourceExhausted,
)
from ..types import (
    DecodedInputs,
    EncodedImage,
    Failed,
    GenerationRequest,
    LiveFrame,
    LiveInput,
    LiveUpdate,
    PreviewOptions,
    Priority,
    Result,
    Timings,
)
from . import similarity
from .jobs import backlog_message

if TYPE_CHECKING:
    from ..config import Limits
    from .core import Engine, JobHandle

DEFAULT_STRENGTH = 0.5
DEFAULT_SIMILAR_SKIP_MAX = 10
_END = object()


def _key(image: EncodedImage | None, settings: GenerationRequest) -> bytes:
    """What decides a frame's pixels, hashed on the CPU (no GPU sync, no decode)."""
    h = hashlib.blake2b(digest_size=16)
    if image is not None:
        h.update(image.data)
        h.update(f"{image.encoding}{image.width}x{image.height}".encode())
    h.update(repr(settings).encode())
    return h.digest()


class LiveSession:
    def __init__(self, engine: Engine, client_id: str, idle_timeout_s: float) -> None:
        self._engine = engine
        self.id = uuid.uuid4().hex
        self.client_id = client_id
        self.ended = False  # makes no more frames (its last ones may still wait for the client)
        self.idle_timeout_s = idle_timeout_s
        # A frame's events besides its result would reach nobody (a session sends frames).
        self.settings = GenerationRequest(
            strength=DEFAULT_STRENGTH,
            seed=0,
            priority=Priority.LIVE,
            stream_id=self.id,
            preview=PreviewOptions(result_only=True),  # frames need the result alone
        )
        # Similar-frame skip (LiveSettings.similar_skip_threshold / similar_skip_max).
        self.similar_skip_threshold = 0.0
        self.similar_skip_max = DEFAULT_SIMILAR_SKIP_MAX
        self._image: EncodedImage | None = None
        self._pending: tuple[LiveInput, EncodedImage | None, GenerationRequest, float] | None = None
        self._skipped = 0
        self._last_key: bytes | None = None
        # Similar-frame skip: the last processed input's settings and signature, and how many
        # inputs in a row were skipped as similar since.
        self._last_settings_key: bytes | None = None
        self._last_signature: similarity.Signature | None = None
        self._similar_run = 0
        # Stream batch: how many inputs the runner still holds; when each input sent to it
        # arrived and its key; the key of the input whose image was sent last.
        self._held = 0
        self._sent: dict[int, tuple[float, bytes]] = {}
        self._shown_key: bytes | None = None
        self._last_input_at = time.perf_counter()
        self._wake = asyncio.Event()
        self._input_done = False
        self._in_flight: JobHandle | None = None
        self._frames: asyncio.Queue[object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.processed = 0  # inputs that ran a job
        self.frames_out = 0  # frames handed to the stream's queue (repeats and skips too)
        # The front's model policy: the name a client sent -> the name to load (or refuse).
        self.admit = _as_named
        # The error that ended the session, if one did; each frame as it is handed out.
        self.error: PixelKilnError | None = None
        self.on_frame: Callable[[LiveFrame], None] | None = None
        # The error as the stream's caller sees it (the front cuts paths for some callers).
        self.shown: Callable[[PixelKilnError], PixelKilnError] = _as_is

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def push(self, live_input: LiveInput) -> None:
        """Take an input: merge its settings, and replace any input still waiting. Settings
        that are refused end the session with that error, after the frames already made."""
        if self.error is not None:
            return  # the session is ending: the transport is about to close it
        try:
            validation.check_live_update(live_input.settings)
        except PixelKilnError as exc:
            self._fail(exc)
            return
        self._last_input_at = time.perf_counter()
        update = live_input.settings
        if update.similar_skip_threshold is not None:
            self.similar_skip_threshold = update.similar_skip_threshold
        if update.similar_skip_max is not None:
            self.similar_skip_max = update.similar_skip_max
        self.settings = _merge(self.settings, update)
        if live_input.image is not None and live_input.image.data:
            self._image = live_input.image
        if self._pending is not None:
            self._skipped += 1
        self._pending = (live_input, self._image, self.settings, time.perf_counter())
        self._wake.set()

    def stop(self, exc: PixelKilnError) -> None:
        """End the session with ``exc`` after the frames already made (daemon shutdown)."""
        self._fail(exc)

    def _fail(self, exc: PixelKilnError) -> None:
        if self.error is None:
            self.error = exc
        self._input_done, self._pending = True, None
        self._frames.put_nowait(exc)
        self._wake.set()

    def end_input(self) -> None:
        """The client closed its side: finish what is waiting, then end."""
        self._input_done = True
        self._wake.set()

    async def frames(self) -> AsyncIterator[LiveFrame]:
        """Frames in order; raises the error that ended the session, if any."""
        while True:
            item = await self._frames.get()
            if item is _END:
                return
            if isinstance(item, PixelKilnError):
                raise self.shown(item)
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, LiveFrame)
            if self.on_frame is not None:
                self.on_frame(item)
            yield item

    async def close(self) -> None:
        if self._in_flight is not None:
            self._in_flight.cancel("the live session ended")
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        try:
            while True:
                if self._pending is None:
                    if self._input_done:
                        break
                    await self._wait_for_input()
                    continue
                pending, self._pending = self._pending, None
                await self._process(*pending)
            self._frames.put_nowait(_END)
        except PixelKilnError as exc:
            exc = _named_as_live(exc)
            self.error = self.error or exc
            self._frames.put_nowait(exc)
        except Exception as exc:  # noqa: BLE001 - a bug ends the session (INTERNAL), never hangs it
            self.error = Internal("internal error in Live; see the daemon log")  # the record's
            self._frames.put_nowait(exc)  # the transport logs it and answers INTERNAL
        finally:
            # Its place under --max-live-sessions is free once it makes no more frames, even
            # while its transport still waits to hand the last ones to a client that stopped
            # reading (over gRPC that lasts until the client goes: grpc.aio cannot end one
            # stream whose data waits on the client's flow-control window).
            self.ended = True
            self._engine.live_ended(self)

    async def _wait_for_input(self) -> None:
        self._wake.clear()
        remaining = self.idle_timeout_s - (time.perf_counter() - self._last_input_at)
        if remaining <= 0:
            raise DeadlineExceeded(
                f"live session idle: no input for {self.idle_timeout_s:g} s "
                "(--live-idle-timeout); reconnect to continue"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), remaining)

    def _steps(self, settings: GenerationRequest, img2img: bool) -> int:
        """Unset steps: the model's default, raised so img2img runs at least one step."""
        if settings.steps or not img2img or settings.strength is None:
            return settings.steps
        spec = self._engine.registry.spec(settings.model or self._engine.config.default_model)
        steps = _live_steps(spec.default_steps, settings.strength)
        if steps > spec.max_steps:  # else the frame's request blamed steps, never set
            raise InvalidArgument(
                "strength",
                f"{validation.shown(settings.strength)} runs no img2img step within {spec.name}'s "
                f"{spec.max_steps} steps (steps x strength must reach 1); raise strength to at "
                f"least {1 / spec.max_steps:.3g}, or set steps",
            )
        return steps

    def _put_frame(self, frame: LiveFrame) -> None:
        """A frame for the client; past the backlog cap (a client that does not read) the
        session ends with RESOURCE_EXHAUSTED instead of holding more frames."""
        cap = self._engine.config.stream_backlog
        if self._frames.qsize() >= cap:
            raise ResourceExhausted(backlog_message(cap))
        self._frames.put_nowait(frame)
        self.frames_out += 1

    async def _process(
        self,
        live_input: LiveInput,
        image: EncodedImage | None,
        settings: GenerationRequest,
        received: float,
    ) -> None:
        skipped, self._skipped = self._skipped, 0
        if settings.model:
            settings = replace(settings, model=self.admit(settings.model))
        key = _key(image, settings)
        assert settings.seed is not None
        # A repeat runs again only to push out a frame that stream batch still holds (one of
        # an earlier input than this one).
        if key == self._last_key and (self._held == 0 or self._shown_key == key):
            total = (time.perf_counter() - received) * 1000.0
            self._put_frame(
                LiveFrame(
                    live_input.seq, None, True, settings.seed, skipped, Timings(total_ms=total)
                )
            )
            return
        settings_key = _key(None, settings)
        decoded, sig = await self._signature(image, settings)
        if sig is not None and self._similar(sig, settings_key):
            self._similar_run += 1
            total = (time.perf_counter() - received) * 1000.0
            self._put_frame(
                LiveFrame(
                    live_input.seq,
                    None,
                    True,
                    settings.seed,
                    skipped,
                    Timings(total_ms=total),
                    similar=True,
                )
            )
            return
        request = replace(
            settings,
            init_image=image,
            strength=settings.strength if image is not None else None,
            steps=self._steps(settings, image is not None),
            client_request_id=f"{self.id}:{live_input.seq}",
        )
        handle = await self._engine.submit(
            request, client_id=self.client_id, affinity=self.id, decoded=decoded
        )
        self._in_flight = handle
        self._sent[live_input.seq] = (received, key)
        try:
            async for event in handle:
                if isinstance(event, Failed):
                    raise event.error
                if isinstance(event, Result):
                    self._last_key, self._last_settings_key = key, settings_key
                    self._last_signature, self._similar_run = sig, 0
                    self._held = event.held
                    self.processed += 1
                    if event.images:
                        self._put_frame(self._frame(event, handle, live_input.seq, skipped))
        finally:
            self._in_flight = None

    async def _signature(
        self, image: EncodedImage | None, settings: GenerationRequest
    ) -> tuple[DecodedInputs | None, similarity.Signature | None]:
        """With the similar-frame skip on: the input decoded (off the event loop, once: the
        job reuses it) and its signature."""
        if image is None or self.similar_skip_threshold <= 0.0:
            return None, None
        limits = self._engine.config.limits
        request = replace(settings, init_image=image, mask=None)
        return await asyncio.to_thread(_decode_with_signature, request, limits)

    def _similar(self, sig: similarity.Signature, settings_key: bytes) -> bool:
        if self._last_signature is None or settings_key != self._last_settings_key:
            return False
        if self._held or (self.similar_skip_max and self._similar_run >= self.similar_skip_max):
            return False
        return similarity.difference(sig, self._last_signature) < self.similar_skip_threshold

    def _frame(self, result: Result, handle: JobHandle, seq: int, skipped: int) -> LiveFrame:
        """The frame for a result: with stream batch, the input it answers may be earlier."""
        prefix = f"{self.id}:"
        if result.answers.startswith(prefix) and result.answers[len(prefix) :].isdigit():
            seq = int(result.answers[len(prefix) :])
        now = time.perf_counter()
        received, self._shown_key = self._sent.pop(seq, (now, None))
        for old in [k for k in self._sent if k < seq]:
            del self._sent[old]
        t = result.timings
        queue_ms = (handle.job.submitted_at - received) * 1000.0 + t.queue_ms
        image = result.images[0]
        return LiveFrame(
            seq=seq,
            image=image.image,
            unchanged=False,
            seed=image.seed,
            skipped=skipped,
            timings=Timings(queue_ms, t.model_ms, t.encode_ms, (now - received) * 1000.0),
            stream_batch="stream_batch" in result.applied,
            tiny_autoencoder="tiny_autoencoder" in result.applied,
            graph_calls=result.graph_calls,
        )


def _decode_with_signature(
    request: GenerationRequest, limits: Limits
) -> tuple[DecodedInputs, similarity.Signature]:
    decoded = validation.decode_inputs(request, limits)
    assert decoded.init_rgb is not None
    return decoded, similarity.signature(decoded.init_rgb)


def _as_named(name: str) -> str:
    return name


def _as_is(exc: PixelKilnError) -> PixelKilnError:
    return exc


def _named_as_live(exc: PixelKilnError) -> PixelKilnError:
    """A frame's request carries the input as ``init_image``; the client sent LiveInput's
    ``image``, so that is the field an error names."""
    if isinstance(exc, InvalidArgument) and exc.field == "init_image":
        return InvalidArgument("image", exc.message.removeprefix("init_image: "))
    return exc


def _live_steps(default_steps: int, strength: float) -> int:
    """img2img runs int(steps * strength) steps; keep at least one (turbo models default to 1)."""
    return max(default_steps, math.ceil(1.0 / max(strength, 1e-3) - 1e-9))


# LiveUpdate fields that are the session's own, not the frames' requests'.
_SESSION_ONLY = frozenset({"similar_skip_threshold", "similar_skip_max"})


def _merge(settings: GenerationRequest, update: LiveUpdate) -> GenerationRequest:
    changes = {
        f.name: getattr(update, f.name)
        for f in fields(LiveUpdate)
        if f.name not in _SESSION_ONLY and getattr(update, f.name) is not None
    }
    return replace(settings, **changes) if changes else settings
