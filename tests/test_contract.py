"""The wire contract: generated code is fresh; conversions and recipes round-trip."""

from __future__ import annotations

import json
import subprocess
import sys

from pixelkiln_server import convert, recipe
from pixelkiln_server.types import (
    EncodedImage,
    Encoding,
    GenerationRequest,
    PreviewOptions,
    Priority,
)

from .conftest import ROOT


def test_generated_python_stubs_are_fresh() -> None:
    proc = subprocess.run(
        [sys.executable, "tools/gen_protos.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


FULL = GenerationRequest(
    prompt="red brick wall",
    model="tiny-random",
    negative_prompt="blurry",
    width=128,
    height=64,
    steps=3,
    guidance_scale=2.5,
    seed=2**64 - 1,
    num_images=2,
    init_image=EncodedImage(b"\x89PNG...", Encoding.PNG, 128, 64),
    strength=0.75,
    mask=EncodedImage(b"\x00" * 16, Encoding.RAW_RGBA8, 2, 2),
    output_encoding=Encoding.WEBP,
    preview=PreviewOptions(every_n_steps=2, max_side=128, encoding=Encoding.PNG),
    client_request_id="abc",
    priority=Priority.BATCH,
)


def test_request_round_trips_through_protobuf() -> None:
    msg = convert.request_to_pb(FULL)
    again = convert.request_from_pb(type(msg).FromString(msg.SerializeToString()))
    assert again == FULL


def test_unset_optionals_stay_unset() -> None:
    bare = GenerationRequest(prompt="x")
    again = convert.request_from_pb(convert.request_to_pb(bare))
    assert again.seed is None and again.guidance_scale is None and again.strength is None
    assert again == bare


def test_recipe_round_trips_through_json() -> None:
    r = recipe.make_recipe(FULL, "rev1", "cpu", "fp32")
    assert r.init_image_sha256 and r.mask_sha256
    text = recipe.to_json(r)
    back = recipe.from_dict(json.loads(text))
    # Images are not carried (their hashes are); neither are transport-only fields.
    assert back.request.prompt == FULL.prompt and back.request.seed == FULL.seed
    assert back.request.output_encoding is Encoding.WEBP
    assert back.init_image_sha256 == r.init_image_sha256
    assert recipe.to_json(back) == text
    pb = convert.recipe_to_pb(r)
    assert json.loads(pb.json) == json.loads(text)


def test_recipe_rejects_foreign_json() -> None:
    import pytest

    with pytest.raises(ValueError, match="not a PixelKiln recipe"):
        recipe.from_dict({"format": "something-else"})
    with pytest.raises(ValueError, match="unknown recipe fields: bogus"):
        recipe.request_from_dict({"prompt": "x", "bogus": 1})
