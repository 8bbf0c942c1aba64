"""Recorded graphs of the lean live path's module calls (backends/traced.py).

A recorded graph replays the same kernels as the eager call; its frames must equal the
eager lean path's (the lean path's own tolerance, tests/test_live_path.py) for every shape,
padding mode, guidance and decoder it was recorded with, and a graph must never serve a call
it was not recorded for (another shape, tiling mode or LoRA state).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from pixelkiln_server.backends import traced
from pixelkiln_server.backends.traced import Graphs
from pixelkiln_server.types import DecodedInputs, Tiling
from tests.test_live_path import (  # noqa: F401 - with_tiny is a fixture
    MEAN_TOLERANCE,
    Notes,
    assert_close,
    live,
    model,
    sketch,
    with_tiny,
)


class Scaled(torch.nn.Module):
    """A conv whose output depends on a tensor input (like the UNet's timestep)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: Any, t: Any) -> Any:
        return self.conv(x) * t


def unet_like(graphs: Graphs, module: Any, *args: Any, **kw: Any) -> Any:
    """Graphs.run with the "decode" wrapper's protocol replaced by a plain module call."""
    graphs._kinds = {"plain": lambda m: m}
    return graphs.run("plain", module, args, **kw)


def test_a_graph_is_recorded_at_the_second_call_and_follows_its_tensor_inputs() -> None:
    graphs, m = Graphs(), Scaled().eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.inference_mode():
        first = unet_like(graphs, m, x, torch.tensor(2.0))
        assert (graphs.recorded, graphs.replays) == (0, 0)  # the first call runs eagerly
        second = unet_like(graphs, m, x, torch.tensor(2.0))
        assert (graphs.recorded, graphs.replays) == (1, 1)
        assert torch.equal(first, second)
        # Another value of a tensor input replays the graph and is computed, not baked in.
        third = unet_like(graphs, m, x, torch.tensor(3.0))
        assert graphs.replays == 2
        torch.testing.assert_close(third, m(x, torch.tensor(3.0)))
        # Another shape is another key: eager first, recorded at its own second call.
        bigger = torch.randn(2, 3, 8, 8)
        unet_like(graphs, m, bigger, torch.tensor(2.0))
        assert graphs.recorded == 1
        unet_like(graphs, m, bigger, torch.tensor(2.0))
        assert graphs.recorded == 2
        # The extra key (the tiling mode) too, and allowed=False never records.
        for _ in range(3):
            unet_like(graphs, m, x, torch.tensor(2.0), extra=Tiling.XY, allowed=False)
        assert graphs.recorded == 2


def test_a_failed_recording_runs_eagerly_and_is_not_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Refuses(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            if torch.jit.is_tracing():
                raise RuntimeError("cannot be traced")
            return x + 1

    graphs, m = Graphs(), Refuses()
    x = torch.zeros(2)
    outs = [unet_like(graphs, m, x) for _ in range(4)]
    assert all(torch.equal(o, x + 1) for o in outs)
    assert graphs.recorded == 0 and graphs.replays == 0
    assert sum("recording failed" in r.getMessage() for r in caplog.records) == 1


def test_a_call_bound_by_arithmetic_is_never_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    class Slow(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            time.sleep(0.02)
            return x * 2

    slow = Slow()
    graphs = Graphs()
    for _ in range(2):  # under the default limit it is recorded at its second call
        unet_like(graphs, slow, torch.ones(2))
    assert graphs.recorded == 1
    monkeypatch.setattr(traced, "WORTH_MS", 5.0)
    graphs = Graphs()
    for _ in range(4):
        assert torch.equal(unet_like(graphs, slow, torch.ones(2)), torch.full((2,), 2.0))
    assert graphs.recorded == 0 and graphs.replays == 0


def test_recorded_graphs_are_bounded() -> None:
    graphs, m = Graphs(), Scaled().eval()
    with torch.inference_mode():
        for side in range(4, 4 + traced.GRAPHS_KEPT + 3):
            x = torch.randn(1, 3, side, side)
            for _ in range(traced.TRACE_FROM):
                unet_like(graphs, m, x, torch.tensor(1.0))
    assert graphs.recorded == traced.GRAPHS_KEPT + 3
    assert len(graphs._graphs) == traced.GRAPHS_KEPT


@pytest.fixture
def eager_too() -> Iterator[Any]:
    """Run a model's frames with its graphs switched off, then on again."""
    switched: list[Any] = []

    def eager(m: Any, request: Any, inputs: Any) -> np.ndarray:
        graphs = m._lean.graphs
        switched.append(graphs)
        graphs.enabled = False
        try:
            return m.generate(request, inputs, Notes())[0]  # type: ignore[no-any-return]
        finally:
            graphs.enabled = True

    yield eager
    for graphs in switched:
        graphs.enabled = True


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("tiny-random", {}),
        ("pixelkiln-textures", {"tiling": Tiling.XY}),  # v-prediction, 8 channels, circular
        ("tiny-sdxl", {"guidance_scale": 3.0}),  # added conditioning, guidance: batch 2
        ("tiny-flux", {}),  # the transformer on packed latents, the 16-channel VAE
        ("tiny-z-image", {"guidance_scale": 2.0}),  # the VAE only (a list-input transformer)
    ],
)
def test_replayed_frames_equal_eager_frames(
    name: str, changes: dict[str, Any], eager_too: Any
) -> None:
    m = model(name)
    request = live(name, 64, prompt=f"traced {name}", **changes)
    replays = m._lean.graphs.replays if m._lean is not None else 0
    frames = [DecodedInputs(init_rgb=sketch(64, seed)) for seed in range(4)]
    traced_out = [m.generate(request, f, Notes())[0] for f in frames]
    graphs = m._lean.graphs
    assert graphs.replays > replays  # encode, UNet and decode replayed from the second frame
    for f, out in zip(frames, traced_out, strict=True):
        assert_close(out, eager_too(m, request, f))
    # A prompt change reuses the graphs (the embeddings are an input, not a constant).
    recorded = graphs.recorded
    other = replace(request, prompt="another prompt entirely")
    out = m.generate(other, frames[0], Notes())[0]
    assert graphs.recorded == recorded
    assert_close(out, eager_too(m, other, frames[0]))
    # The prompt moves the picture by more than the tolerance: a baked-in prompt would fail.
    assert np.abs(out - traced_out[0]).mean() > 2 * MEAN_TOLERANCE


def test_a_graph_recorded_untiled_never_serves_a_tiled_frame(eager_too: Any) -> None:
    m = model("tiny-random")
    inputs = DecodedInputs(init_rgb=sketch(64, 21))
    plain = live("tiny-random", 64, prompt="tiling keys")
    untiled = [m.generate(plain, inputs, Notes())[0] for _ in range(3)]
    tiled_request = replace(plain, tiling=Tiling.XY)
    tiled = [m.generate(tiled_request, inputs, Notes())[0] for _ in range(3)]
    expected = eager_too(m, tiled_request, inputs)
    for out in tiled:
        assert_close(out, expected)
    assert np.abs(tiled[-1] - untiled[-1]).mean() > 10 * MEAN_TOLERANCE


def test_stream_batch_and_the_tiny_autoencoder_replay_too(with_tiny: Any, eager_too: Any) -> None:  # noqa: F811
    frames = [DecodedInputs(init_rgb=sketch(64, seed)) for seed in range(5)]
    base = live("tiny-random", 64, prompt="traced tiny", tiny_autoencoder=True)
    streamed = replace(base, stream_batch=True, stream_id="traced")
    outs = [with_tiny.generate(replace(streamed, client_request_id=f"t{i}"), f, Notes())
            for i, f in enumerate(frames)]  # fmt: skip
    assert with_tiny._lean.graphs.replays > 0
    for i in range(1, len(frames)):  # frame i answers input i - 1
        assert_close(outs[i][0], eager_too(with_tiny, base, frames[i - 1]))


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("loras", (("style", 0.8),)),  # LoRA scales are constants in a recorded graph
        ("compile", "default"),  # torch.compile already optimised it
        ("quantize", "int8-dynamic"),  # torchao's tensors do not trace
    ],
)
def test_a_lora_compiled_or_quantized_model_is_never_traced(
    attribute: str, value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = model("tiny-random")
    if attribute == "loras":
        monkeypatch.setattr(m._loras, "current", value)
    else:
        monkeypatch.setitem(m._options, attribute, value)
    request = live("tiny-random", 64, prompt=f"{attribute} model frames", width=96)
    recorded = m._lean.graphs.recorded if m._lean is not None else 0
    for seed in range(3):
        m.generate(request, DecodedInputs(init_rgb=sketch(64, seed)), Notes())
    assert m._lean.graphs.recorded == recorded
    assert m._lean.plan(request, Notes()).traced is False
    m._lean._plans.clear()  # the next test's plans see the model as it loaded
