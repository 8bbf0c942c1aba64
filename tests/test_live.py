"""Live sessions over gRPC: latest wins, repeats are free, settings persist, limits hold."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import numpy as np
import pytest

from pixelkiln import AsyncClient, Client, LiveFrame, PixelKilnError
from pixelkiln_server.app import Daemon
from pixelkiln_server.engine.live import LiveSession
from pixelkiln_server.services.access import RequestRecord

from .conftest import decode, png_bytes, runner_models, running_daemon

RNG = np.random.default_rng(0)
SKETCHES = [png_bytes(RNG.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(20)]


async def collect(session: Any) -> list[LiveFrame]:
    return [frame async for frame in session]


async def test_latest_wins_while_busy(aclient: AsyncClient) -> None:
    async with aclient.live(prompt="stone", strength=1.0, steps=8, size=256) as session:
        for sketch in SKETCHES:
            await session.send(sketch)
        await session.close()
        frames = await collect(session)
    processed = [f for f in frames if not f.unchanged]
    assert 1 <= len(processed) <= 2
    assert frames[-1].seq == 20 and frames[-1].image is not None
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)
    assert sum(f.skipped for f in frames) == 20 - len(frames)
    last = frames[-1]
    assert last.timings["model_ms"] > 0
    assert last.timings["total_ms"] >= last.timings["model_ms"]


async def test_unchanged_input_costs_nothing_and_settings_persist(
    daemon: Daemon, aclient: AsyncClient
) -> None:
    model: Any = runner_models(daemon)[0]
    async with aclient.live(prompt="red brick wall", strength=0.5, steps=4, seed=9) as session:
        await session.send(SKETCHES[0])
        frames = session.__aiter__()
        first = await frames.__anext__()
        encodes = model.text_encodes
        await session.send(SKETCHES[0])  # same bytes, same settings
        same = await frames.__anext__()
        await session.send(prompt="blue water")  # settings only: the last image is kept
        changed = await frames.__anext__()
        await session.send(SKETCHES[0], prompt="red brick wall")
        back = await frames.__anext__()
    assert first.image is not None and not first.unchanged
    assert same.unchanged and same.image is None and same.timings["model_ms"] == 0
    assert changed.image is not None and not changed.unchanged
    assert not np.array_equal(decode(changed.image.data), decode(first.image.data))
    assert back.image is not None
    assert np.array_equal(decode(back.image.data), decode(first.image.data))
    assert first.seed == 9 and changed.seed == 9
    # Prompt embeddings were cached: only the new prompt reached the text encoder.
    assert model.text_encodes - encodes == 1


async def test_live_without_image_is_text_to_image(aclient: AsyncClient) -> None:
    async with aclient.live(prompt="lava", steps=2) as session:
        await session.send()
        await session.close()
        frames = await collect(session)
    assert len(frames) == 1 and frames[0].image is not None


async def test_bad_live_settings_end_the_session_with_the_field(aclient: AsyncClient) -> None:
    with pytest.raises(PixelKilnError) as info:
        async with aclient.live(prompt="x", strength=1.5) as session:
            await session.send(SKETCHES[0])
            await collect(session)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "strength" in info.value.message


async def test_a_failed_session_is_recorded_with_the_code_its_client_saw(
    daemon: Daemon, aclient: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The access log and the metrics once counted these two sessions as OK."""
    records: list[RequestRecord] = []
    daemon.ops.request_listeners.append(records.append)
    try:
        with pytest.raises(PixelKilnError) as bad:  # it once reached the step count: INTERNAL
            async with aclient.live(prompt="x", strength=float("nan")) as session:
                await session.send(SKETCHES[0])
                await collect(session)

        async def bug(*args: object) -> None:
            raise RuntimeError("a bug in the live engine")

        monkeypatch.setattr(LiveSession, "_process", bug)
        with pytest.raises(PixelKilnError) as broken:
            async with aclient.live(prompt="x", strength=0.5) as session:
                await session.send(SKETCHES[0])
                await collect(session)
    finally:
        daemon.ops.request_listeners.remove(records.append)
    assert bad.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert bad.value.message == "strength: must be in (0, 1], got nan"
    assert broken.value.code is grpc.StatusCode.INTERNAL
    assert "a bug" not in broken.value.message  # never the exception's text
    assert [r.code for r in records if r.method == "Live"] == ["INVALID_ARGUMENT", "INTERNAL"]


async def test_an_undecodable_input_names_the_live_field(aclient: AsyncClient) -> None:
    """A frame's request calls the input init_image; the client sent LiveInput.image."""
    with pytest.raises(PixelKilnError) as info:
        async with aclient.live(prompt="x", strength=0.5) as session:
            await session.send(b"not an image at all")
            await collect(session)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message.startswith("image: "), info.value.message


async def test_idle_timeout_and_session_limit() -> None:
    async with (
        running_daemon(live_idle_timeout_s=0.5, max_live_sessions=1) as d,
        AsyncClient(d.address, timeout=30) as client,
    ):
        async with client.live(prompt="x", steps=2) as first:
            await first.send(SKETCHES[1])
            frames = first.__aiter__()
            assert (await frames.__anext__()).image is not None
            with pytest.raises(PixelKilnError) as limit:
                async with client.live(prompt="y", steps=2) as second:
                    await second.send(SKETCHES[2])
                    await collect(second)
            assert limit.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "1 open" in limit.value.message
            with pytest.raises(PixelKilnError) as idle:
                await frames.__anext__()
            assert idle.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
            assert "idle" in idle.value.message
        await asyncio.sleep(0.1)
        assert d.engine.live_sessions == 0


async def test_one_client_holds_at_most_its_share_of_live_places() -> None:
    """A client that opens sessions (and keeps them busy) cannot take every place: past
    --max-live-per-client it is refused, naming the flag, while another client still gets one."""
    async with (
        running_daemon(max_live_sessions=3, max_live_per_client=2) as d,
        AsyncClient(d.address, timeout=30) as greedy,
        AsyncClient(d.address, timeout=30) as other,
        greedy.live(prompt="x", steps=2) as one,
        greedy.live(prompt="x", steps=2) as two,
    ):
        for session in (one, two):
            await session.send(SKETCHES[1])
            assert (await session.__aiter__().__anext__()).image is not None
        with pytest.raises(PixelKilnError) as refused:
            async with greedy.live(prompt="y", steps=2) as third:
                await third.send(SKETCHES[2])
                await collect(third)
        assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-live-per-client" in refused.value.message
        async with other.live(prompt="z", steps=2) as theirs:
            await theirs.send(SKETCHES[2])
            assert (await theirs.__aiter__().__anext__()).image is not None


def test_sync_live_session(served: str) -> None:
    with Client(served, timeout=60) as client, client.live(prompt="moss", steps=2) as session:
        session.send(SKETCHES[3])
        frame = next(iter(session))
        assert frame.seq == 1 and frame.image is not None
        assert decode(frame.image.data).shape == (64, 64, 3)


def test_live_steps_default_runs_at_least_one_img2img_step() -> None:
    from pixelkiln_server.engine.live import _live_steps

    assert _live_steps(1, 0.5) == 2  # sd-turbo: 1 step by default, strength 0.5 -> 2
    assert _live_steps(4, 0.5) == 4
    assert _live_steps(1, 0.3) == 4
    assert _live_steps(1, 1.0) == 1


def test_cli_live_watch_writes_the_newest_frame(served: str, tmp_path: Any) -> None:
    import subprocess
    import sys

    from .conftest import ROOT

    sketch = tmp_path / "sketch.png"
    sketch.write_bytes(SKETCHES[4])
    out = tmp_path / "live.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixelkiln.cli",
            "live",
            "bricks",
            "--watch",
            str(sketch),
            "-o",
            str(out),
            "--steps",
            "2",
            "--frames",
            "1",
            "--address",
            served,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "frame 1:" in proc.stdout
    assert decode(out.read_bytes()).shape == (64, 64, 3)


async def test_cli_live_watch_outlives_the_idle_timeout(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the watched file does not change, `pixelkiln live` re-sends it (an unchanged
    input), so the daemon's idle timeout does not end the session between two edits."""
    from pixelkiln import _cli_live as live_cli
    from pixelkiln import cli

    monkeypatch.setattr(live_cli, "LIVE_KEEPALIVE_S", 0.3)
    sketch, out = tmp_path / "sketch.png", tmp_path / "live.png"
    sketch.write_bytes(SKETCHES[5])
    async with running_daemon(live_idle_timeout_s=1.0) as d:
        argv = ["live", "bricks", "--watch", str(sketch), "-o", str(out), "--frames", "12"]
        argv += ["--steps", "2", "--interval", "0.05", "--address", d.address]
        run = asyncio.ensure_future(asyncio.to_thread(cli.main, argv))
        while not out.exists() and not run.done():
            await asyncio.sleep(0.05)
        assert not run.done(), f"pixelkiln live exited with {run.result()} before a frame"
        first = out.read_bytes()
        # Two idle timeouts without an edit (about 7 unchanged frames; --frames counts them).
        await asyncio.sleep(2.0)
        assert not run.done(), "the session ended while the file did not change"
        sketch.write_bytes(SKETCHES[6])
        assert await asyncio.wait_for(run, 120) == 0
    assert out.read_bytes() != first
