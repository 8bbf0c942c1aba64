"""A daemon on a studio network: tokens and scopes, TLS (and client certificates) on gRPC and
WebSocket alike, the binding rule and the WebSocket Origin check, over real sockets."""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from pixelkiln import AsyncClient, Client, PixelKilnError, Progress
from pixelkiln.cli import main as cli_main
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import models_pb2 as models_pb
from pixelkiln.v1 import models_pb2_grpc
from pixelkiln_server.app import Daemon
from pixelkiln_server.services import websocket

from .certs import Pki, make_pki
from .conftest import free_port, home_dir, make_config
from .test_websocket import MAX, send, until

ALICE = "pk_alice-generate-token-0123456789"
BOB = "pk_bob-generate-token-0123456789abc"
ROOT = "pk_root-admin-token-0123456789abcd"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens"
    path.write_text(
        f"# name scope token\nalice generate {ALICE}\nbob generate {BOB}\nroot admin {ROOT}\n"
    )
    path.chmod(0o600)
    return path


@pytest_asyncio.fixture(scope="module")
async def secure(pki: Pki, token_file: Path) -> AsyncIterator[Daemon]:
    """Tokens and TLS on, the WebSocket carrier too (wss://)."""
    d = Daemon(
        make_config(
            token_file=token_file,
            tls_cert=pki.server_cert,
            tls_key=pki.server_key,
            ws_allowed_origins=("https://tools.studio.example",),
        )
    )
    await d.start()
    await d.wait_ready()
    yield d
    await d.stop(0)


def client(d: Daemon, pki: Pki, token: str | None) -> AsyncClient:
    return AsyncClient(d.address, timeout=60, token=token, root_certificates=pki.ca)


def wss_context(pki: Pki, with_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if with_client_cert:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- tokens over gRPC ---


async def test_grpc_needs_a_known_token_but_health_stays_open(secure: Daemon, pki: Pki) -> None:
    async with client(secure, pki, None) as anonymous:
        assert await anonymous.health() == "SERVING"
        for call in (anonymous.status(), anonymous.models(), anonymous.cancel("x")):
            with pytest.raises(PixelKilnError) as info:
                await call
            assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
            assert "Bearer" in info.value.message
        with pytest.raises(PixelKilnError) as info:
            await anonymous.generate("x", steps=1)
        assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
    async with client(secure, pki, "pk_not-a-token-of-this-daemon") as stranger:
        with pytest.raises(PixelKilnError) as info:
            await stranger.status()
        assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
        assert "not known" in info.value.message


async def test_scopes_on_grpc(secure: Daemon, pki: Pki) -> None:
    async with client(secure, pki, ALICE) as alice, client(secure, pki, ROOT) as root:
        result = await alice.generate("red brick wall", seed=1, steps=1)
        assert result.image.data
        assert (await alice.status()).ready
        for call in (alice.load("tiny-random"), alice.unload("tiny-random")):
            with pytest.raises(PixelKilnError) as info:
                await call
            assert info.value.code is grpc.StatusCode.PERMISSION_DENIED
            assert "admin" in info.value.message
        assert (await root.load("tiny-random")).loaded


async def test_a_generate_token_sees_no_paths_of_the_server(secure: Daemon, pki: Pki) -> None:
    """Model sources that are folders on the daemon's machine reach a generate-scope caller as
    their last component, on both transports; an admin sees where they are."""
    async with client(secure, pki, ALICE) as alice, client(secure, pki, ROOT) as root:
        seen = {m.name: m.source for m in await alice.models()}
        full = {m.name: m.source for m in await root.models()}
    assert Path(full["pixelkiln-textures"]).is_absolute()
    assert seen["pixelkiln-textures"] == "…/pixelkiln-textures"
    assert seen["sd-turbo"] == full["sd-turbo"] == "stabilityai/sd-turbo"  # hub ids are kept
    async with connect(
        secure.ws_url, max_size=MAX, ssl=wss_context(pki), additional_headers=bearer(ALICE)
    ) as ws:
        await send(ws, "m", list_models=models_pb.ListModelsRequest())
        (env,) = await until(ws, "m", "list_models_response")
    sources = {m.name: m.source for m in env.list_models_response.models}
    assert sources["pixelkiln-textures"] == "…/pixelkiln-textures"


async def test_errors_reach_a_generate_token_without_server_paths(
    secure: Daemon, pki: Pki, tmp_path: Path
) -> None:
    """A model folder under a --model-root that cannot be read: the error names the file by
    its last part for a generate caller (gRPC and WebSocket), in full for an admin."""
    folder = tmp_path / "studio-models" / "broken"
    folder.mkdir(parents=True)
    (folder / "pixelkiln_onnx.json").write_text("{")
    messages = {}
    async with client(secure, pki, ALICE) as alice, client(secure, pki, ROOT) as root:
        for name, who in (("alice", alice), ("root", root)):
            with pytest.raises(PixelKilnError) as info:
                await who.generate("x", steps=1, model=str(folder))
            assert info.value.code is grpc.StatusCode.NOT_FOUND
            messages[name] = info.value.message
    assert str(folder) in messages["root"]
    assert str(tmp_path) not in messages["alice"]
    assert messages["alice"] == "…/pixelkiln_onnx.json is not a readable ONNX manifest"
    async with connect(
        secure.ws_url, max_size=MAX, ssl=wss_context(pki), additional_headers=bearer(ALICE)
    ) as ws:
        await send(ws, "g", generate=gen_pb.GenerateRequest(prompt="x", model=str(folder)))
        (env,) = await until(ws, "g", "error")
    assert env.error.code_name == "NOT_FOUND" and env.error.message == messages["alice"]


async def test_reflection_needs_a_token(secure: Daemon, pki: Pki) -> None:
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    async with grpc.aio.secure_channel(secure.address, creds) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        # No request message: the token is checked when the call starts, and a message written
        # while the daemon refuses the call can fail locally (INTERNAL) instead of reporting it.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.ServerReflectionInfo(iter([])):
                pass
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        metadata = (("authorization", f"Bearer {ALICE}"),)
        answers = [a async for a in stub.ServerReflectionInfo(iter([request]), metadata=metadata)]
    names = {s.name for s in answers[0].list_services_response.service}
    assert "pixelkiln.v1.Generator" in names


async def test_a_token_name_owns_its_jobs_on_both_transports(secure: Daemon, pki: Pki) -> None:
    """The same token is one client on gRPC and WebSocket; another token cannot touch it."""
    async with (
        connect(
            secure.ws_url, max_size=MAX, ssl=wss_context(pki), additional_headers=bearer(ALICE)
        ) as ws,
        client(secure, pki, ALICE) as alice,
        client(secure, pki, BOB) as bob,
    ):
        request = gen_pb.GenerateRequest(
            prompt="x", steps=40, width=256, height=256, seed=1, client_request_id="mine"
        )
        await send(ws, "g", generate=request)
        envs = await until(ws, "g", "progress")
        assert envs[0].event.accepted.client_request_id == "mine"
        assert await bob.cancel("mine") is False
        assert await bob.cancel(envs[0].event.request_id) is False
        assert await alice.cancel("mine") is True  # over gRPC, the job came over WebSocket
        envs = await until(ws, "g", "result")
        assert envs[-1].error.code_name == "CANCELLED"


# --- tokens over WebSocket ---


async def test_websocket_handshake_needs_a_known_token(secure: Daemon, pki: Pki) -> None:
    for headers in ({}, bearer("pk_not-a-token-of-this-daemon"), {"Authorization": ALICE}):
        with pytest.raises(InvalidStatus) as info:
            async with connect(
                secure.ws_url, max_size=MAX, ssl=wss_context(pki), additional_headers=headers
            ):
                pass
        response = info.value.response
        assert response.status_code == 401
        assert response.body is not None and response.body.startswith(b"UNAUTHENTICATED: ")


async def test_a_repeated_token_or_origin_is_refused_on_both_transports(
    secure: Daemon, pki: Pki
) -> None:
    """A proxy in front of the daemon and the daemon could each read another copy of a header
    sent twice; it is refused (it once failed the WebSocket handshake with HTTP 500)."""
    twice = [("Authorization", f"Bearer {ALICE}"), ("Authorization", f"Bearer {ROOT}")]
    refusals = [(twice, 401, b"UNAUTHENTICATED: authorization: sent 2 times")]
    origins = [("Origin", "https://tools.studio.example"), ("Origin", "https://evil.example")]
    refusals.append(([*origins, ("Authorization", f"Bearer {ALICE}")], 403, b"PERMISSION_DENIED"))
    for headers, status, start in refusals:
        with pytest.raises(InvalidStatus) as info:
            async with connect(
                secure.ws_url, max_size=MAX, ssl=wss_context(pki), additional_headers=headers
            ):
                pass
        response = info.value.response
        assert response.status_code == status
        assert response.body is not None and response.body.startswith(start)
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    async with grpc.aio.secure_channel(secure.address, creds) as channel:
        stub = models_pb2_grpc.ModelsStub(channel)
        metadata = (("authorization", f"Bearer {ALICE}"), ("authorization", f"Bearer {ROOT}"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Status(models_pb.StatusRequest(), metadata=metadata, timeout=10)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "sent 2 times" in str(refused.value.details())


async def test_scopes_on_websocket(secure: Daemon, pki: Pki) -> None:
    async with connect(
        secure.ws_url, max_size=MAX, ssl=wss_context(pki), additional_headers=bearer(ALICE)
    ) as ws:
        await send(ws, "l", load_model=models_pb.LoadModelRequest(name="tiny-random"))
        (env,) = await until(ws, "l", "model_info")
        assert env.error.code_name == "PERMISSION_DENIED" and "admin" in env.error.message
        await send(ws, "s", status=models_pb.StatusRequest())
        (env,) = await until(ws, "s", "status_response")
        assert env.status_response.ready
    async with connect(
        secure.ws_url, max_size=MAX, ssl=wss_context(pki), additional_headers=bearer(ROOT)
    ) as ws:
        await send(ws, "l", load_model=models_pb.LoadModelRequest(name="tiny-random"))
        (env,) = await until(ws, "l", "model_info")
        assert env.model_info.loaded


async def test_one_token_holds_at_most_so_many_websocket_connections(
    secure: Daemon, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each connection may hold a few frames of up to the message limit; one client's
    connections are capped (16), another client still connects."""
    monkeypatch.setattr(websocket, "MAX_CONNECTIONS_PER_CLIENT", 2)

    def open_as(token: str) -> Any:
        return connect(
            secure.ws_url, max_size=MAX, ssl=wss_context(pki), additional_headers=bearer(token)
        )

    async with open_as(ALICE) as one, open_as(ALICE) as two, open_as(ALICE) as three:
        with pytest.raises(ConnectionClosed) as info:
            await three.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        assert "RESOURCE_EXHAUSTED" in info.value.rcvd.reason
        for ws in (one, two):
            await send(ws, "s", status=models_pb.StatusRequest())
            assert (await until(ws, "s", "status_response"))[0].status_response.ready
        async with open_as(BOB) as bob:
            await send(bob, "s", status=models_pb.StatusRequest())
            assert (await until(bob, "s", "status_response"))[0].status_response.ready


# --- Origin ---


async def test_websocket_refuses_browser_origins_unless_allowed(secure: Daemon, pki: Pki) -> None:
    context = wss_context(pki)
    with pytest.raises(InvalidStatus) as info:
        async with connect(
            secure.ws_url,
            max_size=MAX,
            ssl=context,
            origin="https://evil.example",  # type: ignore[arg-type]
            additional_headers=bearer(ALICE),
        ):
            pass
    assert info.value.response.status_code == 403
    body = info.value.response.body or b""
    assert body.startswith(b"PERMISSION_DENIED: Origin") and b"--ws-allow-origin" in body
    async with connect(
        secure.ws_url,
        max_size=MAX,
        ssl=context,
        origin="https://tools.studio.example",  # type: ignore[arg-type]
        additional_headers=bearer(ALICE),
    ) as ws:
        await send(ws, "s", status=models_pb.StatusRequest())
        (env,) = await until(ws, "s", "status_response")
        assert env.status_response.ready


async def test_loopback_default_refuses_any_origin(daemon: Daemon) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(daemon.ws_url, origin="http://localhost:8000"):  # type: ignore[arg-type]
            pass
    assert info.value.response.status_code == 403
    async with connect(daemon.ws_url, max_size=MAX) as ws:  # engines send no Origin
        await send(ws, "s", status=models_pb.StatusRequest())
        (env,) = await until(ws, "s", "status_response")
        assert env.status_response.ready


# --- TLS ---


async def test_tls_refuses_plaintext_and_untrusted_roots(secure: Daemon, pki: Pki) -> None:
    async with AsyncClient(secure.address, timeout=10, token=ALICE) as plain:
        with pytest.raises(PixelKilnError) as info:
            await plain.status()
        assert info.value.code is grpc.StatusCode.UNAVAILABLE
    async with AsyncClient(
        secure.address, timeout=10, token=ALICE, root_certificates=pki.other_ca
    ) as untrusting:
        with pytest.raises(PixelKilnError) as info:
            await untrusting.status()
        assert info.value.code is grpc.StatusCode.UNAVAILABLE
    with pytest.raises(ssl.SSLError):
        async with connect(
            secure.ws_url,
            ssl=ssl.create_default_context(cafile=str(pki.other_ca)),
            additional_headers=bearer(ALICE),
        ):
            pass


async def test_client_certificates_are_required_with_a_client_ca(pki: Pki) -> None:
    d = Daemon(
        make_config(
            tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca, warm_up=False
        )
    )
    await d.start()
    await d.wait_ready()
    try:
        async with AsyncClient(d.address, timeout=10, root_certificates=pki.ca) as anonymous:
            with pytest.raises(PixelKilnError) as info:
                await anonymous.status()
            assert info.value.code is grpc.StatusCode.UNAVAILABLE
        async with AsyncClient(
            d.address,
            timeout=60,
            root_certificates=pki.ca,
            client_cert=pki.client_cert,
            client_key=pki.client_key,
        ) as known:
            status = await known.status()
            assert status.max_message_bytes > 0
        with pytest.raises((ssl.SSLError, OSError, InvalidHandshake)):  # no client cert
            async with connect(d.ws_url, ssl=wss_context(pki)) as ws:
                await ws.recv()
        async with connect(d.ws_url, max_size=MAX, ssl=wss_context(pki, True)) as ws:
            await send(ws, "s", status=models_pb.StatusRequest())
            (env,) = await until(ws, "s", "status_response")
            assert env.status_response.max_message_bytes > 0
    finally:
        await d.stop(0)


@contextlib.contextmanager
def serve_secure(pki: Pki, token_file: Path) -> Iterator[str]:
    """`pixelkiln serve` in a child process with tokens and TLS; yields its address."""
    port = free_port()
    env = {**os.environ, "PIXELKILN_HOME": str(home_dir()), "HF_HUB_OFFLINE": "1"}
    env.pop("PIXELKILN_TOKEN", None)
    command = [sys.executable, "-m", "pixelkiln.cli", "serve", "--port", str(port)]
    command += ["--ws-port", "-1", "--model", "tiny-random", "--token-file", str(token_file)]
    command += ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    try:
        with Client(address, timeout=5, root_certificates=pki.ca) as probe:
            try:
                probe.wait_ready(timeout=120)  # health needs no token
            except Exception:
                proc.kill()
                print(proc.communicate()[0].decode(errors="replace"))
                raise
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- the Python client end to end (sync Client and CLI, in a child daemon) ---


def test_python_client_and_cli_with_tokens_and_tls(
    pki: Pki, token_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_secure(pki, token_file) as address:
        with Client(address, timeout=60, token=ALICE, root_certificates=pki.ca) as c:
            events = list(c.stream("red brick wall", seed=3, steps=2))
            assert any(isinstance(e, Progress) for e in events)
            assert events[-1].image.data  # type: ignore[attr-defined]
            with pytest.raises(PixelKilnError) as info:
                c.load("tiny-random")
            assert info.value.code is grpc.StatusCode.PERMISSION_DENIED
        monkeypatch.setenv("PIXELKILN_TOKEN", ROOT)
        monkeypatch.setenv("PIXELKILN_TLS_CA", str(pki.ca))
        with Client(address, timeout=60) as c:  # both from the environment
            assert c.load("tiny-random").loaded
        monkeypatch.delenv("PIXELKILN_TOKEN")
        monkeypatch.delenv("PIXELKILN_TLS_CA")
        out = tmp_path / "cli.png"
        args = ["generate", "moss", "--steps", "1", "-o", str(out), "--address", address]
        secure_args = ["--token", ALICE, "--tls-ca", str(pki.ca)]
        assert cli_main([*args, *secure_args]) == 0
        assert out.read_bytes().startswith(b"\x89PNG")
        monkeypatch.delenv("PIXELKILN_TOKEN")  # --token set it for this process's clients
        monkeypatch.delenv("PIXELKILN_TLS_CA")
        assert cli_main([*args, "--tls-ca", str(pki.ca)]) == 1  # no token: refused


async def test_live_and_generate_streams_need_a_token(secure: Daemon, pki: Pki) -> None:
    """The interceptor refuses streaming methods too, before reading a message."""
    from pixelkiln.v1 import generator_pb2_grpc as gen_grpc

    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    async with grpc.aio.secure_channel(secure.address, creds) as channel:
        stub = gen_grpc.GeneratorStub(channel)
        live = stub.Live(iter([gen_pb.LiveInput(seq=1)]))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in live:
                pass
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Generate(gen_pb.GenerateRequest(prompt="x")):
                pass
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "Bearer" in (info.value.details() or "")
