"""The tiny autoencoder on the flow-matching DiTs' lean live paths (live_flux.FlowSteps):
FLUX and Z-Image folders with a tiny random 16-channel AutoencoderTiny in vae_tiny/ (TAEF1's
layout; random weights, so the pictures are noise, but every path through it is real)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pixelkiln_server.backends import tiny_vae
from pixelkiln_server.backends.base import LoadOptions
from pixelkiln_server.backends.diffusers_backend import DiffusersBackend
from pixelkiln_server.backends.tiny_families import ensure_tiny_family
from pixelkiln_server.catalogue import PRESETS
from pixelkiln_server.types import DecodedInputs, Priority
from tests.conftest import home_dir
from tests.test_live_path import Notes, assert_close, live, sketch

FAMILIES = {"tiny-flux": "flux", "tiny-z-image": "z-image"}


@pytest.fixture(scope="module", params=list(FAMILIES))
def flow_with_tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    name = request.param
    folder = tmp_path_factory.mktemp("flow-tiny") / name
    shutil.copytree(ensure_tiny_family(FAMILIES[name], Path(home_dir()) / "models"), folder)
    tiny_vae.add_random_to_folder(folder, latent_channels=16)
    spec = replace(PRESETS[name], backend="diffusers", source=str(folder))
    model = DiffusersBackend().load(spec, LoadOptions(device="cpu", home=home_dir()))
    assert model.tiny_vae is not None
    return name, model


def test_a_flow_frame_encodes_and_decodes_with_the_tiny_autoencoder(flow_with_tiny: Any) -> None:
    name, m = flow_with_tiny
    inputs = DecodedInputs(init_rgb=sketch(64, 30))
    request = live(name, 64, prompt="flow tiny")
    full = m.generate(request, inputs, Notes())[0]
    hooks = Notes()
    tiny = m.generate(replace(request, tiny_autoencoder=True), inputs, hooks)[0]
    assert hooks.notes["lean"] == "applied" and hooks.notes["tiny_autoencoder"] == "applied"
    assert tiny.shape == full.shape == (64, 64, 3) and tiny.dtype == np.float32
    assert tiny.min() >= 0.0 and tiny.max() <= 1.0
    assert np.abs(tiny - full).mean() > 0.01  # another autoencoder made it
    again = m.generate(replace(request, tiny_autoencoder=True), inputs, Notes())[0]
    assert_close(again, tiny)
    # Its recipe replayed through Generate (not live) takes the lean path with the tiny
    # autoencoder too: the same image.
    hooks = Notes()
    replayed = m.generate(
        replace(request, tiny_autoencoder=True, priority=Priority.INTERACTIVE), inputs, hooks
    )
    assert hooks.notes["tiny_autoencoder"] == "applied"
    assert_close(replayed[0], tiny)


def test_stream_batch_with_the_tiny_autoencoder_keeps_each_frame(flow_with_tiny: Any) -> None:
    name, m = flow_with_tiny
    frames = [DecodedInputs(init_rgb=sketch(64, 40 + i)) for i in range(3)]
    base = live(name, 64, prompt="flow tiny stream", tiny_autoencoder=True)
    alone = [m.generate(base, f, Notes())[0] for f in frames]
    streamed = replace(base, stream_batch=True, stream_id=f"tiny-{name}")
    outs, hooks = [], Notes()
    for i, f in enumerate(frames):
        hooks = Notes()
        outs.append(m.generate(replace(streamed, client_request_id=f"t{i}"), f, hooks))
    assert hooks.notes["stream_batch"] == "applied" == hooks.notes["tiny_autoencoder"]
    assert outs[0] == []
    for i in (1, 2):
        assert_close(outs[i][0], alone[i - 1])


def test_the_tiny_vae_decode_option_decodes_flow_live_frames(flow_with_tiny: Any) -> None:
    """``--tiny-vae-decode``: live frames decode with the tiny autoencoder (and encode with
    the full VAE: the random tiny decoder maps both latents to nearly the same picture, so
    only the decoder is told apart here)."""
    name, m = flow_with_tiny
    inputs = DecodedInputs(init_rgb=sketch(64, 50))
    request = live(name, 64, prompt="flow tiny decode")
    full = m.generate(request, inputs, Notes())[0]
    lean = m._lean
    m.tiny_vae_decode = True
    try:
        lean._plans.clear()
        lean._flow_steps = None  # the option is read when the path's parts are made
        decoded = m.generate(request, inputs, Notes())[0]
    finally:
        m.tiny_vae_decode = False
        lean._plans.clear()
        lean._flow_steps = None
    assert np.abs(decoded - full).mean() > 0.01
