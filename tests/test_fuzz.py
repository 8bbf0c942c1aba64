"""Fuzzing, bounded and reproducible (issue #15 item 7): hypothesis with derandomize=True.

Properties: request conversion and validation, image decoding and Envelope decoding raise only
the caller's errors (INVALID_ARGUMENT naming a field). Then random and mutated bytes to every
gRPC method and random WebSocket frames against a live daemon (a child process, so its memory
is its own): never INTERNAL or UNKNOWN, never a hang (each call has a deadline far above any
answer), the daemon alive after, and its RSS back near where it started.
"""

from __future__ import annotations

import io
import math
import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from websockets.sync.client import connect

from pixelkiln import Client
from pixelkiln.v1 import envelope_pb2 as env_pb
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import image_pb2 as img_pb
from pixelkiln.v1 import models_pb2 as models_pb
from pixelkiln_server import convert, validation
from pixelkiln_server.catalogue import PRESETS, lookup
from pixelkiln_server.config import Limits
from pixelkiln_server.errors import InvalidArgument, PixelKilnError
from pixelkiln_server.imaging import codec
from pixelkiln_server.services.decoding import Undecodable, tolerant
from pixelkiln_server.types import EncodedImage, Encoding

from .bad_inputs import MASK64, PNG64, bmp_declaring, gif_declaring, png_declaring
from .conftest import free_port, home_dir


def fuzz(examples: int) -> Any:
    """Reproducible in CI: the same examples on every run, no example database."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


NEVER = {"INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED"}  # a deadline here means a hang
SPEC = PRESETS["tiny-random"]
LIMITS = Limits()


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


_rng = np.random.default_rng(7)
_RGB = _rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)
VALID_IMAGES = [
    *(_encode(_RGB, f) for f in ("PNG", "JPEG", "WEBP", "GIF", "BMP")),
    _encode(_RGB[:, :, 0], "PNG"),
    _encode(np.dstack([_RGB, _RGB[:, :, :1]]), "PNG"),
    _encode(_RGB[:, :, 0], "GIF"),
]
SIZE_AT = {b"\x89PN": (16, ">II"), b"GIF": (6, "<HH"), b"BM": (18, "<ii")}


@st.composite
def image_bytes(draw: st.DrawFn) -> bytes:
    """Valid small images, mutated: bytes flipped, truncated, or a declared size patched."""
    how = draw(st.sampled_from(["as-is", "flip", "truncate", "size", "random", "bomb"]))
    if how == "random":
        return draw(st.binary(max_size=200))
    if how == "bomb":
        make = draw(st.sampled_from([png_declaring, gif_declaring, bmp_declaring]))
        return make(draw(st.integers(1, 65535)), draw(st.integers(1, 65535)))
    data = bytearray(draw(st.sampled_from(VALID_IMAGES)))
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif how == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif how == "size":
        for magic, (at, fmt) in SIZE_AT.items():
            if data.startswith(magic):
                big = draw(st.integers(0, 2**15 - 1)), draw(st.integers(0, 2**15 - 1))
                data[at : at + 8 if fmt[1] in "Ii" else at + 4] = struct.pack(fmt, *big)
    return bytes(data)


@fuzz(600)
@given(
    data=image_bytes(),
    mode=st.sampled_from(["RGB", "RGBA", "L"]),
    raw=st.none() | st.tuples(st.integers(-2, 70), st.integers(-2, 70)),
)
def test_image_decoding(data: bytes, mode: str, raw: tuple[int, int] | None) -> None:
    max_pixels = 64 * 64
    if raw is None:
        image = EncodedImage(data, Encoding.PNG, 0, 0)
    else:
        image = EncodedImage(data, Encoding.RAW_RGBA8, raw[0], raw[1])
    try:
        pixels = codec.decode(image, "init_image", max_pixels=max_pixels, mode=mode)
    except InvalidArgument as exc:
        assert exc.field == "init_image" and exc.message.startswith("init_image: ")
        return
    assert pixels.dtype == np.uint8
    assert pixels.shape[0] * pixels.shape[1] <= max_pixels
    assert pixels.ndim == (2 if mode == "L" else 3)


_U32 = st.integers(0, 2**32 - 1) | st.sampled_from([0, 1, 8, 63, 64, 65, 72, 128, 4096, 4104])
_FLOAT = st.floats(width=32)
_TEXT = st.text(max_size=40) | st.sampled_from(["", " ", "x" * 4001])
_IMAGE = st.sampled_from(
    [
        img_pb.Image(data=PNG64),
        img_pb.Image(data=MASK64),
        img_pb.Image(data=png_declaring(60000, 60000)),
        img_pb.Image(
            data=b"\0" * 64 * 64 * 4, encoding=img_pb.ENCODING_RAW_RGBA8, width=64, height=64
        ),
        img_pb.Image(data=b"\0" * 10, encoding=img_pb.ENCODING_RAW_RGBA8, width=64, height=64),
        img_pb.Image(data=b""),
        img_pb.Image(data=b"not an image"),
    ]
)


@st.composite
def generate_requests(draw: st.DrawFn) -> gen_pb.GenerateRequest:
    msg = gen_pb.GenerateRequest(
        prompt=draw(_TEXT),
        negative_prompt=draw(_TEXT),
        width=draw(_U32),
        height=draw(_U32),
        steps=draw(st.integers(0, 60) | _U32),
        num_images=draw(st.integers(0, 10) | _U32),
        output_encoding=draw(st.integers(0, 6)),
        client_request_id=draw(_TEXT),
        priority=draw(st.integers(0, 5)),
        tiling=draw(st.integers(0, 5)),
        background=draw(st.integers(0, 3)),
        maps=draw(st.lists(st.integers(0, 6), max_size=3)),
        atlas=draw(st.booleans()),
        loras=draw(st.dictionaries(st.text(max_size=5), _FLOAT, max_size=2)),
    )
    msg.preview.every_n_steps = draw(st.integers(0, 5))
    msg.preview.max_side = draw(st.integers(0, 2000))
    msg.sprite.trim = draw(st.booleans())
    msg.sprite.padding = draw(st.integers(0, 300))
    for name in ("height_blur", "normal_strength", "ao_radius", "ao_strength"):
        if draw(st.booleans()):
            setattr(msg.map_settings, name, draw(_FLOAT))
    if draw(st.booleans()):
        msg.guidance_scale = draw(_FLOAT)
    if draw(st.booleans()):
        msg.seed = draw(st.integers(0, 2**64 - 1) | st.integers(2**64 - 9, 2**64 - 1))
    if draw(st.booleans()):
        msg.strength = draw(_FLOAT)
    if draw(st.booleans()):
        msg.init_image.CopyFrom(draw(_IMAGE))
    if draw(st.booleans()):
        msg.mask.CopyFrom(draw(_IMAGE))
    return msg


@fuzz(800)
@given(msg=generate_requests())
def test_request_conversion_and_validation(msg: gen_pb.GenerateRequest) -> None:
    try:
        request = convert.request_from_pb(msg)  # refuses enum numbers the proto lacks
        resolved, inputs = validation.resolve(request, SPEC, LIMITS)
    except PixelKilnError as exc:
        assert isinstance(exc, InvalidArgument), exc
        assert exc.field and exc.message.startswith(f"{exc.field}: ")
        return
    assert resolved.width * resolved.height <= LIMITS.max_pixels
    assert 1 <= resolved.steps <= SPEC.max_steps and 1 <= resolved.num_images <= LIMITS.max_images
    assert resolved.seed is not None and resolved.seed + resolved.num_images - 1 < 2**64
    assert resolved.guidance_scale is not None and math.isfinite(resolved.guidance_scale)
    assert (inputs.init_rgb is None) == (resolved.init_image is None)
    # A request that passed validation survives the wire unchanged (its recipe is replayable).
    again = convert.request_from_pb(convert.request_to_pb(resolved))
    assert repr(again) == repr(resolved)  # repr: NaN equals itself there


@fuzz(300)
@given(name=st.text(max_size=300) | st.sampled_from(["a" * 256, "x/" * 600, "tiny\0", "~", "/"]))
def test_model_names(name: str) -> None:
    try:
        lookup(name)
    except PixelKilnError as exc:
        assert exc.code.value in ("INVALID_ARGUMENT", "NOT_FOUND"), exc


def _envelopes() -> list[bytes]:
    gen = gen_pb.GenerateRequest(prompt="x", steps=1, width=64, height=64, seed=1)
    live = gen_pb.LiveInput(seq=1, image=img_pb.Image(data=PNG64), settings={"prompt": "x"})
    return [
        env_pb.Envelope(request_id="g", generate=gen).SerializeToString(),
        env_pb.Envelope(request_id="l", live_input=live).SerializeToString(),
        env_pb.Envelope(
            request_id="c", cancel=gen_pb.CancelRequest(request_id="g")
        ).SerializeToString(),
        env_pb.Envelope(request_id="s", status=models_pb.StatusRequest()).SerializeToString(),
        env_pb.Envelope(
            request_id="m", list_models=models_pb.ListModelsRequest()
        ).SerializeToString(),
    ]


ENVELOPES = _envelopes()


@st.composite
def mutated(draw: st.DrawFn, valid: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["set", "delete", "insert"]))
        if op == "set":
            data[at] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[at]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        if not data:
            break
    return bytes(data)


@fuzz(600)
@given(data=st.binary(max_size=200) | mutated(ENVELOPES))
def test_envelope_decoding(data: bytes) -> None:
    decoded = tolerant(env_pb.Envelope.FromString, "/ws")(data)
    try:
        envelope = env_pb.Envelope.FromString(data)
    except DecodeError:
        assert isinstance(decoded, Undecodable) and decoded.message.startswith("request: ")
        return
    assert decoded == envelope
    envelope.WhichOneof("body")
    assert env_pb.Envelope.FromString(envelope.SerializeToString()) == envelope


# --- against a live daemon ---

LAUNCH = textwrap.dedent(
    """
    import asyncio, sys
    from pixelkiln_server.app import serve
    from pixelkiln_server.config import Limits, ServerConfig
    port, ws_port, home = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    # Small limits: an accepted fuzz request is at most 128x128 x 2 images, so no answer is slow.
    limits = Limits(max_pixels=128 * 128, max_side=128, max_images=2, max_input_pixels=128 * 128)
    config = ServerConfig(port=port, ws_port=ws_port, home=home, default_model="tiny-random",
                          runner="thread", limits=limits, shutdown_grace_s=0.5)
    sys.exit(asyncio.run(serve(config, stop_on_stdin_close=True)))
    """
)


def rss_bytes(pid: int) -> int | None:
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return None
    line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


class FuzzDaemon:
    def __init__(self) -> None:
        self.port, self.ws_port = free_port(), free_port()
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, str(self.port), str(self.ws_port), str(home_dir())],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.address = f"127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.ws_port}/v1"
        with Client(self.address, timeout=10) as client:
            client.wait_ready(timeout=120)
        self.channel = grpc.insecure_channel(self.address)
        self.baseline = 0

    def check_alive(self) -> None:
        assert self.proc.poll() is None, "the daemon died"
        with Client(self.address, timeout=60) as client:
            assert client.generate("alive", seed=1, steps=1).images

    def close(self) -> None:
        self.channel.close()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def fuzz_daemon() -> Iterator[FuzzDaemon]:
    daemon = FuzzDaemon()
    try:
        # Warm the paths the fuzzers take (allocator pools, caches), then measure.
        for _ in range(5):
            _grpc_call(daemon.channel, METHODS[0], VALID_REQUESTS[0])
        daemon.check_alive()
        daemon.baseline = rss_bytes(daemon.proc.pid) or 0
        yield daemon
    finally:
        daemon.close()


METHODS = [
    ("/pixelkiln.v1.Generator/Generate", "unary_stream"),
    ("/pixelkiln.v1.Generator/Cancel", "unary_unary"),
    ("/pixelkiln.v1.Generator/Live", "stream_stream"),
    ("/pixelkiln.v1.Models/List", "unary_unary"),
    ("/pixelkiln.v1.Models/Load", "unary_unary"),
    ("/pixelkiln.v1.Models/Unload", "unary_unary"),
    ("/pixelkiln.v1.Models/Status", "unary_unary"),
    ("/grpc.health.v1.Health/Check", "unary_unary"),
]
VALID_REQUESTS = [
    gen_pb.GenerateRequest(prompt="x", steps=1, width=64, height=64, seed=1).SerializeToString(),
    gen_pb.CancelRequest(request_id="nothing").SerializeToString(),
    gen_pb.LiveInput(
        seq=1, image=img_pb.Image(data=PNG64), settings={"prompt": "x"}
    ).SerializeToString(),
    models_pb.LoadModelRequest(name="tiny-random").SerializeToString(),
    models_pb.UnloadModelRequest(name="no-such").SerializeToString(),
]


def _grpc_call(channel: grpc.Channel, method: tuple[str, str], data: bytes) -> str:
    name, kind = method
    try:
        if kind == "unary_unary":
            channel.unary_unary(name)(data, timeout=60)
        elif kind == "unary_stream":
            for _ in channel.unary_stream(name)(data, timeout=60):
                pass
        else:
            for _ in channel.stream_stream(name)(iter([data]), timeout=60):
                pass
    except grpc.RpcError as exc:
        return exc.code().name  # type: ignore[attr-defined, no-any-return]
    return "OK"


def _check_memory(daemon: FuzzDaemon) -> None:
    after = rss_bytes(daemon.proc.pid)
    if after is None or not daemon.baseline:
        return  # no /proc here (not Linux)
    grown = after - daemon.baseline
    print(f"daemon RSS {daemon.baseline / 2**20:.0f} MiB -> {after / 2**20:.0f} MiB")
    assert grown < max(0.15 * daemon.baseline, 64 * 2**20), (daemon.baseline, after)


@pytest.mark.timeout(300)
def test_random_bytes_to_every_grpc_method(fuzz_daemon: FuzzDaemon) -> None:
    @fuzz(1500)
    @given(
        method=st.sampled_from(METHODS),
        data=st.binary(max_size=300) | mutated(VALID_REQUESTS),
    )
    def call(method: tuple[str, str], data: bytes) -> None:
        code = _grpc_call(fuzz_daemon.channel, method, data)
        assert code not in NEVER, (method, data, code)

    call()
    fuzz_daemon.check_alive()
    _check_memory(fuzz_daemon)


@pytest.mark.timeout(300)
def test_random_websocket_frames(fuzz_daemon: FuzzDaemon) -> None:
    @fuzz(300)
    @given(
        frames=st.lists(
            st.binary(max_size=200) | mutated(ENVELOPES) | st.text(max_size=20),
            min_size=1,
            max_size=6,
        )
    )
    def session(frames: list[bytes | str]) -> None:
        with connect(fuzz_daemon.ws_url, max_size=2**24, open_timeout=60) as ws:
            for frame in frames:
                ws.send(frame)
            end = env_pb.Envelope(request_id="\x00end", status=models_pb.StatusRequest())
            ws.send(end.SerializeToString())
            while True:
                env = env_pb.Envelope.FromString(ws.recv(timeout=60))
                if env.WhichOneof("body") == "error":
                    assert env.error.code_name not in NEVER, (frames, env.error)
                if env.request_id == "\x00end" and env.HasField("status_response"):
                    break

    session()
    fuzz_daemon.check_alive()
    _check_memory(fuzz_daemon)
