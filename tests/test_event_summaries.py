"""Events and images print as short summaries, never their bytes (``on_event=print``)."""

from __future__ import annotations

import numpy as np

from pixelkiln import Image, LiveFrame, Preview, Progress, Result, ResultImage
from pixelkiln.events import event_from_pb
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import image_pb2 as img_pb

from .conftest import png_bytes


def _png(side: int) -> bytes:
    rng = np.random.default_rng(0)
    return png_bytes(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


def test_images_and_previews_summarise_their_bytes() -> None:
    data = _png(64)
    image = Image(data, "png", 64, 64)
    kb = f"{len(data) / 1024:.1f} KB"
    assert repr(image) == f"Image(64x64 png {kb})"
    assert str(Preview("r1", 2, [image])) == f"Preview(step=2, 1 image 64x64 png {kb})"
    assert str(Preview("r1", 3, [])) == "Preview(step=3, no image)"
    assert repr(Image(b"x" * 300, "jpeg", 8, 8)) == "Image(8x8 jpeg 300 B)"


def test_a_result_from_the_wire_prints_in_one_short_line() -> None:
    data = _png(256)  # ~190 KB of noise: printing the bytes would be ~750 KB of text
    msg = gen_pb.GenerateEvent(request_id="job-1")
    for index, seed in enumerate((7, 8)):
        g = msg.result.images.add(index=index, seed=seed)
        g.image.CopyFrom(
            img_pb.Image(data=data, encoding=img_pb.ENCODING_PNG, width=256, height=256)
        )
        g.maps.add(kind=gen_pb.MAP_KIND_NORMAL).image.CopyFrom(
            img_pb.Image(data=data, encoding=img_pb.ENCODING_PNG, width=256, height=256)
        )
    msg.result.recipe.json = '{"request": {"prompt": "x"}}' * 50
    msg.result.timings.total_ms = 35.4
    result = event_from_pb(msg)
    assert isinstance(result, Result)
    text = str(result)
    mb = f"{2 * len(data) / 1024 / 1024:.1f} MB" if 2 * len(data) >= 2**20 else None
    size = mb or f"{2 * len(data) / 1024:.1f} KB"
    assert text == f"Result('job-1', 2 images 256x256 png {size}, seeds=[7, 8], maps=normal, 35 ms)"
    assert str(result.images) == str([result.images[0], result.images[1]])
    first = repr(result.images[0])
    assert first.startswith("ResultImage(256x256 png ") and first.endswith(", seed=7, maps=normal)")
    assert len(str([result, result.images])) < 300


def test_live_frames_summarise() -> None:
    data = _png(64)
    frame = LiveFrame(4, Image(data, "jpeg", 64, 64), False, 3, 1, {"total_ms": 41.6})
    assert repr(frame) == (
        f"LiveFrame(seq=4, 1 image 64x64 jpeg {len(data) / 1024:.1f} KB, seed=3, skipped=1, 42 ms)"
    )
    same = LiveFrame(5, None, True, 3, 0, {"total_ms": 0.4})
    assert repr(same) == "LiveFrame(seq=5, unchanged, seed=3, skipped=0, 0 ms)"


def test_result_image_mentions_seam_and_trim() -> None:
    image = ResultImage(
        b"p" * 2048, "png", 32, 48, seed=1, seam={"ratio": 1.04}, trim_box=(1, 2, 3, 4)
    )
    assert (
        repr(image)
        == "ResultImage(32x48 png 2.0 KB, seed=1, seam ratio 1.04, trim_box=(1, 2, 3, 4))"
    )


def test_progress_rounds_its_time() -> None:
    assert repr(Progress("job-1", 3, 8, 888.5508422851562)) == "Progress('job-1', step=3/8, 889 ms)"
