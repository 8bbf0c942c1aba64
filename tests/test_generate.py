"""txt2img / img2img / inpainting end to end through a real daemon on tiny-random."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixelkiln import Accepted, AsyncClient, Preview, Progress, Queued, Result
from pixelkiln._request import build_request, quiet_defaults
from pixelkiln.events import Event
from pixelkiln_server.app import Daemon
from pixelkiln_server.imaging.codec import RECIPE_PNG_KEY, read_png_text
from pixelkiln_server.services.access import RequestRecord
from pixelkiln_server.types import GenerationRequest, PreviewOptions
from pixelkiln_server.validation import resolve

from .conftest import decode, png_bytes


async def collect(client: AsyncClient, prompt: str, **options: object) -> list[Event]:
    return [event async for event in client.stream(prompt, **options)]


async def test_txt2img_event_order_and_previews(aclient: AsyncClient) -> None:
    events = await collect(aclient, "red brick wall", steps=4, seed=3, preview_every=2)
    assert isinstance(events[0], Accepted)
    assert isinstance(events[-1], Result)
    kinds = [type(e).__name__ for e in events]
    # Accepted, optional Queued, then progress (with previews) and a single result.
    body = [k for k in kinds[1:-1] if k != "Queued"]
    assert body == ["Progress", "Progress", "Preview", "Progress", "Progress", "Preview"]
    assert all(not isinstance(e, Queued) for e in events[kinds.index("Progress") :])
    steps = [e.step for e in events if isinstance(e, Progress)]
    assert steps == [1, 2, 3, 4]
    assert {e.total for e in events if isinstance(e, Progress)} == {4}
    previews = [e for e in events if isinstance(e, Preview)]
    assert [p.step for p in previews] == [2, 4]
    preview_img = previews[0].images[0]
    assert preview_img.encoding == "jpeg" and preview_img.data[:2] == b"\xff\xd8"
    assert max(preview_img.to_pil().size) == 64  # the default side (256), never above the result
    result = events[-1]
    assert isinstance(result, Result)
    img = result.image
    assert (img.width, img.height) == (64, 64)
    assert img.data.startswith(b"\x89PNG")
    assert decode(img.data).shape == (64, 64, 3)
    accepted = events[0]
    assert accepted.seed == 3 and accepted.steps == 4 and accepted.model == "tiny-random"


async def test_no_previews_unless_asked(aclient: AsyncClient) -> None:
    events = await collect(aclient, "stone", steps=2, seed=1)
    assert not [e for e in events if isinstance(e, Preview)]


async def test_progress_can_be_left_out_and_generate_asks_for_none_without_on_event(
    aclient: AsyncClient,
) -> None:
    quiet = await collect(aclient, "stone", steps=3, seed=1, preview_every=3, progress=False)
    kinds = [type(e).__name__ for e in quiet if not isinstance(e, Queued)]
    assert kinds == ["Accepted", "Preview", "Result"]  # previews still come
    seen: list[Event] = []
    await aclient.generate("stone", steps=3, seed=1, on_event=seen.append)
    assert [e.step for e in seen if isinstance(e, Progress)] == [1, 2, 3]
    # Without on_event nothing would see them: the request asks for none (same image).
    request = build_request("stone", steps=3, seed=1, progress=False)
    assert request.preview.no_progress and not build_request("stone").preview.no_progress
    result = await aclient.generate("stone", steps=3, seed=1)
    assert result.image.data == next(e for e in seen if isinstance(e, Result)).image.data


async def test_result_only_streams_one_message_and_generate_asks_for_it_without_on_event(
    aclient: AsyncClient, daemon: Daemon
) -> None:
    events = await collect(aclient, "stone", steps=3, seed=2, result_only=True)
    assert [type(e).__name__ for e in events] == ["Result"]
    full = await collect(aclient, "stone", steps=3, seed=2)
    assert full[-1].image.data == events[0].image.data  # the same image, events or not
    assert isinstance(full[0], Accepted)
    # The access record still has the resolved request (it came from Accepted before).
    records: list[RequestRecord] = []
    daemon.ops.request_listeners.append(records.append)
    try:
        result = await aclient.generate("stone", steps=3, seed=2)  # width/height: the model's
    finally:
        daemon.ops.request_listeners.remove(records.append)
    (record,) = [r for r in records if r.method == "Generate"]
    size = (result.image.width, result.image.height)
    assert (record.model, record.steps, record.width, record.height) == ("tiny-random", 3, *size)
    assert record.code == "OK" and record.timings is not None
    # The runner is asked for no Progress messages either: no one would see them.
    spec = daemon.engine.registry.spec("tiny-random")
    quiet = GenerationRequest(prompt="stone", preview=PreviewOptions(result_only=True))
    resolved, _ = resolve(quiet, spec, daemon.engine.config.limits)
    assert resolved.preview.result_only and not resolved.preview.progress
    # generate() without on_event asks for the Result alone, unless it was asked for more.
    asked = {}
    for options in ({}, {"progress": True}, {"preview_every": 2}, {"result_only": False}):
        opts = dict(options)
        quiet_defaults(opts)
        asked[str(options)] = build_request("stone", **opts).preview.result_only
    assert asked == {
        "{}": True,
        "{'progress': True}": False,
        "{'preview_every': 2}": False,
        "{'result_only': False}": False,
    }


async def test_preview_size_and_encoding(aclient: AsyncClient) -> None:
    events = await collect(
        aclient,
        "stone",
        steps=1,
        seed=1,
        preview_every=1,
        preview_max_side=32,
        preview_encoding="webp",
    )
    preview = next(e for e in events if isinstance(e, Preview))
    assert preview.images[0].data[8:12] == b"WEBP"
    assert max(preview.images[0].to_pil().size) == 32
    wide = await collect(
        aclient, "stone", steps=1, seed=1, width=128, height=64, preview_every=1,
        preview_max_side=512,
    )  # fmt: skip
    shown = next(e for e in wide if isinstance(e, Preview)).images[0].to_pil().size
    assert shown == (128, 64)  # a preview is never larger than its result


async def test_determinism_and_recipe_in_png(aclient: AsyncClient) -> None:
    a = await aclient.generate("mossy cobblestone", seed=1234, steps=2, width=96, height=64)
    b = await aclient.generate("mossy cobblestone", seed=1234, steps=2, width=96, height=64)
    c = await aclient.generate("mossy cobblestone", seed=1235, steps=2, width=96, height=64)
    pa, pb, pc = decode(a.image.data), decode(b.image.data), decode(c.image.data)
    assert pa.shape == (64, 96, 3)
    assert np.array_equal(pa, pb)
    assert not np.array_equal(pa, pc)
    text = read_png_text(a.image.data)
    recipe = json.loads(text[RECIPE_PNG_KEY])
    assert recipe == a.recipe
    assert a.recipe_json == text[RECIPE_PNG_KEY]  # made once by the runner, sent as it is
    jpeg = await aclient.generate("mossy cobblestone", seed=1234, steps=2, output_encoding="jpeg")
    assert jpeg.recipe["request"]["seed"] == 1234  # no PNG to carry it: the result does
    req = recipe["request"]
    assert req["prompt"] == "mossy cobblestone" and req["seed"] == 1234
    assert (req["width"], req["height"], req["steps"]) == (96, 64, 2)
    assert req["guidance_scale"] == 0.0 and req["model"] == "tiny-random"
    assert recipe["pixelkiln_version"] and recipe["dtype"] == "fp32"
    # Replaying the recipe read back from the PNG gives the same pixels.
    replay = await aclient.replay(recipe)
    assert np.array_equal(decode(replay.image.data), pa)


async def test_server_picks_seed_and_reports_it(aclient: AsyncClient) -> None:
    events = await collect(aclient, "sand", steps=1)
    accepted, result = events[0], events[-1]
    assert isinstance(accepted, Accepted) and isinstance(result, Result)
    assert result.image.seed == accepted.seed
    again = await aclient.generate("sand", steps=1, seed=accepted.seed)
    assert np.array_equal(decode(again.image.data), decode(result.image.data))


async def test_num_images_have_distinct_reproducible_seeds(aclient: AsyncClient) -> None:
    result = await aclient.generate("lava", steps=1, seed=50, num_images=3)
    assert [i.seed for i in result.images] == [50, 51, 52]
    assert [i.index for i in result.images] == [0, 1, 2]
    pixels = [decode(i.data) for i in result.images]
    assert not np.array_equal(pixels[0], pixels[1])
    alone = await aclient.generate("lava", steps=1, seed=51)
    # Alone it is the same image, to the tolerance the recipe's batch_images documents: a
    # batched kernel may sum in another order (seen with one torch thread: one level in a
    # few pixels).
    diff = np.abs(decode(alone.image.data).astype(int) - pixels[1])
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


async def test_img2img_follows_init_and_strength(aclient: AsyncClient) -> None:
    rng = np.random.default_rng(0)
    init = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    low = await aclient.generate("wood", init_image=png_bytes(init), strength=0.25, steps=4, seed=9)
    high = await aclient.generate("wood", init_image=png_bytes(init), strength=1.0, steps=4, seed=9)
    low_px, high_px = decode(low.image.data), decode(high.image.data)
    assert low_px.shape == (64, 64, 3)
    assert low.recipe["request"]["strength"] == 0.25
    assert low.recipe["init_image_sha256"]
    # Less strength stays closer to the init image (tiny-random is noise, but its VAE is not
    # the identity: compare the distance, not equality).
    d_low = np.abs(low_px.astype(int) - init).mean()
    d_high = np.abs(high_px.astype(int) - init).mean()
    assert d_low != d_high
    # Size defaults to the init image's size.
    big_init = rng.integers(0, 255, (80, 128, 3), dtype=np.uint8)
    sized = await aclient.generate("wood", init_image=big_init, strength=0.5, steps=2, seed=1)
    assert (sized.image.width, sized.image.height) == (128, 80)


async def test_inpainting_keeps_unmasked_pixels_closer(aclient: AsyncClient) -> None:
    init = np.full((64, 64, 3), 200, dtype=np.uint8)
    init[:, :32] = 30
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, 32:] = 255
    result = await aclient.generate(
        "metal plate", init_image=init, mask=mask, steps=2, seed=4, strength=1.0
    )
    out = decode(result.image.data)
    assert out.shape == (64, 64, 3)
    assert result.recipe["mask_sha256"]
    plain = await aclient.generate("metal plate", steps=2, seed=4)
    assert not np.array_equal(out, decode(plain.image.data))


async def test_output_encodings(aclient: AsyncClient) -> None:
    raw = await aclient.generate("water", steps=1, seed=2, output_encoding="raw")
    assert raw.image.encoding == "raw_rgba8"
    assert len(raw.image.data) == 64 * 64 * 4
    png = await aclient.generate("water", steps=1, seed=2)
    rgba = np.frombuffer(raw.image.data, np.uint8).reshape(64, 64, 4)
    assert np.array_equal(rgba[:, :, :3], decode(png.image.data))
    assert (rgba[:, :, 3] == 255).all()
    jpeg = await aclient.generate("water", steps=1, seed=2, output_encoding="jpeg")
    assert jpeg.image.data[:2] == b"\xff\xd8"


@pytest.mark.parametrize("size", [(64, 128), (128, 64)])
async def test_non_square_sizes(aclient: AsyncClient, size: tuple[int, int]) -> None:
    result = await aclient.generate("checker", steps=1, seed=0, width=size[0], height=size[1])
    assert decode(result.image.data).shape == (size[1], size[0], 3)
