"""What a new user of the Python client and the CLI met: an AsyncClient made outside the event
loop, the client's timeout on live sessions, the error classes of every refusal, addresses
without a port, `live --frames`, live settings misspelt, recipes of raw/JPEG/WebP results and
maps, and outputs the daemon would refuse."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image as PILImage

import pixelkiln
from pixelkiln import (
    AsyncClient,
    Client,
    DeadlineExceededError,
    PermissionDeniedError,
    PixelKilnError,
    UnauthenticatedError,
)
from pixelkiln._request import build_live_input
from pixelkiln.client import load_recipe, resolve_address
from pixelkiln.errors import from_rpc_error

from .conftest import ROOT, png_bytes, running_daemon
from .test_cli import pixelkiln as pixelkiln_cli

NOWHERE = "127.0.0.1:1"
SKETCH = png_bytes(np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8))


def cli_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from pixelkiln.cli import main

    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --- 1. AsyncClient made outside a running loop -------------------------------------------


def test_an_async_client_made_at_module_level_works_under_asyncio_run(served: str) -> None:
    def script() -> None:
        client = AsyncClient(served, timeout=60)  # no loop runs here, as at a module's top

        async def main() -> str:
            return await client.health()

        assert asyncio.run(main()) == "SERVING"
        assert asyncio.run(main()) == "SERVING"  # a second loop: the channel is opened again

        async def close() -> None:
            async with client:
                assert await client.health() == "SERVING"

        asyncio.run(close())

    # On a thread of its own: asyncio.run leaves its thread without an event loop, and later
    # tests on this worker's main thread build grpc.aio servers outside a loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(script).result(timeout=120)


def test_an_async_client_called_without_a_loop_says_what_it_needs() -> None:
    client = AsyncClient(NOWHERE)
    with pytest.raises(RuntimeError, match="need a running asyncio event loop"):
        client.live(prompt="x")


# --- 2. the client's timeout: not a live session's, and named when it passes -----------------


def test_the_clients_timeout_does_not_end_a_live_session(served: str) -> None:
    with Client(served, timeout=1) as client, client.live(prompt="x", steps=2) as session:
        frames = iter(session)
        session.send(SKETCH)
        assert next(frames).image is not None
        time.sleep(1.5)  # past the client's timeout
        session.send(SKETCH, seed=2)
        assert next(frames).seq == 2


async def test_the_async_clients_timeout_does_not_end_a_live_session(daemon: Any) -> None:
    client = AsyncClient(daemon.address, timeout=1)
    async with client, client.live(prompt="x", steps=2) as session:
        frames = session.__aiter__()
        await session.send(SKETCH)
        assert (await frames.__anext__()).image is not None
        await asyncio.sleep(1.5)
        await session.send(SKETCH, seed=2)
        assert (await frames.__anext__()).seq == 2


def test_a_deadline_of_the_clients_timeout_names_it(served: str) -> None:
    with Client(served, timeout=0.001) as client, pytest.raises(DeadlineExceededError) as info:
        client.generate("x")
    assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert str(info.value).endswith(
        " (the client's timeout of 0.001 s passed; raise Client(timeout=...))"
    ), str(info.value)


async def test_a_deadline_of_the_async_clients_timeout_names_it(daemon: Any) -> None:
    async with AsyncClient(daemon.address, timeout=0.001) as client:
        with pytest.raises(DeadlineExceededError, match=r"raise AsyncClient\(timeout=\.\.\.\)\)$"):
            await client.generate("x")


# --- 3. a PixelKilnError subclass for each code the daemon answers ---------------------------


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "why"


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "InvalidArgumentError"),
        (grpc.StatusCode.NOT_FOUND, "NotFoundError"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "ResourceExhaustedError"),
        (grpc.StatusCode.CANCELLED, "CancelledError"),
        (grpc.StatusCode.UNAVAILABLE, "UnavailableError"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "DeadlineExceededError"),
        (grpc.StatusCode.FAILED_PRECONDITION, "FailedPreconditionError"),
        (grpc.StatusCode.UNAUTHENTICATED, "UnauthenticatedError"),
        (grpc.StatusCode.PERMISSION_DENIED, "PermissionDeniedError"),
    ],
)
def test_each_refusal_of_the_daemon_has_its_class(code: grpc.StatusCode, name: str) -> None:
    error = from_rpc_error(_FakeRpcError(code))
    assert type(error) is getattr(pixelkiln, name) and name in pixelkiln.__all__
    assert isinstance(error, PixelKilnError) and error.code is code and error.message == "why"


async def test_a_model_path_clients_may_not_load_is_permission_denied(aclient: Any) -> None:
    # Outside every --model-root (the tests' daemons take the temporary folder as one, and CI
    # runs from a clone there: a relative path was inside it).
    with pytest.raises(PermissionDeniedError) as info:
        await aclient.generate(model="/etc/pixelkiln-nothere")
    assert info.value.code is grpc.StatusCode.PERMISSION_DENIED


async def test_a_call_without_the_daemons_token_is_unauthenticated(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("alice generate pk_0123456789abcdef0123\n")
    tokens.chmod(0o600)
    async with running_daemon(token_file=tokens) as d:
        async with AsyncClient(d.address, timeout=60) as client:
            with pytest.raises(UnauthenticatedError):
                await client.status()
        async with AsyncClient(d.address, timeout=60, token="pk_0123456789abcdef0123") as client:
            assert (await client.status()).ready


# --- 4. an address without a port --------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("127.0.0.1", "127.0.0.1:50051"),
        ("localhost", "localhost:50051"),
        ("gpu-box:6000", "gpu-box:6000"),
        ("[::1]", "[::1]:50051"),
        ("[::1]:50051", "[::1]:50051"),
        ("[::1]:7000", "[::1]:7000"),
        ("::1", "[::1]:50051"),
        ("unix:/run/pixelkiln.sock", "unix:/run/pixelkiln.sock"),
        ("dns:///gpu-box:6000", "dns:///gpu-box:6000"),
    ],
)
def test_an_address_without_a_port_gets_the_daemons(given: str, used: str) -> None:
    assert resolve_address(given) == used


async def test_clients_and_the_cli_default_a_missing_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client("127.0.0.1") as client:
        assert client.address == "127.0.0.1:50051"
    monkeypatch.setenv("PIXELKILN_ADDRESS", "localhost")
    with Client() as client:
        assert client.address == "localhost:50051"
    aclient = AsyncClient()
    assert aclient.address == "localhost:50051"
    await aclient.close()

    from pixelkiln._channel import Security

    dialled: list[str] = []

    def channel(self: Security, address: str, options: Any) -> grpc.Channel:
        dialled.append(address)
        return grpc.insecure_channel(NOWHERE, options=options)  # nothing listens there

    monkeypatch.setattr(Security, "channel", channel)
    argv = ["status", "--address", "127.0.0.1", "--timeout", "5"]
    status, _, err = await asyncio.to_thread(cli_main, argv, capsys)
    assert status == 2 and dialled == ["127.0.0.1:50051"]
    assert "no PixelKiln daemon at 127.0.0.1:50051:" in err


# --- 5. live --frames counts every frame --------------------------------------------------------


def test_live_frames_ends_while_the_watched_file_does_not_change(
    served: str, tmp_path: Path
) -> None:
    sketch, out = tmp_path / "sketch.png", tmp_path / "live.png"
    sketch.write_bytes(SKETCH)
    script = (
        "import sys; from pixelkiln import cli, _cli_live; _cli_live.LIVE_KEEPALIVE_S = 0.3; "
        "sys.exit(cli.main(sys.argv[1:]))"
    )
    argv = ["live", "x", "--watch", str(sketch), "-o", str(out), "--steps", "2", "--frames", "3"]
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv, "--address", served],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"frame 1: {out} (")
    assert lines[1].startswith(f"frame 2: unchanged, {out} kept (")
    assert out.is_file()


def test_live_frames_help_says_what_counts(capsys: pytest.CaptureFixture[str]) -> None:
    from pixelkiln.cli import main

    with pytest.raises(SystemExit):
        main(["live", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "stop after N frames from the daemon, unchanged ones included" in help_text


# --- 6. a misspelt live setting ------------------------------------------------------------------


def test_an_unknown_live_setting_names_the_one_meant() -> None:
    with Client(NOWHERE) as client, pytest.raises(TypeError) as info:
        client.live(tile="xy")
    assert str(info.value) == "unknown live setting 'tile'; did you mean 'tiling'?"
    with pytest.raises(TypeError, match=r"^unknown live setting 'strenght'; did you mean 'stren"):
        build_live_input(1, strenght=0.5)
    with pytest.raises(TypeError, match=r"^unknown live setting 'count'; keywords: .*prompt"):
        build_live_input(1, count=2)  # generate's hint (num_images) is no live setting


# --- 7. recipes of raw, JPEG and WebP results, and of maps -----------------------------------


async def test_a_raw_result_saved_as_png_carries_its_recipe(aclient: Any, tmp_path: Path) -> None:
    result = await aclient.generate("x", steps=2, seed=11, output_encoding="raw_rgba8")
    assert result.image.encoding == "raw_rgba8"
    path = result.image.save(tmp_path / "raw.png")
    recipe = load_recipe(path)
    assert recipe["request"]["seed"] == 11 and "image_index" not in recipe
    again = await aclient.replay(path)
    assert again.image.data == result.image.data

    batch = await aclient.generate("x", steps=2, seed=5, num_images=2, output_encoding="raw_rgba8")
    second = batch.images[1].save(tmp_path / "second.png")
    assert load_recipe(second)["image_index"] == 1
    one = await aclient.replay(second)
    assert one.image.data == batch.images[1].data


@pytest.mark.parametrize("suffix", [".webp", ".jpg"])
def test_the_cli_writes_the_recipe_beside_a_jpeg_or_webp(
    suffix: str, served: str, tmp_path: Path
) -> None:
    out = tmp_path / f"wall{suffix}"
    proc = pixelkiln_cli(
        "generate", "x", "--steps", "2", "--seed", "4", "-o", str(out), "--address", served
    )
    assert proc.returncode == 0, proc.stderr
    sidecar = tmp_path / "wall.recipe.json"
    assert f"{out} (64x64, seed 4; recipe in wall.recipe.json)" in proc.stdout
    assert json.loads(sidecar.read_text())["request"]["seed"] == 4

    refused = pixelkiln_cli("replay", str(out), "--address", served)
    assert refused.returncode == 2
    assert "its recipe is wall.recipe.json beside it: replay that" in refused.stderr

    again = tmp_path / f"again{suffix}"
    proc = pixelkiln_cli("replay", str(sidecar), "-o", str(again), "--address", served)
    assert proc.returncode == 0, proc.stderr
    assert again.read_bytes() == out.read_bytes()


def test_replay_of_a_map_names_the_image_to_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    normal = tmp_path / "stone_normal.png"
    normal.write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    status, out, err = cli_main(["replay", str(normal), "--address", NOWHERE], capsys)
    assert status == 2 and out == ""
    assert err.strip() == (
        f"pixelkiln replay: error: {normal} looks like a normal map PixelKiln wrote; maps carry "
        f"no recipe: replay the image it was derived from ({tmp_path / 'stone.png'}), whose "
        "recipe makes its maps too"
    )


# --- 8. outputs the daemon would refuse, refused naming -o ------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["-o", "oak.jpg", "--maps", "normal"],
            "-o/--output: derived maps (--maps normal) need a lossless image; oak.jpg would be "
            "JPEG: write a .png",
        ),
        (
            ["-o", "oak.webp", "--maps", "normal,ao"],
            "-o/--output: derived maps (--maps normal,ao) need a lossless image; oak.webp would "
            "be WEBP: write a .png",
        ),
        (
            ["-o", "gem.jpg", "--transparent"],
            "-o/--output: --transparent needs an alpha channel, which JPEG (gem.jpg) has not: "
            "write a .png or .webp",
        ),
    ],
)
def test_outputs_the_daemon_refuses_are_refused_naming_o(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(tmp_path / a) if a.startswith(("oak", "gem")) else a for a in argv]
    status, out, err = cli_main(["generate", "x", *argv, "--address", NOWHERE], capsys)
    assert status == 2 and out == ""
    assert err.strip() == "pixelkiln generate: error: " + expected


def test_replay_of_a_recipe_with_maps_into_a_jpeg_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "stone.json"
    recipe.write_text(json.dumps({"request": {"prompt": "x", "maps": ["normal"]}}))
    argv = ["replay", str(recipe), "-o", str(tmp_path / "x.jpg"), "--address", NOWHERE]
    status, _, err = cli_main(argv, capsys)
    assert status == 2
    assert "derived maps (the recipe's normal) need a lossless image; x.jpg would be JPEG" in err


def test_pil_reads_the_recipe_chunk_a_raw_save_writes(tmp_path: Path) -> None:
    """The chunk is the daemon's: key ``pixelkiln``, read by Pillow's ``.text``."""
    from pixelkiln import ResultImage

    pixels = np.full((4, 4, 4), 200, np.uint8).tobytes()
    image = ResultImage(pixels, "raw_rgba8", 4, 4, recipe_json='{"request":{"prompt":"x"}}')
    with PILImage.open(image.save(tmp_path / "r.png")) as img:
        text = img.text  # type: ignore[attr-defined]
    assert json.loads(text["pixelkiln"]) == {"request": {"prompt": "x"}}
