"""The same end-to-end checks through both runners: in a thread of the daemon and in a child
process (what `pixelkiln serve` uses), on real tiny-random pipelines over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from pixelkiln import AsyncClient, InvalidArgumentError, PixelKilnError, Preview, Progress
from pixelkiln.v1 import envelope_pb2 as env_pb
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln_server.app import Daemon

from .conftest import decode, png_bytes, running_daemon

RESULTS: dict[str, bytes] = {}


@pytest_asyncio.fixture(scope="module", params=["thread", "process"])
async def runner_daemon(request: pytest.FixtureRequest) -> AsyncIterator[Daemon]:
    async with running_daemon(runner=request.param) as d:
        yield d


@pytest_asyncio.fixture(scope="module")
async def rclient(runner_daemon: Daemon) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(runner_daemon.address, timeout=120)
    yield client
    await client.close()


def kind(d: Daemon) -> str:
    return d.config.runner


async def test_generate_streams_progress_previews_and_a_png(
    runner_daemon: Daemon, rclient: AsyncClient
) -> None:
    events = [e async for e in rclient.stream("red brick wall", seed=3, steps=3, preview_every=1)]
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2, 3]
    assert len([e for e in events if isinstance(e, Preview)]) == 3
    result = events[-1]
    assert result.image.data[:8] == b"\x89PNG\r\n\x1a\n"  # type: ignore[attr-defined]
    RESULTS[kind(runner_daemon)] = result.image.data  # type: ignore[attr-defined]


async def test_both_runners_give_the_same_bytes(runner_daemon: Daemon) -> None:
    if len(RESULTS) < 2:
        pytest.skip("needs both runner kinds to have run (module order)")
    assert RESULTS["thread"] == RESULTS["process"]


async def test_img2img_and_inpainting(rclient: AsyncClient) -> None:
    sketch = np.zeros((64, 64, 3), np.uint8)
    sketch[:, 32:] = 255
    edit = await rclient.generate("x", init_image=png_bytes(sketch), strength=0.5, seed=1)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    filled = await rclient.generate("x", init_image=png_bytes(sketch), mask=png_bytes(mask), seed=1)
    assert decode(edit.image.data).shape == decode(filled.image.data).shape == (64, 64, 3)


async def test_bad_input_is_refused_before_accepted(rclient: AsyncClient) -> None:
    with pytest.raises(InvalidArgumentError, match="steps"):
        await rclient.generate("x", steps=999)


async def test_cancel_mid_run(runner_daemon: Daemon, rclient: AsyncClient) -> None:
    steps = 0
    with pytest.raises(PixelKilnError) as info:
        async for event in rclient.stream("x", seed=1, steps=40, width=256, height=256):
            if isinstance(event, Progress):
                steps += 1
                if steps == 1:
                    await rclient.cancel(event.request_id)
    assert info.value.code is grpc.StatusCode.CANCELLED
    assert steps < 40


async def test_live_session(rclient: AsyncClient) -> None:
    sketch = png_bytes(np.full((64, 64, 3), 128, np.uint8))
    async with rclient.live(prompt="lava", strength=0.5, seed=2) as session:
        frames = session.__aiter__()
        await session.send(sketch)
        first = await frames.__anext__()
        await session.send(sketch)
        again = await frames.__anext__()
    assert first.image is not None and again.unchanged


async def test_models_load_unload_and_status(runner_daemon: Daemon, rclient: AsyncClient) -> None:
    info = await rclient.load("tiny-sdxl")
    assert info.loaded
    status = await rclient.status()
    assert "tiny-sdxl" in status.loaded_models
    assert [r.state for r in status.runners] == ["ready"]
    assert (status.runners[0].pid != 0) == (kind(runner_daemon) == "process")
    assert await rclient.unload("tiny-sdxl")
    assert "tiny-sdxl" not in (await rclient.status()).loaded_models


async def test_websocket_generate(runner_daemon: Daemon) -> None:
    assert runner_daemon.websocket is not None
    async with connect(runner_daemon.ws_url, max_size=None) as ws:
        request = gen_pb.GenerateRequest(prompt="moss", seed=4, steps=2)
        await ws.send(env_pb.Envelope(request_id="r1", generate=request).SerializeToString())
        kinds = []
        while True:
            envelope = env_pb.Envelope.FromString(await asyncio.wait_for(ws.recv(), 60))
            kinds.append(envelope.WhichOneof("body"))
            if envelope.HasField("error") or envelope.event.HasField("result"):
                break
    assert kinds[-1] == "event" and "error" not in kinds
