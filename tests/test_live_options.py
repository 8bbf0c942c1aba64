"""Live options of issue #19 end to end: the similar-frame skip, frames as raw RGBA8 or JPEG
instead of PNG, stream batch as the session sees it (a frame answers an earlier input), and
what the frames report (similar, stream_batch, tiny_autoencoder)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from PIL import Image
from websockets.asyncio.client import connect

from pixelkiln import AsyncClient, LiveFrame
from pixelkiln.v1 import envelope_pb2 as env_pb
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln_server import capabilities
from pixelkiln_server.app import Daemon
from pixelkiln_server.backends import fake
from pixelkiln_server.backends import registry as backend_registry
from pixelkiln_server.engine import similarity
from pixelkiln_server.types import DecodedInputs, GenerationRequest

from .conftest import ROOT, decode, png_bytes, running_daemon
from .test_websocket import MAX, send, until

RNG = np.random.default_rng(19)
BASE = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
OTHER = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)


def nudged(pixels: np.ndarray, seed: int, amount: int = 3) -> bytes:
    """``pixels`` with noise of +-``amount`` levels: a PNG that differs, slightly."""
    noise = np.random.default_rng(seed).integers(-amount, amount + 1, pixels.shape)
    return png_bytes(np.clip(pixels.astype(np.int16) + noise, 0, 255).astype(np.uint8))


async def step(session: Any, frames: AsyncIterator[LiveFrame], image: bytes) -> LiveFrame:
    """Send one input and wait for its frame (so no input replaces another)."""
    await session.send(image)
    return await frames.__anext__()


def test_signature_difference_grades_changes() -> None:
    base = similarity.signature(BASE)
    assert base.gray.shape == (32, 32) and base.gray.dtype == np.float32
    assert base.size == (64, 64)
    slight = similarity.signature(decode(nudged(BASE, 1)))
    clear = similarity.signature(OTHER)
    assert similarity.difference(base, base) == 0.0
    assert 0.0 < similarity.difference(base, slight) < 0.005
    assert similarity.difference(base, clear) > 0.05
    # Another size is never similar.
    assert similarity.difference(base, similarity.signature(BASE[:32])) == 1.0


async def test_similar_inputs_are_skipped_up_to_the_max(aclient: AsyncClient) -> None:
    settings = {"prompt": "moss", "steps": 2, "seed": 4}
    async with aclient.live(**settings, similar_skip_threshold=0.02, similar_skip_max=2) as s:
        frames = s.__aiter__()
        first = await step(s, frames, png_bytes(BASE))
        slight = [await step(s, frames, nudged(BASE, seed)) for seed in (1, 2, 3, 4)]
        # The same bytes as the last processed input (seq 4).
        identical = await step(s, frames, nudged(BASE, 3))
        clear = await step(s, frames, png_bytes(OTHER))
    assert first.image is not None and not first.similar
    # Two skipped as similar (no image: the previous one stands), the third runs anyway
    # (max reached), the fourth is compared with the third and skipped again.
    assert [f.similar for f in slight] == [True, True, False, True]
    assert all(f.unchanged and f.image is None for f in slight if f.similar)
    assert slight[0].timings["model_ms"] == 0
    assert slight[2].image is not None and not slight[2].unchanged
    assert [f.seq for f in slight] == [2, 3, 4, 5]
    # An exact repeat is unchanged, as before, not "similar".
    assert identical.unchanged and not identical.similar
    assert clear.image is not None and not clear.similar
    assert not np.array_equal(decode(clear.image.data), decode(first.image.data))


async def test_without_a_threshold_only_exact_repeats_are_skipped(aclient: AsyncClient) -> None:
    async with aclient.live(prompt="moss", steps=2, seed=4) as s:
        frames = s.__aiter__()
        await step(s, frames, png_bytes(BASE))
        slight = await step(s, frames, nudged(BASE, 1))
        repeat = await step(s, frames, nudged(BASE, 1))
    assert slight.image is not None and not slight.similar and not slight.unchanged
    assert repeat.unchanged and not repeat.similar


async def test_same_pixels_in_other_bytes_are_similar(aclient: AsyncClient) -> None:
    """A re-encoded input (other PNG bytes, same pixels) is not an exact repeat; with any
    threshold it is similar; a settings change runs even a similar input."""
    other_bytes = io.BytesIO()
    Image.fromarray(BASE).save(other_bytes, format="PNG", compress_level=9)
    assert other_bytes.getvalue() != png_bytes(BASE)
    async with aclient.live(prompt="moss", steps=2, similar_skip_threshold=0.001) as s:
        frames = s.__aiter__()
        await step(s, frames, png_bytes(BASE))
        same = await step(s, frames, other_bytes.getvalue())
        await s.send(nudged(BASE, 1), prompt="lichen")
        new_prompt = await frames.__anext__()
    assert same.similar and same.image is None
    assert new_prompt.image is not None and not new_prompt.similar


async def test_similar_skip_over_websocket(daemon: Daemon) -> None:
    settings = gen_pb.LiveSettings(prompt="moss", steps=2, similar_skip_threshold=0.02)
    async with connect(daemon.ws_url, max_size=MAX) as ws:
        frames = []
        for seq, image in ((1, png_bytes(BASE)), (2, nudged(BASE, 1)), (3, png_bytes(OTHER))):
            live_input = gen_pb.LiveInput(seq=seq, settings=settings if seq == 1 else None)
            live_input.image.data = image
            await send(ws, "sim", live_input=live_input)
            envs = await until(ws, "sim", "live_frame")
            frames.append(envs[-1].live_frame)
        await send(ws, "sim", live_end=env_pb.LiveEnd())
        await until(ws, "sim", "live_end")
    assert [f.similar for f in frames] == [False, True, False]
    assert frames[1].unchanged and not frames[1].image.data
    assert frames[2].image.data


async def test_raw_and_jpeg_frames_skip_png(aclient: AsyncClient) -> None:
    """RAW_RGBA8 frames are width*height*4 bytes of the same pixels as the PNG frame (lossless,
    so no PNG was made and decoded on the way); JPEG frames are JPEG."""
    got: dict[str, LiveFrame] = {}
    for encoding in ("png", "raw_rgba8", "jpeg"):
        async with aclient.live(
            prompt="moss", steps=2, seed=7, size=64, output_encoding=encoding
        ) as s:
            frames = s.__aiter__()
            got[encoding] = await step(s, frames, png_bytes(BASE))
    png, raw, jpeg = got["png"].image, got["raw_rgba8"].image, got["jpeg"].image
    assert png is not None and raw is not None and jpeg is not None
    assert png.data.startswith(b"\x89PNG")
    assert raw.encoding == "raw_rgba8" and (raw.width, raw.height) == (64, 64)
    assert len(raw.data) == 64 * 64 * 4
    pixels = raw.to_numpy()
    assert pixels.shape == (64, 64, 4) and (pixels[..., 3] == 255).all()
    assert np.array_equal(pixels[..., :3], decode(png.data))
    assert np.array_equal(np.asarray(raw.to_pil())[..., :3], pixels[..., :3])
    assert jpeg.encoding == "jpeg" and jpeg.data.startswith(b"\xff\xd8")
    assert np.abs(jpeg.to_numpy().astype(int) - decode(png.data)).mean() < 16


def test_raw_helper_refuses_a_wrong_length() -> None:
    from pixelkiln.events import Image as ClientImage

    with pytest.raises(ValueError, match="needs 64 bytes, got 3"):
        ClientImage(b"abc", "raw_rgba8", 4, 4).to_numpy()


STARTED = threading.Event()
CALLS: list[str] = []


class StreamFakeModel(fake.FakeModel):
    """A scripted backend keeping the stream-batch contract (live_contract.md: one frame of
    lag per stream, [] while filling, notes naming the input an image answers and what is
    held). Its image is the input itself, so a frame shows which input it comes from."""

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.held: dict[str, list[tuple[str, np.ndarray]]] = {}

    def generate(
        self, request: GenerationRequest, inputs: DecodedInputs, hooks: Any
    ) -> list[np.ndarray]:
        if inputs.init_rgb is None:  # the daemon's warm-up
            return [fake.fake_image(0, request.width, request.height)]
        CALLS.append(request.client_request_id)
        STARTED.set()
        image = inputs.init_rgb.astype(np.float32) / 255.0
        if not request.stream_batch:
            return [image]
        hooks.on_note("stream_batch", "applied")
        hooks.on_note("tiny_autoencoder", "not applied: no vae_tiny/ in the model folder")
        queue = self.held.setdefault(request.stream_id, [])
        queue.append((request.client_request_id, image))
        if len(queue) < 2:
            hooks.on_note("held", "1")
            return []
        answers, out = queue.pop(0)
        hooks.on_note("answers", answers)
        hooks.on_note("held", str(len(queue)))
        return [out]


class StreamFakeBackend:
    name = "stream-fake"

    def load(self, spec: Any, options: Any) -> Any:
        return StreamFakeModel(spec)


async def test_stream_batch_frames_name_the_input_they_come_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(backend_registry._BACKENDS, "stream-fake", f"{__name__}:StreamFakeBackend")
    monkeypatch.setitem(
        capabilities.DECLARATIONS,
        "stream-fake",
        lambda spec: capabilities.Capabilities(inpainting=False, tiling=()),
    )
    spec = replace(fake.FAKE_SPEC, name="stream-fake", backend="stream-fake")
    images = [png_bytes(np.full((64, 64, 3), 40 * i, np.uint8)) for i in range(1, 4)]
    async with running_daemon(register=(spec,), default_model="stream-fake") as d:
        client = AsyncClient(d.address, timeout=60)
        try:
            async with client.live(prompt="x", steps=2, stream_batch=True) as s:
                frames = s.__aiter__()
                await s.send(images[0])  # no frame yet: the pipeline fills
                assert await asyncio.to_thread(STARTED.wait, 30)
                first = await step(s, frames, images[1])
                # The input stops changing: sending the last one again flushes it.
                flushed = await step(s, frames, images[1])
                after = await step(s, frames, images[1])  # nothing of another input held
            async with client.live(prompt="x", steps=2) as s:
                frames = s.__aiter__()
                off = await step(s, frames, images[2])
        finally:
            await client.close()
    assert first.seq == 1 and first.image is not None
    assert first.stream_batch and not first.tiny_autoencoder
    assert np.array_equal(decode(first.image.data), decode(images[0]))
    # Its recipe names the input it answers (the first), not the one that brought it out.
    answered = json.loads(Image.open(io.BytesIO(first.image.data)).text["pixelkiln"])
    assert answered["init_image_sha256"] == hashlib.sha256(images[0]).hexdigest()
    flushed_recipe = json.loads(Image.open(io.BytesIO(flushed.image.data)).text["pixelkiln"])
    assert flushed_recipe["init_image_sha256"] == hashlib.sha256(images[1]).hexdigest()
    assert flushed.seq == 2 and flushed.image is not None and not flushed.unchanged
    assert np.array_equal(decode(flushed.image.data), decode(images[1]))
    assert after.seq == 4 and after.unchanged and after.image is None
    # Ran: the two inputs and the flush; then the plain session's one input.
    assert [c.split(":")[1] for c in CALLS] == ["1", "2", "3", "1"]
    assert off.seq == 1 and off.image is not None and not off.stream_batch


async def test_frames_count_the_model_calls_recorded_graphs_served() -> None:
    """tiny-random on the CPU: the lean path records each call's graph at its shape's second
    call (backends/traced.py): the first frame runs eagerly but for its second UNet step, and
    the frames after it replay every call."""
    images = [png_bytes(np.roll(BASE, 8 * i, axis=1)) for i in range(3)]
    async with running_daemon() as d:
        client = AsyncClient(d.address, timeout=60)
        try:
            async with client.live(prompt="graphs", steps=2, strength=1.0) as s:
                frames = s.__aiter__()
                got = [await step(s, frames, image) for image in images]
        finally:
            await client.close()
    assert all(f.image is not None for f in got)
    assert got[0].graph_calls == 1
    # The VAE encode, the UNet at each of the 2 steps and the VAE decode, every frame after.
    assert got[1].graph_calls == got[2].graph_calls == 4
    assert "4 graph calls" in repr(got[2])


def _cli_live(served: str, tmp_path: Any, *flags: str) -> subprocess.CompletedProcess[str]:
    sketch = tmp_path / "sketch.png"
    sketch.write_bytes(png_bytes(BASE))
    return subprocess.run(
        [sys.executable, "-m", "pixelkiln.cli", "live", "bricks", "--watch", str(sketch)]
        + ["-o", str(tmp_path / "live.png"), "--steps", "2", "--frames", "1"]
        + ["--address", served, *flags],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_cli_live_takes_the_new_flags(served: str, tmp_path: Any) -> None:
    """--stream-batch (the CLI re-sends a still file once, so its frame comes out),
    --similar-skip and --similar-skip-max reach the daemon; a bad threshold is a usage error."""
    flags = ("--stream-batch", "--similar-skip", "0.01", "--similar-skip-max", "3")
    proc = _cli_live(served, tmp_path, *flags)
    assert proc.returncode == 0, proc.stderr
    assert "frame 1:" in proc.stdout
    assert decode((tmp_path / "live.png").read_bytes()).shape == (64, 64, 3)
    bad = _cli_live(served, tmp_path, "--similar-skip", "2")
    assert bad.returncode != 0
    assert "--similar-skip: must be between 0 and 1" in bad.stderr


async def test_an_input_is_decoded_once_with_the_skip_on(
    aclient: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session decodes the input for its signature; the job reuses those pixels."""
    from pixelkiln_server.imaging import codec

    decodes: list[str] = []
    real = codec.decode

    def counting(image: Any, field: str, **kwargs: Any) -> Any:
        decodes.append(field)
        return real(image, field, **kwargs)

    monkeypatch.setattr(codec, "decode", counting)
    async with aclient.live(prompt="moss", steps=2, similar_skip_threshold=0.02) as s:
        frames = s.__aiter__()
        ran = await step(s, frames, png_bytes(BASE))
        skipped = await step(s, frames, nudged(BASE, 1))
    assert ran.image is not None and skipped.similar
    assert decodes == ["init_image", "init_image"]


def test_runner_notes_become_result_fields() -> None:
    from pixelkiln_server.runners.results import noted

    asked = GenerationRequest(stream_batch=True, tiny_autoencoder=True)
    notes = {
        "lean": "applied",
        "stream_batch": "applied",
        "tiny_autoencoder": "not applied: no vae_tiny/ in the model folder",
        "answers": "s:3",
        "held": "2",
        "graph_calls": "7",
    }
    fields = noted(asked, notes)
    assert fields["applied"] == ("lean", "stream_batch")
    assert fields["warnings"] == ("tiny_autoencoder not applied: no vae_tiny/ in the model folder",)
    assert (fields["answers"], fields["held"], fields["graph_calls"]) == ("s:3", 2, 7)
    garbled = noted(asked, {"graph_calls": "x", "held": "-1"})  # never from our backends
    assert (garbled["graph_calls"], garbled["held"]) == (0, 0)
    # Not asked for: no warning; no notes at all: nothing applied, nothing held.
    assert noted(GenerationRequest(), notes)["warnings"] == ()
    assert noted(GenerationRequest(), {}) == {
        "applied": (),
        "warnings": (),
        "answers": "",
        "held": 0,
        "graph_calls": 0,
    }


async def test_cli_live_brings_out_every_frame_stream_batch_holds(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 4 denoising steps (8 x strength 0.5) a frame answers the input 3 inputs earlier: the
    CLI re-sends a still file as each frame comes until the frame of its change is out (it
    re-sent once, and the rest waited for keep-alives 5 s apart; none here)."""
    from pixelkiln import _cli_live as live_cli
    from pixelkiln import cli

    from .conftest import running_daemon

    monkeypatch.setattr(live_cli, "LIVE_KEEPALIVE_S", 1e9)
    sketch = tmp_path / "sketch.png"
    sketch.write_bytes(png_bytes(BASE))
    out = tmp_path / "live.png"
    argv = ["live", "bricks", "--watch", str(sketch), "-o", str(out), "--steps", "8"]
    argv += ["--strength", "0.5", "--stream-batch", "--frames", "1"]
    async with running_daemon() as d:
        code = await asyncio.wait_for(
            asyncio.to_thread(cli.main, [*argv, "--address", d.address]), 60
        )
    assert code == 0
    assert decode(out.read_bytes()).shape == (64, 64, 3)
