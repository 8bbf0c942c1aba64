"""The backend contract: load a model, run one resolved request, report every step.

A backend turns a :class:`~pixelkiln_server.catalogue.ModelSpec` into a :class:`LoadedModel`.
``LoadedModel.generate`` runs on a runner's work thread and must call ``hooks.on_step`` after every
denoising step; ``on_step`` raises :class:`~pixelkiln_server.errors.Cancelled` when the job was
cancelled, and the backend lets it propagate, so a cancelled job never reaches the VAE decode.

Example, a backend that paints flat colours::

    class FlatModel(LoadedModel):
        def generate(self, request, inputs, hooks):
            for step in range(1, request.steps + 1):
                if hooks.on_step(step, request.steps):
                    hooks.on_preview(step, [np.zeros((8, 8, 3), np.uint8)])
            return [np.full((request.height, request.width, 3), 0.5, np.float32)]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..capabilities import Capabilities
from ..catalogue import ModelSpec
from ..errors import PixelKilnError
from ..types import DecodedInputs, GenerationRequest


class StepHooks(Protocol):
    def on_step(self, step: int, total: int) -> bool:
        """Report that ``step`` (1-based) of ``total`` finished. Raises Cancelled when the job
        was cancelled. Returns True when the caller wants a preview of this step."""
        ...

    def on_preview(self, step: int, images: list[np.ndarray]) -> None:
        """Hand over previews: one uint8 RGB (h, w, 3) array per image of the request."""
        ...

    def on_note(self, key: str, value: str) -> None:
        """What the backend did with a live request's options (backends/live_path.py):
        ``lean``, ``stream_batch``, ``tiny_autoencoder`` = "applied" or "not applied: <why>";
        with stream batch ``held`` (frames in flight) and ``answers`` (the client_request_id
        of the input the image comes from; stream_batch.py); ``runtime`` = "onnx" when ONNX
        Runtime served the request (runtime_choice.py; the recipe records it). Backends call it
        through ``live_path.note``, which skips hooks that lack it."""
        ...


class NoHooks:
    """StepHooks that want nothing: no previews, never cancelled (warm-up, benchmarks)."""

    def on_step(self, step: int, total: int) -> bool:
        return False

    def on_preview(self, step: int, images: list[np.ndarray]) -> None:
        pass

    def on_note(self, key: str, value: str) -> None:
        pass


@dataclass(frozen=True)
class LoadOptions:
    """How every model loads. Per-model options (compile, quantize, ...) travel in
    ``ModelSpec.options``."""

    device: str = "auto"
    dtype: str = "auto"
    offline: bool = False
    home: Path = Path(".")
    # Pickle-based weights (.ckpt, .bin, ...) run code when loaded: off unless --allow-pickle.
    allow_pickle: bool = False


@dataclass(frozen=True)
class BatchItem:
    request: GenerationRequest
    inputs: DecodedInputs
    hooks: StepHooks


class LoadedModel(ABC):
    """A model in memory, ready to generate."""

    spec: ModelSpec
    device: str
    dtype: str

    @abstractmethod
    def generate(
        self, request: GenerationRequest, inputs: DecodedInputs, hooks: StepHooks
    ) -> list[np.ndarray]:
        """Run a resolved request; return ``num_images`` float32 RGB (H, W, 3) arrays in [0, 1].

        Image ``i`` must depend only on the request and ``seed + i`` (so it can be reproduced
        alone). Raise PixelKilnError subclasses for anything a client should see.
        """

    def generate_batch(self, items: list[BatchItem]) -> list[list[np.ndarray] | PixelKilnError]:
        """Run several requests; per item its images or the error that ended it. The runner pool
        only batches txt2img requests of equal model, size, steps, guidance and tiling.
        This default runs them one by one; backends override it to share one call."""
        out: list[list[np.ndarray] | PixelKilnError] = []
        for item in items:
            try:
                out.append(self.generate(item.request, item.inputs, item.hooks))
            except PixelKilnError as exc:
                out.append(exc)
        return out

    @abstractmethod
    def memory_bytes(self) -> int:
        """Memory held by this model on its device, measured after load."""

    def unload(self) -> None:  # noqa: B027 - optional hook
        """Release the model's memory."""

    def release(self) -> int:
        """Release the model's memory and return the bytes measured as freed (0 when this
        backend cannot measure it). The registry calls this, never ``unload`` directly."""
        self.unload()
        return 0

    def active_options(self) -> dict[str, str]:
        """The speed and memory options in effect, as Status reports them."""
        return {}

    @property
    def capabilities(self) -> Capabilities:
        """What this model serves: its backend's declaration (``capabilities.py``), which
        validation checks before a request is accepted. Plain data: a runner in another
        process reports it with ``to_dict``. tests/test_capabilities.py holds every registered
        backend to it."""
        return self.spec.capabilities


class Backend(Protocol):
    name: str

    def load(self, spec: ModelSpec, options: LoadOptions) -> LoadedModel: ...
