"""Results say what the model will not do as asked: unknown prompt words, sizes above its
trained size (advice.py); the CLI prints them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio

from pixelkiln import AsyncClient
from pixelkiln.cli import main as cli_main
from pixelkiln_server import advice
from pixelkiln_server.app import Daemon
from pixelkiln_server.catalogue import PRESETS, SHIPPED_MODEL
from pixelkiln_server.folder_meta import read_meta
from pixelkiln_server.types import GenerationRequest

from .conftest import running_daemon

SHIPPED = PRESETS[SHIPPED_MODEL]


def warnings_for(prompt: str, size: int = 64, spec: object = SHIPPED) -> tuple[str, ...]:
    request = GenerationRequest(prompt=prompt, width=size, height=size)
    return advice.request_warnings(spec, request)  # type: ignore[arg-type]


def test_the_shipped_model_names_the_words_it_does_not_know() -> None:
    assert warnings_for("red brick wall") == ()
    assert warnings_for("Seamless, tileable MOSSY cobblestone!") == ()
    (warning,) = warnings_for("white marble with a unicorn")
    assert warning.startswith("prompt: pixelkiln-textures does not know ")
    for word in ("'white'", "'with'", "'unicorn'"):
        assert word in warning
    assert "'marble'" not in warning and "'a'" not in warning


def test_a_size_above_the_trained_size_says_what_to_expect() -> None:
    (warning,) = warnings_for("red brick wall", size=256)
    assert warning.startswith("size: 256x256 is above pixelkiln-textures's trained size 64x64")


def test_a_negative_prompt_without_guidance_is_said_to_do_nothing() -> None:
    """At guidance 0 or 1 an SD pipeline skips classifier-free guidance: the negative prompt
    changed no pixel (measured on the shipped model), so the result says so."""
    spec = PRESETS["tiny-random"]
    for guidance in (None, 0.0, 1.0):  # None: the model's default (0 for turbo models)
        request = GenerationRequest(prompt="x", negative_prompt="blurry", guidance_scale=guidance)
        (warning,) = advice.request_warnings(spec, request)
        assert warning.startswith("negative_prompt: has no effect at guidance_scale ")
        assert "raise guidance_scale" in warning
    request = GenerationRequest(prompt="x", negative_prompt="blurry", guidance_scale=4.0)
    assert advice.request_warnings(spec, request) == ()
    flux = replace(PRESETS["tiny-flux"], native_width=64, native_height=64)
    request = GenerationRequest(prompt="x", negative_prompt="blurry", width=64, height=64)
    assert advice.request_warnings(flux, request) == ()  # no classifier-free guidance there


def test_a_model_without_a_vocabulary_gets_no_prompt_warning() -> None:
    assert warnings_for("anything at all", spec=PRESETS["tiny-random"]) == ()


def test_the_shipped_vocabulary_is_the_training_captions_words() -> None:
    meta = read_meta(Path(SHIPPED.source))
    assert meta is not None and meta.vocabulary is not None
    assert {"brick", "cobblestone", "coin", "sprite", "seamless"} <= set(meta.vocabulary)
    assert "white" not in meta.vocabulary


def test_a_malformed_vocabulary_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "pixelkiln.json").write_text(json.dumps({"vocabulary": "brick wall"}))
    with pytest.raises(ValueError, match="vocabulary must be a list of words"):
        read_meta(tmp_path)


@pytest_asyncio.fixture(scope="module")
async def shipped() -> AsyncIterator[Daemon]:
    async with running_daemon(default_model=SHIPPED_MODEL) as d:
        yield d


async def test_results_carry_the_warnings_and_the_cli_prints_them(
    shipped: Daemon, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with AsyncClient(shipped.address, timeout=180) as client:
        plain = await client.generate("red brick wall", seed=1)
        odd = await client.generate("white marble", seed=1)
    assert plain.warnings == ()
    assert len(odd.warnings) == 1 and "'white'" in odd.warnings[0]
    out = tmp_path / "m.png"
    argv = ["generate", "white marble", "--address", shipped.address, "-o", str(out)]
    assert await asyncio.to_thread(cli_main, argv) == 0
    err = capsys.readouterr().err
    assert "warning: prompt: pixelkiln-textures does not know 'white'" in err
    assert out.is_file()


def test_a_spec_is_plain_data_for_the_cache() -> None:
    """vocabulary() caches by source path: a renamed spec of the same folder shares it."""
    other = replace(SHIPPED, name="textures-again")
    assert advice.vocabulary(other.source) is advice.vocabulary(SHIPPED.source)
