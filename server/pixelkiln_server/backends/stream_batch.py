"""Stream batch: the denoising steps of consecutive live frames in one batched denoiser call.

With N denoising steps (``min(int(steps * strength), steps)``), a stream holds up to N - 1
frames in flight, frame j having run j + 1 steps. Each arriving frame is encoded and noised,
stacked in front of the held ones, and ONE UNet call moves every row one step on (row r with
step r's timestep and coefficients); the row that has run all N steps is decoded and comes
out. So a frame's image comes out N - 1 frames later (one frame of lag at 2 steps), and the
UNet runs once per frame, at batch N, instead of N times at batch 1. Each frame's trajectory
is exactly the sequential one (same noise, timesteps and coefficients), so its image equals
the sequential lean frame, and the pipeline's, up to float rounding: its recipe replays.
The UNet families (live_path.py) and the flow-matching DiTs, FLUX and Z-Image (live_flux.py,
live_zimage.py: per-row timesteps and step sizes) all run it, through :class:`Steps`.

The contract with the live front (engine/live.py), per live request with ``stream_batch``:

- Stream identity: ``request.stream_id`` (the live session's id), else the part of
  ``request.client_request_id`` before the first ``:`` (an empty one is one shared stream;
  each frame's own ``client_request_id`` should differ: it names the frame). A stream's frames
  must share every setting (:func:`~.live_path.settings_key`: all but the init image and the
  client request id); a request whose settings differ restarts its stream and DROPS the held
  frames (newest wins; their inputs never get an image). Up to MAX_STREAMS streams per model
  are kept (least recently used dropped).
- ``generate`` returns ``[]``: "no frame yet", the frame went in and nothing came out (the
  first N - 1 frames of a stream). Otherwise one image: the output of the frame pushed N - 1
  calls earlier in this stream, whose ``client_request_id`` the backend names with
  ``hooks.on_note("answers", id)`` (and ``on_note("held", str(frames still in flight))``).
- Flush: re-send the last input (same image and settings); each re-send moves the pipeline
  one step, so N - 1 re-sends bring out every held frame. No other message exists.
- N == 1 runs the frame alone, no lag (noted "not applied: 1 denoising step").
- A cancel (``hooks.on_step`` raising Cancelled after the UNet call) leaves the stream as it
  was before the call: the new frame is dropped, the held frames stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..types import DecodedInputs, GenerationRequest
from .base import StepHooks
from .live_path import APPLIED, note, settings_key

if TYPE_CHECKING:
    from .live_path import LeanPath

MAX_STREAMS = 8


class Steps(Protocol):
    """A lean frame in parts, each over a batch of latents whose row r sits at step
    ``index[r]``: the UNet path (live_path.LeanPath) and the flow-matching DiTs
    (live_flux.FluxSteps, live_zimage.ZImageSteps). ``plan.steps`` and ``plan.index``
    (arange) come with every plan."""

    def encode(self, plan: Any, rgb: np.ndarray, width: int, height: int) -> Any: ...
    def denoise(self, plan: Any, latents: Any, index: Any) -> Any: ...
    def decode(self, plan: Any, latents: Any) -> np.ndarray: ...
    def frame(
        self, request: GenerationRequest, plan: Any, inputs: DecodedInputs, hooks: StepHooks
    ) -> np.ndarray: ...


def stream_id(request: GenerationRequest) -> str:
    """``request.stream_id`` (the live session's id), else the part of the client request id
    before the first ``:``."""
    return request.stream_id or request.client_request_id.split(":", 1)[0]


@dataclass
class _Stream:
    key: GenerationRequest
    latents: Any = None  # (k, C, h, w): row j has run j + 1 steps
    tags: tuple[str, ...] = ()  # the client_request_id of each held row


class StreamBatch:
    """The streams of one model's lean path."""

    def __init__(self, lean: LeanPath) -> None:
        self.lean = lean
        self._streams: dict[str, _Stream] = {}
        self.dropped = 0  # frames dropped by settings changes (their inputs got no image)

    def held(self, request: GenerationRequest | None = None) -> int:
        """Frames in flight in ``request``'s stream, or in every stream."""
        if request is None:
            return sum(len(stream.tags) for stream in self._streams.values())
        stream = self._streams.get(stream_id(request))
        return len(stream.tags) if stream is not None else 0

    def push(
        self,
        request: GenerationRequest,
        plan: Any,
        inputs: DecodedInputs,
        hooks: StepHooks,
        steps: Steps | None = None,
    ) -> list[np.ndarray]:
        """Push one frame; returns the image that came out, or ``[]`` (no frame yet).
        ``steps``: the frame's parts (:class:`Steps`), by default the UNet lean path's."""
        import torch

        path: Steps = self.lean if steps is None else steps
        if plan.steps < 2:
            note(hooks, "stream_batch", "not applied: 1 denoising step (nothing to batch)")
            return [path.frame(request, plan, inputs, hooks)]
        note(hooks, "stream_batch", APPLIED)
        stream = self._stream(request)
        assert inputs.init_rgb is not None
        fresh = path.encode(plan, inputs.init_rgb, request.width, request.height)
        batch = fresh if stream.latents is None else torch.cat([fresh, stream.latents])
        tags = (request.client_request_id, *stream.tags)
        moved = path.denoise(plan, batch, plan.index[: batch.shape[0]])
        hooks.on_step(1, 1)  # raises Cancelled: the stream stays as it was
        if len(tags) < plan.steps:
            stream.latents, stream.tags = moved, tags
            note(hooks, "held", str(len(tags)))
            return []
        stream.latents, stream.tags = moved[:-1], tags[:-1]
        note(hooks, "held", str(len(stream.tags)))
        note(hooks, "answers", tags[-1])
        return [path.decode(plan, moved[-1:])[0]]

    def _stream(self, request: GenerationRequest) -> _Stream:
        sid, key = stream_id(request), settings_key(request)
        stream = self._streams.pop(sid, None)
        if stream is None or stream.key != key:
            if stream is not None:
                self.dropped += len(stream.tags)
            stream = _Stream(key)
        self._streams[sid] = stream
        while len(self._streams) > MAX_STREAMS:
            gone = self._streams.pop(next(iter(self._streams)))
            self.dropped += len(gone.tags)
        return stream
