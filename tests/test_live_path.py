"""The lean live path (backends/live_path.py), stream batch (stream_batch.py) and the tiny
autoencoder (tiny_vae.py), driven through the backend directly.

Tolerance of "equal to the pipeline": the lean path runs the same kernels on the same tensors
except that the Euler step is folded into ``a * x + b * out`` (computed once per setting in
float64, applied in float32) and the UNet input is scaled by a per-row tensor; that reorders
a handful of float32 operations, so pixels move by ~1e-6 (measured here: mean 1e-7 to 3e-7,
max 2e-6 on the CPU in fp32). We allow a mean of 1/1020 and a max of 1/255: well above
rounding, and far below what a wrong noise draw, timestep or coefficient does (~0.1).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pixelkiln_server.backends import registry, tiny_vae
from pixelkiln_server.backends.base import LoadOptions
from pixelkiln_server.backends.diffusers_backend import DiffusersBackend
from pixelkiln_server.backends.tiny_random import ensure_tiny_random
from pixelkiln_server.catalogue import PRESETS
from pixelkiln_server.errors import Cancelled
from pixelkiln_server.types import (
    DecodedInputs,
    EncodedImage,
    Encoding,
    GenerationRequest,
    Priority,
    Tiling,
)
from tests.conftest import home_dir

MEAN_TOLERANCE = 1.0 / 1020.0
MAX_TOLERANCE = 1.0 / 255.0
_MODELS: dict[str, Any] = {}


class Notes:
    """StepHooks that listen to the backend's notes and can cancel at a chosen step."""

    def __init__(self, cancel: bool = False, previews: bool = False) -> None:
        self.notes: dict[str, str] = {}
        self.steps: list[tuple[int, int]] = []
        self.cancel, self.previews = cancel, previews
        self.preview_images: list[tuple[int, list[np.ndarray]]] = []

    def on_step(self, step: int, total: int) -> bool:
        self.steps.append((step, total))
        if self.cancel:
            raise Cancelled("test")
        return self.previews

    def on_preview(self, step: int, images: list[np.ndarray]) -> None:
        self.preview_images.append((step, images))

    def on_note(self, key: str, value: str) -> None:
        self.notes[key] = value


def model(name: str) -> Any:
    if name not in _MODELS:
        spec = PRESETS[name]
        options = LoadOptions(device="cpu", home=home_dir())
        _MODELS[name] = registry.get(spec.backend).load(spec, options)
    return _MODELS[name]


def sketch(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((size, size, 3)) * 255).astype(np.uint8)


def live(name: str, size: int, **changes: Any) -> GenerationRequest:
    spec = PRESETS[name]
    request = GenerationRequest(
        prompt="red brick wall",
        model=name,
        width=size,
        height=size,
        steps=4,
        strength=0.5,
        seed=7,
        guidance_scale=spec.default_guidance,
        init_image=EncodedImage(b"frame", Encoding.PNG),
        priority=Priority.LIVE,
    )
    return replace(request, **changes)


def assert_close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    assert diff.mean() < MEAN_TOLERANCE and diff.max() < MAX_TOLERANCE, (diff.mean(), diff.max())


@pytest.mark.parametrize(
    ("name", "size", "guidance"),
    [
        ("tiny-random", 64, None),
        ("tiny-random", 128, None),
        ("pixelkiln-textures", 64, None),
        ("pixelkiln-textures", 128, None),
        ("tiny-sdxl", 64, 3.0),
        ("tiny-sdxl", 128, None),
    ],
)
def test_lean_frame_equals_the_pipeline(name: str, size: int, guidance: float | None) -> None:
    """Same seed, strength, steps, prompt and guidance: the lean frame is the pipeline's image
    (tiny-random: epsilon, 4 channels, no guidance; pixelkiln-textures: v-prediction, 8
    channels, circular padding, guidance 4; tiny-sdxl: pooled text and time ids, with and
    without guidance)."""
    m = model(name)
    inputs = DecodedInputs(init_rgb=sketch(size))
    request = live(name, size)
    if guidance is not None:
        request = replace(request, guidance_scale=guidance)
    hooks = Notes()
    lean = m.generate(request, inputs, hooks)
    assert hooks.notes["lean"] == "applied"
    assert hooks.steps == [(1, 2), (2, 2)]  # int(4 * 0.5) steps, each reported
    pipeline_hooks = Notes()
    piped = m.generate(replace(request, priority=Priority.INTERACTIVE), inputs, pipeline_hooks)
    assert pipeline_hooks.notes == {}  # only live requests take the lean path
    assert len(lean) == len(piped) == 1
    assert_close(lean[0], piped[0])
    # A different seed is another picture: the tolerance can tell them apart.
    other = m.generate(replace(request, seed=8), inputs, Notes())[0]
    assert np.abs(other - piped[0]).mean() > 10 * MEAN_TOLERANCE


def test_settings_are_precomputed_once_per_change() -> None:
    m = model("tiny-random")
    inputs = DecodedInputs(init_rgb=sketch(64))
    request = live("tiny-random", 64, prompt="lean plan cache")
    m.generate(request, inputs, Notes())
    lean = m._lean
    built, encodes = lean.plans_built, m.text_encodes
    for seq in range(3):
        m.generate(replace(request, client_request_id=f"s:{seq}"), inputs, Notes())
    assert (lean.plans_built, m.text_encodes) == (built, encodes)
    m.generate(replace(request, seed=99), inputs, Notes())
    assert lean.plans_built == built + 1


def test_stream_batch_lags_one_frame_and_keeps_each_frames_recipe() -> None:
    """2 steps: each frame's image comes out one frame later and equals the sequential lean
    frame (and so the pipeline's) for its own input; re-sending the last input flushes it."""
    m = model("tiny-random")
    frames = [DecodedInputs(init_rgb=sketch(64, seed)) for seed in range(3)]
    base = live("tiny-random", 64, stream_batch=True, stream_id="lag-test")
    sequential = [m.generate(replace(base, stream_batch=False), f, Notes())[0] for f in frames]
    outs, notes = [], []
    for seq, frame in enumerate([*frames, frames[-1]]):
        hooks = Notes()
        outs.append(m.generate(replace(base, client_request_id=f"f{seq}"), frame, hooks))
        notes.append(hooks.notes)
    assert outs[0] == []  # no frame yet: the pipeline is filling
    assert notes[0]["stream_batch"] == "applied" and notes[0]["held"] == "1"
    assert "answers" not in notes[0]
    for k in (1, 2, 3):
        assert len(outs[k]) == 1
        assert notes[k]["answers"] == f"f{k - 1}" and notes[k]["held"] == "1"
        assert_close(outs[k][0], sequential[k - 1])


def test_stream_batch_holds_steps_minus_one_frames() -> None:
    m = model("tiny-random")
    frames = [DecodedInputs(init_rgb=sketch(64, seed)) for seed in range(4)]
    base = live("tiny-random", 64, steps=8, strength=0.5, stream_batch=True, stream_id="n4")
    last = m.generate(replace(base, stream_batch=False), frames[0], Notes())[0]
    got = [m.generate(replace(base, client_request_id=f"f{i}"), f, Notes()) for i, f in
           enumerate(frames)]  # fmt: skip
    assert [len(g) for g in got] == [0, 0, 0, 1]  # 4 steps: 3 frames of lag
    assert_close(got[3][0], last)


def test_stream_batch_restarts_on_a_settings_change_and_keeps_streams_apart() -> None:
    m = model("tiny-random")
    frame = DecodedInputs(init_rgb=sketch(64, 5))
    base = live("tiny-random", 64, stream_batch=True, stream_id="a", client_request_id="a0")
    assert m.generate(base, frame, Notes()) == []
    # Another stream with the same settings does not see stream a's frame.
    assert m.generate(replace(base, stream_id="b"), frame, Notes()) == []
    dropped = m._lean.streams.dropped
    hooks = Notes()
    assert m.generate(replace(base, seed=3, client_request_id="a1"), frame, hooks) == []
    assert m._lean.streams.dropped == dropped + 1  # a0 was dropped: newest wins
    assert hooks.notes["held"] == "1"
    hooks = Notes()
    out = m.generate(replace(base, seed=3, client_request_id="a2"), frame, hooks)
    assert len(out) == 1 and hooks.notes["answers"] == "a1"


def test_stream_batch_of_one_step_runs_the_frame_alone() -> None:
    m = model("tiny-random")
    hooks = Notes()
    request = live("tiny-random", 64, steps=2, strength=0.5, stream_batch=True, stream_id="one")
    out = m.generate(request, DecodedInputs(init_rgb=sketch(64)), hooks)
    assert len(out) == 1
    assert hooks.notes["stream_batch"].startswith("not applied: 1 denoising step")


def test_a_cancelled_stream_frame_leaves_the_stream_as_it_was() -> None:
    m = model("tiny-random")
    frame = DecodedInputs(init_rgb=sketch(64, 9))
    base = live("tiny-random", 64, stream_batch=True, stream_id="cancel")
    assert m.generate(replace(base, client_request_id="c0"), frame, Notes()) == []
    with pytest.raises(Cancelled):
        m.generate(replace(base, client_request_id="c1"), frame, Notes(cancel=True))
    hooks = Notes()
    assert len(m.generate(replace(base, client_request_id="c2"), frame, hooks)) == 1
    assert hooks.notes["answers"] == "c0"


def test_tiny_autoencoder_absent_is_noted_not_an_error() -> None:
    m = model("tiny-random")
    hooks = Notes()
    request = live("tiny-random", 64, tiny_autoencoder=True)
    out = m.generate(request, DecodedInputs(init_rgb=sketch(64)), hooks)
    assert len(out) == 1
    assert hooks.notes["tiny_autoencoder"].startswith("not applied: the model has no tiny")
    assert m.active_options()["live_tiny_autoencoder"] == "none"


@pytest.fixture(scope="module")
def with_tiny(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """tiny-random copied to a folder with a tiny random AutoencoderTiny in vae_tiny/."""
    folder = tmp_path_factory.mktemp("tiny-ae") / "tiny-random-with-taesd"
    shutil.copytree(ensure_tiny_random(Path(home_dir()) / "models"), folder)
    tiny_vae.add_random_to_folder(folder, latent_channels=4)
    spec = replace(PRESETS["tiny-random"], backend="diffusers", source=str(folder))
    return DiffusersBackend().load(spec, LoadOptions(device="cpu", home=home_dir()))


def test_tiny_autoencoder_from_the_model_folder(with_tiny: Any) -> None:
    assert with_tiny.active_options()["live_tiny_autoencoder"].endswith("vae_tiny")
    inputs = DecodedInputs(init_rgb=sketch(64))
    request = live("tiny-random", 64)
    full = with_tiny.generate(request, inputs, Notes())[0]
    hooks = Notes()
    tiny = with_tiny.generate(replace(request, tiny_autoencoder=True), inputs, hooks)[0]
    assert hooks.notes["tiny_autoencoder"] == "applied"
    assert tiny.shape == full.shape == (64, 64, 3) and tiny.dtype == np.float32
    assert tiny.min() >= 0.0 and tiny.max() <= 1.0
    assert np.abs(tiny - full).mean() > 0.01  # another decoder made it
    # Deterministic, and stream batch runs it too.
    again = with_tiny.generate(replace(request, tiny_autoencoder=True), inputs, Notes())[0]
    assert np.array_equal(tiny, again)
    streamed = replace(request, tiny_autoencoder=True, stream_batch=True, stream_id="tiny")
    assert with_tiny.generate(streamed, inputs, Notes()) == []
    hooks = Notes()
    out = with_tiny.generate(streamed, inputs, hooks)
    assert hooks.notes["tiny_autoencoder"] == "applied" and hooks.notes["stream_batch"] == "applied"
    assert_close(out[0], tiny)
    # Its recipe replayed through Generate (not live; stream batch is live only) decodes with
    # the tiny autoencoder too, frame alone.
    hooks = Notes()
    replay = replace(streamed, priority=Priority.INTERACTIVE, stream_id="")
    replayed = with_tiny.generate(replay, inputs, hooks)
    assert hooks.notes["stream_batch"] == "not applied: not a live request"
    assert_close(replayed[0], tiny)


def test_what_the_lean_path_cannot_serve_falls_back_to_the_pipeline() -> None:
    """A tiled FLUX frame (tiling by seam inpainting) runs its pipeline; the note says why."""
    m = model("tiny-flux")
    hooks = Notes()
    request = live("tiny-flux", 64, tiling=Tiling.XY)
    out = m.generate(request, DecodedInputs(init_rgb=sketch(64)), hooks)
    assert len(out) == 1
    assert hooks.notes["lean"] == "not applied: tiling by seam inpainting"
    assert hooks.notes["stream_batch"].startswith("not applied")


@pytest.mark.parametrize(
    ("name", "size", "steps", "strength", "guidance"),
    [
        ("tiny-flux", 64, 4, 0.5, None),
        ("tiny-flux", 128, 3, 0.5, None),
        ("tiny-flux", 64, 2, 0.9, None),
        ("tiny-flux", 64, 4, 0.75, None),  # 3 steps: stream batch holds 2 frames
        ("tiny-z-image", 64, 4, 0.5, None),
        ("tiny-z-image", 64, 4, 0.75, 2.0),
        ("tiny-z-image", 128, 3, 0.5, 2.0),
    ],
)
def test_lean_flow_frame_equals_the_pipeline(
    name: str, size: int, steps: int, strength: float, guidance: float | None
) -> None:
    """FLUX (live_flux.py) and Z-Image (live_zimage.py): flow-matching Euler with the
    resolution's shift, the pipelines' own strength rounding (3 steps at 0.5 run 2, where the
    UNet pipelines run 1), the VAE's shift factor; FLUX's packed latents, Z-Image's list input,
    negated prediction and guidance above 0; previews and progress per step."""
    m = model(name)
    inputs = DecodedInputs(init_rgb=sketch(size, seed=3))
    request = live(name, size, steps=steps, strength=strength)
    if guidance is not None:
        request = replace(request, guidance_scale=guidance)
    hooks = Notes(previews=True)
    lean = m.generate(request, inputs, hooks)
    assert hooks.notes["lean"] == "applied"
    assert hooks.notes["stream_batch"] == "not applied: off"
    run = steps - int(max(steps - steps * strength, 0))
    assert hooks.steps == [(i, run) for i in range(1, run + 1)]
    assert len(hooks.preview_images) == run
    pipeline_hooks = Notes()
    piped = m.generate(replace(request, priority=Priority.INTERACTIVE), inputs, pipeline_hooks)
    assert pipeline_hooks.steps[-1] == (run, run)  # the pipeline ran as many steps
    assert len(lean) == len(piped) == 1
    assert_close(lean[0], piped[0])
    other = m.generate(replace(request, seed=8), inputs, Notes())[0]
    assert np.abs(other - piped[0]).mean() > 10 * MEAN_TOLERANCE
    # Stream batch: the frame comes out run - 1 calls later, batched with the next input's
    # first step (per-row timesteps and step sizes; with guidance, the negative rows too),
    # and its image is the sequential frame's.
    streamed = replace(request, stream_batch=True, stream_id=f"flow-{name}-{size}")
    later = DecodedInputs(init_rgb=sketch(size, seed=4))
    outs = []
    for i, frame in enumerate([inputs] + [later] * (run - 1)):
        hooks = Notes()
        outs.append(m.generate(replace(streamed, client_request_id=f"s{i}"), frame, hooks))
        assert hooks.notes["stream_batch"] == "applied"
    assert all(out == [] for out in outs[:-1]) and hooks.notes["answers"] == "s0"
    assert_close(outs[-1][0], lean[0])


async def test_a_live_frame_replays_through_generate(aclient: Any) -> None:
    """Through the daemon: a live frame (the lean path) and Generate of the same settings (the
    pipeline) give the same pixels, so a live frame's recipe still replays."""
    from tests.conftest import decode, png_bytes

    sketch_png = png_bytes(sketch(64, 11))
    settings = {"prompt": "stone", "strength": 0.5, "steps": 4, "seed": 3, "size": 64}
    async with aclient.live(**settings) as session:
        await session.send(sketch_png)
        frame = await session.__aiter__().__anext__()
    assert frame.image is not None
    result = await aclient.generate(init_image=sketch_png, **settings)
    live_pixels = decode(frame.image.data).astype(int)
    generated = decode(result.image.data).astype(int)
    assert live_pixels.shape == generated.shape == (64, 64, 3)
    assert np.abs(live_pixels - generated).max() <= 1


async def test_stream_batch_through_the_daemon(daemon: Any, aclient: Any) -> None:
    """A live session with stream batch on the real backend: the first input gives no frame,
    the second gives the first's image (seq 1), re-sending the second flushes its own (seq 2);
    each equals the plain live frame of its input."""
    import asyncio

    from tests.conftest import decode, png_bytes, runner_models, wait_until

    sketches = [png_bytes(sketch(64, 20 + i)) for i in range(2)]
    settings = {"prompt": "stone", "strength": 0.5, "steps": 4, "seed": 5, "size": 64}
    plain = []
    async with aclient.live(**settings) as session:
        frames = session.__aiter__()
        for png in sketches:
            await session.send(png)
            plain.append(decode((await frames.__anext__()).image.data).astype(int))
    m = runner_models(daemon)[0]
    async with aclient.live(stream_batch=True, **settings) as session:
        frames = session.__aiter__()
        await session.send(sketches[0])
        await asyncio.to_thread(wait_until, lambda: m._lean.streams.held() > 0, 30)
        await session.send(sketches[1])
        first = await frames.__anext__()
        await session.send(sketches[1])  # the input stops changing: flush
        second = await frames.__anext__()
    assert first.seq == 1 and first.stream_batch and first.image is not None
    assert second.seq == 2 and second.image is not None and not second.unchanged
    assert np.abs(decode(first.image.data).astype(int) - plain[0]).max() <= 1
    assert np.abs(decode(second.image.data).astype(int) - plain[1]).max() <= 1


def test_lean_frame_keeps_a_channels_last_model_in_its_format() -> None:
    from pixelkiln_server.model_options import ModelOptions

    spec = replace(PRESETS["tiny-random"], options=ModelOptions(channels_last=True))
    m = registry.get(spec.backend).load(spec, LoadOptions(device="cpu", home=home_dir()))
    inputs = DecodedInputs(init_rgb=sketch(64, 4))
    request = live("tiny-random", 64)
    lean = m.generate(request, inputs, Notes())[0]
    assert str(m._lean.plan(request, Notes()).memory_format) == "torch.channels_last"
    piped = m.generate(replace(request, priority=Priority.INTERACTIVE), inputs, Notes())[0]
    assert_close(lean, piped)


def test_lean_frames_send_previews_and_stop_before_the_decode_on_cancel() -> None:
    m = model("tiny-random")
    inputs = DecodedInputs(init_rgb=sketch(64, 6))
    hooks = Notes(previews=True)
    m.generate(live("tiny-random", 64, steps=8, strength=0.5), inputs, hooks)
    assert [step for step, _ in hooks.preview_images] == [1, 2, 3, 4]
    assert all(
        len(images) == 1 and images[0].dtype == np.uint8 for _, images in hooks.preview_images
    )
    cancelled = Notes(cancel=True)
    with pytest.raises(Cancelled):
        m.generate(live("tiny-random", 64), inputs, cancelled)
    assert cancelled.steps == [(1, 2)]  # stopped at the first step's report


def test_stream_batch_on_sdxl_with_guidance_keeps_each_frames_image() -> None:
    """SDXL's added conditioning and guidance rows line up with the stacked frames."""
    m = model("tiny-sdxl")
    frames = [DecodedInputs(init_rgb=sketch(64, 30 + i)) for i in range(2)]
    base = live("tiny-sdxl", 64, guidance_scale=3.0, stream_batch=True, stream_id="xl")
    alone = m.generate(replace(base, stream_batch=False), frames[0], Notes())[0]
    assert m.generate(replace(base, client_request_id="x0"), frames[0], Notes()) == []
    hooks = Notes()
    out = m.generate(replace(base, client_request_id="x1"), frames[1], hooks)
    assert hooks.notes["answers"] == "x0"
    assert_close(out[0], alone)


def test_lean_frame_tiles_like_the_pipeline() -> None:
    """A tiled request (circular padding switched on per call) gives the pipeline's pixels."""
    from pixelkiln_server.types import Tiling

    m = model("tiny-random")
    inputs = DecodedInputs(init_rgb=sketch(64, 8))
    request = live("tiny-random", 64, tiling=Tiling.XY)
    lean = m.generate(request, inputs, Notes())[0]
    piped = m.generate(replace(request, priority=Priority.INTERACTIVE), inputs, Notes())[0]
    assert_close(lean, piped)
    untiled = m.generate(replace(request, tiling=Tiling.NONE), inputs, Notes())[0]
    assert np.abs(untiled - lean).mean() > 10 * MEAN_TOLERANCE


def test_the_tiny_vae_decode_option_still_decodes_live_frames(with_tiny: Any) -> None:
    """``--tiny-vae-decode``: live frames decode with the tiny autoencoder (encode with the
    full VAE), as the pipeline path did before the lean path took live frames."""
    from pixelkiln_server.backends.base import BatchItem

    inputs = DecodedInputs(init_rgb=sketch(64, 12))
    request = live("tiny-random", 64, prompt="tiny decode option")
    full = with_tiny.generate(request, inputs, Notes())[0]
    with_tiny.tiny_vae_decode = True
    try:
        with_tiny._lean._plans.clear()  # the option is read when a plan is built
        lean = with_tiny.generate(request, inputs, Notes())[0]
        piped = with_tiny._run([BatchItem(request, inputs, Notes())])[0][0]
    finally:
        with_tiny.tiny_vae_decode = False
        with_tiny._lean._plans.clear()
    assert_close(lean, piped)
    assert np.abs(lean - full).mean() > 0.01
