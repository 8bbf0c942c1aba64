"""Operations visibility: Prometheus metrics scraped from the real HTTP endpoint after real
requests over gRPC and WebSocket, the runner-restart counter after a real kill, and the access
log (one line per request; JSON lines from ``pixelkiln serve --log-format json``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from pixelkiln import AsyncClient, CancelledError, Client, PixelKilnError, Progress
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln_server import metrics
from pixelkiln_server.app import Daemon
from pixelkiln_server.backends.fake import FAKE_SPEC
from pixelkiln_server.engine.runner_client import READY

from .certs import make_pki
from .conftest import free_port, home_dir, make_config, running_daemon
from .test_websocket import MAX, send, until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metrics_daemon(**overrides: object) -> contextlib.AbstractAsyncContextManager[Daemon]:
    values: dict[str, object] = {"default_model": "fake", "metrics_port": 0}
    values.update(overrides)
    return running_daemon(register=(FAKE_SPEC,), **values)


def _get(
    url: str, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None
) -> str:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        body: bytes = response.read()
    return body.decode()


async def scrape(d: Daemon) -> Samples:
    text = await asyncio.to_thread(_get, d.metrics_url)
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: Samples, method: str, transport: str, code: str) -> float:
    return value(samples, "pixelkiln_requests_total", method=method, transport=transport, code=code)


async def test_requests_and_latencies_over_grpc_and_websocket(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pixelkiln.access")
    async with metrics_daemon() as d, AsyncClient(d.address, timeout=30) as client:
        before = await scrape(d)
        caplog.clear()
        # gRPC: a success, an INVALID_ARGUMENT, a cancel.
        ok = await client.generate("grpc ok", seed=1)
        with pytest.raises(PixelKilnError) as bad:
            await client.generate("too wide", width=8192, height=64)
        assert bad.value.code is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(CancelledError):
            async for event in client.stream("step_ms=200", seed=2, steps=50):
                if isinstance(event, Progress):
                    assert await client.cancel(event.request_id)
        # The same three over WebSocket.
        async with connect(d.ws_url, max_size=MAX) as ws:
            await send(ws, "ok", generate=gen_pb.GenerateRequest(prompt="ws ok", seed=3))
            ws_ok = (await until(ws, "ok", "result"))[-1].event.result
            wide = gen_pb.GenerateRequest(prompt="too wide", width=8192, height=64)
            await send(ws, "bad", generate=wide)
            (ws_bad,) = await until(ws, "bad", "result")
            slow = gen_pb.GenerateRequest(prompt="step_ms=200", seed=4, steps=50)
            await send(ws, "slow", generate=slow)
            await until(ws, "slow", "progress")
            await send(ws, "c", cancel=gen_pb.CancelRequest(request_id="slow"))
            (answer,) = await until(ws, "c", "cancel_response")
            ws_cancelled = (await until(ws, "slow", "result"))[-1]
        after = await scrape(d)
    assert ws_bad.error.code_name == "INVALID_ARGUMENT"
    assert answer.cancel_response.cancelled and ws_cancelled.error.code_name == "CANCELLED"

    def moved(method: str, transport: str, code: str) -> float:
        return requests(after, method, transport, code) - requests(before, method, transport, code)

    for transport in ("grpc", "websocket"):
        assert moved("Generate", transport, "OK") == 1
        assert moved("Generate", transport, "INVALID_ARGUMENT") == 1
        assert moved("Generate", transport, "CANCELLED") == 1
        assert moved("Cancel", transport, "OK") == 1
        assert moved("Generate", transport, "INTERNAL") == 0
    # One observation per finished generation, of the timings the client was sent.
    for stage in ("queue", "model", "encode"):
        name = f"pixelkiln_{stage}_seconds"
        count = value(after, f"{name}_count", priority="interactive") - value(
            before, f"{name}_count", priority="interactive"
        )
        total = value(after, f"{name}_sum", priority="interactive") - value(
            before, f"{name}_sum", priority="interactive"
        )
        sent = ok.timings[f"{stage}_ms"] + getattr(ws_ok.timings, f"{stage}_ms")
        assert count == 2
        assert total == pytest.approx(sent / 1000.0, rel=1e-4, abs=1e-6)  # float32 on the wire
    # What the runner holds, read at scrape time.
    runner = {"runner": "cpu#0", "device": "cpu"}
    assert value(after, "pixelkiln_runner_up", **runner) == 1
    assert value(after, "pixelkiln_runner_loaded_models", **runner) == 1
    assert value(after, "pixelkiln_runner_memory_bytes", **runner) == 1024  # the fake's size
    assert value(after, "pixelkiln_runner_restarts_total", **runner) == 0
    # One access-log line per request: 4 Generate and 2 Cancel.
    lines = [r.access for r in caplog.records if r.name == "pixelkiln.access"]  # type: ignore[attr-defined]
    assert sorted((a["method"], a["transport"], a["status"]) for a in lines) == sorted(
        (method, transport, code)
        for transport in ("grpc", "websocket")
        for method, code in (
            ("Generate", "OK"),
            ("Generate", "INVALID_ARGUMENT"),
            ("Generate", "CANCELLED"),
            ("Cancel", "OK"),
        )
    )
    grpc_ok = next(a for a in lines if a["request_id"] == ok.request_id)
    assert (grpc_ok["model"], grpc_ok["width"], grpc_ok["height"], grpc_ok["steps"]) == (
        "fake",
        64,
        64,
        2,
    )
    assert grpc_ok["peer"].startswith("ipv4:127.0.0.1:")
    assert grpc_ok["model_ms"] == pytest.approx(ok.timings["model_ms"], rel=1e-4, abs=1e-3)
    refused = next(
        a for a in lines if a["status"] == "INVALID_ARGUMENT" and a["transport"] == "websocket"
    )
    assert refused["error"] == ws_bad.error.message and "width" in refused["error"]


async def test_queue_depth_per_priority_and_live_frames() -> None:
    async with metrics_daemon() as d, AsyncClient(d.address, timeout=30) as client:
        busy = asyncio.ensure_future(client.generate("step_ms=100", seed=1, steps=20))
        await asyncio.sleep(0)
        while not d.engine.running:
            await asyncio.sleep(0.01)
        queued = [
            asyncio.ensure_future(client.generate("b", seed=2, priority="batch")),
            asyncio.ensure_future(client.generate("b", seed=3, priority="batch")),
            asyncio.ensure_future(client.generate("i", seed=4, priority="interactive")),
        ]
        while d.engine.scheduler.depth < 3:
            await asyncio.sleep(0.01)
        during = await scrape(d)
        await asyncio.gather(busy, *queued)
        assert value(during, "pixelkiln_queue_depth", priority="batch") == 2
        assert value(during, "pixelkiln_queue_depth", priority="interactive") == 1
        assert value(during, "pixelkiln_queue_depth", priority="live") == 0
        assert value(during, "pixelkiln_runner_running_jobs", runner="cpu#0", device="cpu") == 1
        assert value(await scrape(d), "pixelkiln_queue_depth", priority="batch") == 0

        before = await scrape(d)
        prompts = ["step_ms=200 a", "b", "c", "d"]
        frames = []
        async with client.live(seed=1) as session:
            for prompt in prompts:
                last = await session.send(prompt=prompt)
            async for frame in session:
                frames.append(frame)
                if frame.seq == last:
                    break
            open_now = await scrape(d)
            repeat = await session.send(prompt="d")  # the same input again: free
            async for frame in session:
                frames.append(frame)
                if frame.seq == repeat:
                    break
        await asyncio.sleep(0)
        while d.engine.live_sessions:
            await asyncio.sleep(0.01)
        after = await scrape(d)
    assert value(open_now, "pixelkiln_live_sessions") == 1
    generated = sum(1 for f in frames if not f.unchanged)
    unchanged = sum(1 for f in frames if f.unchanged)
    skipped = sum(f.skipped for f in frames)
    assert unchanged == 1 and generated + skipped == len(prompts)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("pixelkiln_live_frames_total", outcome="generated") == generated
    assert moved("pixelkiln_live_frames_total", outcome="unchanged") == 1
    assert moved("pixelkiln_live_inputs_skipped_total") == skipped
    assert moved("pixelkiln_model_seconds_count", priority="live") == generated
    assert moved("pixelkiln_requests_total", method="Live", transport="grpc", code="OK") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")
async def test_runner_restarts_after_a_kill() -> None:
    async with metrics_daemon(runner="process", runner_faults=True, ws_port=None) as d:
        runner = d.engine.runners[0]
        labels = {"runner": "cpu#0", "device": "cpu"}
        before = await scrape(d)
        os.kill(runner.pid or 0, signal.SIGKILL)
        while runner.restarts < 1 or runner.state != READY:
            await asyncio.sleep(0.01)
        async with AsyncClient(d.address, timeout=30) as client:
            assert (await client.generate("after", seed=1)).images
        after = await scrape(d)
    assert value(before, "pixelkiln_runner_restarts_total", **labels) == 0
    assert value(after, "pixelkiln_runner_restarts_total", **labels) == 1
    assert value(after, "pixelkiln_runner_up", **labels) == 1
    assert value(after, "pixelkiln_runner_loaded_models", **labels) == 1


async def test_metrics_are_off_by_default_and_a_bad_path_is_404() -> None:
    async with metrics_daemon(metrics_port=None, ws_port=None) as d:
        assert d.metrics_server is None
    async with metrics_daemon(ws_port=None) as d:
        url = d.metrics_url.replace("/metrics", "/nothing")
        with pytest.raises(urllib.error.HTTPError) as info:
            await asyncio.to_thread(_get, url)
        assert info.value.code == 404


def test_serve_log_format_json_writes_one_object_per_line() -> None:
    port, metrics = free_port(), free_port()
    env = {**os.environ, "PIXELKILN_HOME": str(home_dir()), "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-m", "pixelkiln.cli", "serve", "--port", str(port)]
    argv += ["--ws-port", "-1", "--model", "tiny-random", "--log-format", "json"]
    argv += ["--metrics-port", str(metrics)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with Client(f"127.0.0.1:{port}", timeout=60) as client:
            client.wait_ready(timeout=300)
            result = client.generate("json log", seed=7, steps=1, width=64, height=64)
            with pytest.raises(PixelKilnError):
                client.generate("bad", steps=1000)
        scraped = _get(f"http://127.0.0.1:{metrics}/metrics")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert 'pixelkiln_requests_total{code="OK",method="Generate",transport="grpc"} 1.0' in scraped
    # Standard output's own lines (listening, ready, shutting down) are JSON objects too.
    said = [json.loads(line) for line in out.decode().splitlines()]
    assert [x["message"].split(":")[0] for x in said] == ["pixelkiln"] * 3, said
    assert said[1]["message"].startswith("pixelkiln: ready (tiny-random)")
    lines: list[dict[str, Any]] = [json.loads(line) for line in err.decode().splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    access = [x for x in lines if x["logger"] == "pixelkiln.access"]
    done = next(x for x in access if x.get("request_id") == result.request_id)
    assert (done["method"], done["status"], done["model"], done["steps"]) == (
        "Generate",
        "OK",
        "tiny-random",
        1,
    )
    assert (done["width"], done["height"]) == (64, 64)
    assert done["client_id"] and done["peer"].startswith("ipv4:127.0.0.1:")
    assert {"queue_ms", "model_ms", "encode_ms", "total_ms"} <= set(done)
    (refused,) = [x for x in access if x["status"] == "INVALID_ARGUMENT"]
    assert refused["method"] == "Generate" and refused["error"].startswith("steps")
    # The runner child's lines are JSON too, with its name (it logs loading the model).
    assert any(x.get("runner") == "cpu#0" for x in lines)


async def test_metrics_follow_the_daemons_tls_and_tokens(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tokens = tmp_path / "tokens"
    tokens.write_text("scraper generate pk_scraper-token-0123456789abcdef\n")
    tokens.chmod(0o600)
    secure = {"token_file": tokens, "tls_cert": pki.server_cert, "tls_key": pki.server_key}
    async with metrics_daemon(ws_port=None, **secure) as d:
        url = d.metrics_url
        trusted = ssl.create_default_context(cafile=str(pki.ca))
        assert url.startswith("https://127.0.0.1:")
        with pytest.raises(urllib.error.HTTPError) as refused:
            await asyncio.to_thread(_get, url, None, trusted)
        assert refused.value.code == 401
        assert refused.value.read().decode().startswith("UNAUTHENTICATED: authorization")
        with pytest.raises(urllib.error.HTTPError) as wrong:
            await asyncio.to_thread(_get, url, {"Authorization": "Bearer pk_nope"}, trusted)
        assert wrong.value.code == 401
        good = {"Authorization": "Bearer pk_scraper-token-0123456789abcdef"}
        text = await asyncio.to_thread(_get, url, good, trusted)
        assert 'pixelkiln_runner_up{device="cpu",runner="cpu#0"} 1.0' in text
        # Plain HTTP gets no metrics from the TLS port.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            await asyncio.to_thread(_get, url.replace("https://", "http://"), good)


async def test_a_metrics_port_in_use_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = Daemon(make_config(metrics_port=port, ws_port=None))
        with pytest.raises(OSError) as info:
            await d.start()
        await d.server.stop(None)
    assert str(info.value).startswith(f"cannot listen on 127.0.0.1:{port} (--metrics-port): ")


def _half_requests(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` connections that each send a request line and never finish the headers."""
    conns = []
    for _ in range(count):
        conn = socket.create_connection((host, port), timeout=10)
        conn.sendall(b"GET /metrics HTTP/1.1\r\n")
        conns.append(conn)
    return conns


def _closed_by_server(conn: socket.socket, deadline: float) -> bool:
    """True when the server closes the connection (EOF or reset) before ``deadline``."""
    conn.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        return conn.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_a_half_sent_request_is_dropped_and_connections_are_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "HEADER_TIMEOUT", 1.0)
    cap = metrics.MAX_CONNECTIONS
    async with metrics_daemon(ws_port=None) as d:
        server = d.metrics_server
        assert server is not None
        host, port = server.host, server.port

        def one() -> float:
            (conn,) = _half_requests(host, port, 1)
            with conn:
                started = time.monotonic()
                assert _closed_by_server(conn, started + 5), "a half-sent request was kept open"
                return time.monotonic() - started

        waited = await asyncio.to_thread(one)
        assert 0.5 < waited < 4

        def flood() -> tuple[int, int, int]:
            baseline = threading.active_count()
            conns = _half_requests(host, port, cap + 10)
            try:
                time.sleep(0.3)  # every connection accepted; none timed out yet
                during = threading.active_count()
                deadline = time.monotonic() + 5
                closed = sum(_closed_by_server(c, deadline) for c in conns)
            finally:
                for conn in conns:
                    conn.close()
            return baseline, during, closed

        baseline, during, closed = await asyncio.to_thread(flood)
        assert during <= baseline + cap + 2, (baseline, during)
        assert closed == cap + 10  # the ones over the cap at once, the others on the timeout
        # Once they are dropped a normal scrape gets in.
        assert value(await scrape(d), "pixelkiln_runner_up", runner="cpu#0", device="cpu") == 1


async def test_a_repeated_authorization_header_is_refused(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    token = "pk_scraper-token-0123456789abcdef"
    tokens.write_text(f"scraper generate {token}\n")
    tokens.chmod(0o600)
    async with metrics_daemon(ws_port=None, token_file=tokens) as d:
        server = d.metrics_server
        assert server is not None

        def twice() -> bytes:
            with socket.create_connection((server.host, server.port), timeout=10) as conn:
                header = f"Authorization: Bearer {token}\r\n".encode()
                conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n" + header * 2 + b"\r\n")
                answer = b""
                while chunk := conn.recv(4096):
                    answer += chunk
            return answer

        answer = await asyncio.to_thread(twice)
        # The same token once still works.
        good = {"Authorization": f"Bearer {token}"}
        assert "pixelkiln_runner_up" in await asyncio.to_thread(_get, d.metrics_url, good)
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.0 401 ") or status.startswith(b"HTTP/1.1 401 ")
    assert body.decode() == "UNAUTHENTICATED: authorization: sent 2 times; send it once\n"


def _raw_get(host: str, port: int, head: bytes) -> tuple[int, str]:
    """The status and body of one request sent as ``head`` (request line and headers)."""
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(head + b"\r\n")
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    status, _, body = answer.partition(b"\r\n\r\n")
    return int(status.split()[1]), body.decode()


async def test_a_page_that_rebinds_its_name_to_loopback_is_refused() -> None:
    async with metrics_daemon(ws_port=None) as d:
        server = d.metrics_server
        assert server is not None
        port = server.port

        def get(host_header: str | None, version: str = "1.1") -> tuple[int, str]:
            head = f"GET /metrics HTTP/{version}\r\n"
            if host_header is not None:
                head += f"Host: {host_header}\r\n"
            return _raw_get(server.host, port, head.encode())

        def ask_all() -> dict[str | None, tuple[int, str]]:
            names = ["evil.example", f"evil.example:{port}", f"localhost:{port}", "LocalHost"]
            names += [f"127.0.0.1:{port}", "127.3.4.5", f"[::1]:{port}", "localhost, evil"]
            answers: dict[str | None, tuple[int, str]] = {name: get(name) for name in names}
            answers[None] = get(None, "1.0")  # HTTP/1.0 may leave Host out: not a browser
            return answers

        answers = await asyncio.to_thread(ask_all)
    for refused in ("evil.example", f"evil.example:{port}", "localhost, evil"):
        assert answers[refused] == (
            403,
            f"PERMISSION_DENIED: Host: {refused!r} is not a loopback name; scrape localhost, "
            "127.0.0.1 or [::1]\n",
        )
    for allowed in (f"localhost:{port}", "LocalHost", f"127.0.0.1:{port}", "127.3.4.5", None):
        assert answers[allowed][0] == 200, allowed
        assert "pixelkiln_runner_up" in answers[allowed][1]
    assert answers[f"[::1]:{port}"][0] == 200


def test_host_is_checked_only_on_a_loopback_binding() -> None:
    from prometheus_client import CollectorRegistry

    def status(bound: str, host_header: str) -> str:
        app = metrics.guarded_app(CollectorRegistry(), None, bound)
        seen: list[str] = []
        app({"PATH_INFO": "/nothing", "HTTP_HOST": host_header}, lambda s, h: seen.append(s))
        return seen[0]

    assert status("127.0.0.1", "evil.example") == "403 Forbidden"
    assert status("localhost", "evil.example:9100") == "403 Forbidden"
    assert status("[::1]", "127.0.0.1.evil.example") == "403 Forbidden"
    assert status("::1", "[::1]:9100") == "404 Not Found"
    # Not loopback: the token (or --insecure, exposed on purpose) decides, not the name used.
    assert status("0.0.0.0", "evil.example") == "404 Not Found"
    assert status("192.0.2.7", "scraper-alias.example:9100") == "404 Not Found"
    cases = {"[::1]:80": "::1", "LOCALHOST:9": "localhost", "a.b:": "a.b", "::1": "::1"}
    assert {header: metrics.host_name(header) for header in cases} == cases
