"""A fake model for tests of scheduling, placement, cancel, crash and restart: deterministic,
no torch, milliseconds. Each image is a colour ramp picked by its seed; each step sleeps
``step_ms`` milliseconds, read from a ``step_ms=N`` word of the prompt (default 1).

Register :data:`FAKE_SPEC` (or a copy under another name) with the daemon's registry.
"""

from __future__ import annotations

import re
import time

import numpy as np

from ..catalogue import ModelSpec
from ..types import DecodedInputs, GenerationRequest
from .base import LoadedModel, LoadOptions, StepHooks

FAKE_SPEC = ModelSpec(
    name="fake",
    family="sd",
    source="builtin:fake",
    backend="fake",
    native_width=64,
    native_height=64,
    default_steps=2,
    default_guidance=0.0,
    revision="fake-v1",
)

_STEP_MS = re.compile(r"\bstep_ms=(\d+(?:\.\d+)?)")


def fake_image(seed: int, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    colour = rng.random(3, dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    return np.broadcast_to(colour * ramp, (height, width, 3)).astype(np.float32)


class FakeModel(LoadedModel):
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.device = "cpu"
        self.dtype = "fp32"

    def generate(
        self, request: GenerationRequest, inputs: DecodedInputs, hooks: StepHooks
    ) -> list[np.ndarray]:
        found = _STEP_MS.search(request.prompt)
        step_s = float(found.group(1)) / 1000.0 if found else 0.001
        assert request.seed is not None
        for step in range(1, request.steps + 1):
            time.sleep(step_s)
            if hooks.on_step(step, request.steps):
                hooks.on_preview(step, [np.zeros((8, 8, 3), np.uint8)] * request.num_images)
        return [
            fake_image(request.seed + i, request.width, request.height)
            for i in range(request.num_images)
        ]

    def memory_bytes(self) -> int:
        return 1024


class FakeBackend:
    name = "fake"

    def load(self, spec: ModelSpec, options: LoadOptions) -> LoadedModel:
        return FakeModel(spec)
