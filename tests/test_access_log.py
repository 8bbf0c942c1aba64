"""The access log cannot be forged or flooded by what a caller sends.

A client_request_id, a model name or a Cancel's request id holding a newline and a made-up
line once wrote a real-looking second access line (even for a refused request: the record is
filled before validation), and an 8 MiB Cancel request id wrote 8 MiB to the log. Values are
now clipped, and quoted as JSON strings in the text line when they are not one plain word.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from websockets.asyncio.client import connect

from pixelkiln.v1 import envelope_pb2 as env_pb
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import generator_pb2_grpc as gen_grpc
from pixelkiln_server.app import Daemon, grpc_options
from pixelkiln_server.logsetup import JsonLines
from pixelkiln_server.services.access import (
    MAX_VALUE_CHARS,
    RequestRecord,
    format_access,
    log_access,
    text_value,
)

FORGED = "\n2026-01-01 00:00:00,000 INFO pixelkiln.access: Generate OK request_id=evil"


def record(method: str = "Generate", **fields: object) -> RequestRecord:
    values: dict[str, object] = {"client_id": "id:test", "peer": "ipv4:127.0.0.1:1"}
    values.update(fields)
    return RequestRecord(method, "grpc", **values)  # type: ignore[arg-type]


def logged(rec: RequestRecord, caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pixelkiln.access"):
        log_access(rec)
    (line,) = [r for r in caplog.records if r.name == "pixelkiln.access"]
    return line


def test_plain_values_stay_plain() -> None:
    rec = record(request_id="a51f857376b24df0", model="tiny-random", width=64, height=64, steps=2)
    rec.finish(None)
    line, fields = format_access(rec)
    assert line.startswith("Generate OK transport=grpc request_id=a51f857376b24df0 ")
    assert " client_id=id:test peer=ipv4:127.0.0.1:1 model=tiny-random size=64x64 steps=2 " in line
    assert '"' not in line
    assert fields["model"] == "tiny-random" and fields["width"] == 64


@pytest.mark.parametrize(
    "value",
    [
        "x" + FORGED,
        "x\r\nGenerate OK request_id=evil",
        "a b",
        'say "hi"',
        "k=v",
        "back\\slash",
        "tab\there",
        "nul\x00here",
        "del\x7fhere",
        "nel\x85here",
        "line\u2028separator",
        "para\u2029separator",
    ],
)
def test_values_with_unsafe_characters_are_quoted(value: str) -> None:
    shown = text_value(value)
    assert shown.startswith('"') and shown.endswith('"')
    assert json.loads(shown) == value
    assert all(c.isprintable() for c in shown), repr(shown)


@pytest.mark.parametrize("field", ["client_request_id", "model", "request_id"])
def test_a_newline_in_a_value_forges_no_line(field: str, caplog: pytest.LogCaptureFixture) -> None:
    rec = record(**{field: "c1" + FORGED})
    rec.finish(None)
    line, _ = format_access(rec)
    assert "\n" not in line and "\r" not in line
    assert f"{field}={json.dumps('c1' + FORGED)}" in line
    message = logged(rec, caplog).getMessage()
    assert message == line and len(message.splitlines()) == 1


def test_refused_requests_error_is_quoted(caplog: pytest.LogCaptureFixture) -> None:
    from pixelkiln_server.errors import InvalidArgument

    rec = record(client_request_id="c\nGenerate OK")
    rec.finish(InvalidArgument("steps", "must be between 1 and 50\nGenerate OK request_id=x"))
    line = logged(rec, caplog).getMessage()
    assert line.startswith("Generate INVALID_ARGUMENT ")
    assert "\n" not in line
    assert 'client_request_id="c\\nGenerate OK"' in line
    assert line.endswith('error="steps: must be between 1 and 50\\nGenerate OK request_id=x"')


def test_huge_values_are_clipped_in_text_and_json(caplog: pytest.LogCaptureFixture) -> None:
    huge = "r" * (8 * 2**20)
    rec = record("Cancel", request_id=huge)
    rec.finish(None)
    line, fields = format_access(rec)
    assert len(line) < 1000
    clipped = "r" * MAX_VALUE_CHARS + f"…({len(huge)} chars)"
    assert f'request_id="{clipped}"' in line
    assert fields["request_id"] == clipped
    entry = logged(rec, caplog)
    assert len(entry.getMessage()) < 1000
    # --log-format json: one valid JSON object on one line, the value clipped there too.
    text = JsonLines().format(entry)
    assert "\n" not in text and len(text) < 2000
    obj = json.loads(text)
    assert obj["request_id"] == clipped and obj["method"] == "Cancel"


def test_json_line_of_a_forged_value_is_valid(caplog: pytest.LogCaptureFixture) -> None:
    rec = record(client_request_id="c" + FORGED, model="m\u2028x")
    rec.finish(None)
    text = JsonLines().format(logged(rec, caplog))
    assert "\n" not in text
    obj = json.loads(text)
    assert obj["client_request_id"] == "c" + FORGED and obj["model"] == "m\u2028x"
    assert len(obj["message"].splitlines()) == 1


async def test_over_the_wire(daemon: Daemon, caplog: pytest.LogCaptureFixture) -> None:
    """A refused Generate with a forged client_request_id and a Cancel with a 2 MiB id each
    log one short line (the record is filled before the request is checked)."""
    caplog.set_level(logging.INFO, logger="pixelkiln.access")
    caplog.clear()
    forged = "c" + FORGED
    async with grpc.aio.insecure_channel(
        daemon.address, options=grpc_options(65 * 2**20)
    ) as channel:
        stub = gen_grpc.GeneratorStub(channel)
        bad = gen_pb.GenerateRequest(prompt="x", steps=1000, client_request_id=forged)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Generate(bad, timeout=60):
                pass
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        try:  # not running, or refused as too long: logged alike, with the id clipped
            answer = await stub.Cancel(gen_pb.CancelRequest(request_id="q" * 2**21), timeout=60)
            assert not answer.cancelled
        except grpc.aio.AioRpcError as exc:
            assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert len(exc.details() or "") < 1000
    lines = [r for r in caplog.records if r.name == "pixelkiln.access"]
    generate = next(r for r in lines if r.access["method"] == "Generate")  # type: ignore[attr-defined]
    cancel = next(r for r in lines if r.access["method"] == "Cancel")  # type: ignore[attr-defined]
    assert "\n" not in generate.getMessage()
    assert f"client_request_id={json.dumps(forged)}" in generate.getMessage()
    assert "\n" not in cancel.getMessage() and len(cancel.getMessage()) < 1000
    assert len(cancel.access["request_id"]) < 300  # type: ignore[attr-defined]


async def test_refusals_in_conversion_are_logged_on_both_transports(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown enum number is refused while the message is converted, before the request
    is checked; it is logged (and counted) like any refusal, and a live input refused there
    ends its session with that error on both transports (it said OK before)."""
    caplog.set_level(logging.INFO, logger="pixelkiln.access")
    caplog.clear()
    bad = gen_pb.GenerateRequest(prompt="x", steps=1, output_encoding=99)  # type: ignore[arg-type]
    live = gen_pb.LiveInput(seq=1, settings=gen_pb.LiveSettings(tiling=99))  # type: ignore[arg-type]
    async with grpc.aio.insecure_channel(daemon.address) as channel:
        stub = gen_grpc.GeneratorStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Generate(bad, timeout=60):
                pass
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT

        async def inputs() -> AsyncIterator[gen_pb.LiveInput]:
            yield live
            await asyncio.sleep(60)  # the session must end without the client closing it

        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Live(inputs(), timeout=60):
                pass
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    async with connect(daemon.ws_url) as ws:
        for rid, body in (("g", {"generate": bad}), ("l", {"live_input": live})):
            await ws.send(env_pb.Envelope(request_id=rid, **body).SerializeToString())
            env = env_pb.Envelope.FromString(await asyncio.wait_for(ws.recv(), 60))
            assert env.request_id == rid and env.error.code_name == "INVALID_ARGUMENT"
    seen = [
        (r.access["method"], r.access["transport"], r.access["status"])  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "pixelkiln.access"
    ]
    for transport in ("grpc", "websocket"):
        for method in ("Generate", "Live"):
            assert (method, transport, "INVALID_ARGUMENT") in seen, seen
