"""A daemon on a studio network: tokens and scopes, TLS (and client certificates) on gRPC and
WebSocket alike, the binding rule and the WebSocket Origin check, over real sockets."""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from pixelkiln import AsyncClient, Client, PixelKilnError, Progress
from pixelkiln.cli import main as cli_main
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import models_pb2 as models_pb
from pixelkiln_server.app import Daemon
from pixelkiln_server.auth import Scope, TokenStore, create_token, parse_tokens
from pixelkiln_server.security import SecurityConfigError

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


async def test_reflection_needs_a_token(secure: Daemon, pki: Pki) -> None:
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    async with grpc.aio.secure_channel(secure.address, creds) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.ServerReflectionInfo(iter([request])):
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


# --- the binding rule ---


def test_non_loopback_host_needs_tokens_and_tls(pki: Pki, token_file: Path) -> None:
    with pytest.raises(SecurityConfigError) as info:
        Daemon(make_config(host="0.0.0.0"))
    message = str(info.value)
    assert "--token-file" in message and "--tls-cert" in message and "--insecure" in message
    with pytest.raises(SecurityConfigError) as info:
        Daemon(make_config(host="0.0.0.0", token_file=token_file))
    assert "--tls-cert" in str(info.value) and "--token-file" not in str(info.value)
    Daemon(
        make_config(
            host="0.0.0.0", token_file=token_file, tls_cert=pki.server_cert, tls_key=pki.server_key
        )
    )
    for loopback in ("127.0.0.1", "localhost", "::1"):
        Daemon(make_config(host=loopback))


def test_insecure_warns_naming_what_is_exposed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pixelkiln_server.security"):
        Daemon(make_config(host="0.0.0.0", port=50999, ws_port=50998, insecure=True))
    (record,) = [r for r in caplog.records if "--insecure" in r.getMessage()]
    text = record.getMessage()
    assert "gRPC on 0.0.0.0:50999" in text and "WebSocket on 0.0.0.0:50998" in text
    assert "without --token-file and --tls-cert/--tls-key" in text
    assert "anyone who can reach it" in text


def test_serve_refuses_a_non_loopback_host_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["serve", "--host", "0.0.0.0", "--port", "0", "--ws-port", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--host 0.0.0.0 is not loopback" in err and "--insecure" in err
    assert "Traceback" not in err


def test_bad_security_files_are_refused_naming_the_flag(tmp_path: Path, pki: Pki) -> None:
    bad = tmp_path / "tokens"
    bad.write_text("alice superuser pk_0123456789abcdefghij\n")
    with pytest.raises(SecurityConfigError, match=r"--token-file: .*tokens:1: scope"):
        Daemon(make_config(token_file=bad))
    with pytest.raises(SecurityConfigError, match="--tls-cert and --tls-key go together"):
        Daemon(make_config(tls_cert=pki.server_cert))
    with pytest.raises(SecurityConfigError, match="--tls-cert/--tls-key: not a usable"):
        Daemon(make_config(tls_cert=pki.ca, tls_key=pki.client_key))
    with pytest.raises(SecurityConfigError, match="--tls-client-ca needs --tls-cert"):
        Daemon(make_config(tls_client_ca=pki.ca))
    with pytest.raises(
        SecurityConfigError, match="--token-file: .*missing: cannot read the token file"
    ):
        Daemon(make_config(token_file=tmp_path / "missing"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX mode bits")
def test_a_token_file_others_can_read_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"alice generate {ALICE}\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="pixelkiln_server.security"):
        Daemon(make_config(token_file=path))
    assert any("chmod 600" in r.getMessage() for r in caplog.records)
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="pixelkiln_server.security"):
        Daemon(make_config(token_file=path))
    assert not any("chmod 600" in r.getMessage() for r in caplog.records)


# --- token files ---


def test_token_create_appends_a_random_token_with_mode_0600(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "conf" / "tokens"
    assert cli_main(["token", "create", "alice", "--file", str(path)]) == 0
    alice = capsys.readouterr().out.strip()
    assert cli_main(["token", "create", "lead", "--scope", "admin", "--file", str(path)]) == 0
    lead = capsys.readouterr().out.strip()
    assert alice != lead and len(alice) > 40
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store = TokenStore.load(path)
    assert store.authenticate(f"Bearer {alice}").scope is Scope.GENERATE
    assert store.authenticate(f"bearer {lead}").name == "lead"
    assert cli_main(["token", "create", "alice", "--file", str(path)]) == 2
    assert "already has a token" in capsys.readouterr().err
    assert create_token(path, "third") not in (alice, lead)
    assert [t.name for t in parse_tokens(path.read_text(), "x")] == ["alice", "lead", "third"]


def test_token_file_mistakes_name_the_line() -> None:
    cases = {
        "alice generate": "want 'NAME SCOPE TOKEN'",
        "al ice generate pk_0123456789abcdef": "want 'NAME SCOPE TOKEN'",
        "alice generate short": "shorter than 16",
        "a generate pk_0123456789abcdef\na admin pk_0123456789abcdeX": "used twice",
        "# only a comment": "no tokens",
    }
    for text, expected in cases.items():
        with pytest.raises(ValueError, match=expected):
            parse_tokens(text, "tokens")


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


def test_origin_rules_and_the_client_id_header_only_on_loopback(token_file: Path) -> None:
    from pixelkiln_server.services.identity import Gatekeeper

    gate = Gatekeeper(None, ("https://tools.studio.example", "http://127.0.0.1:*"))
    assert gate.origin_allowed("https://tools.studio.example/")
    assert gate.origin_allowed("http://127.0.0.1:8123")
    for refused in ("http://127.0.0.1", "http://127.0.0.1:80x", "https://127.0.0.1:8123"):
        assert not gate.origin_allowed(refused), refused

    class Context:
        def __init__(self, peer: str, metadata: tuple[tuple[str, str], ...]) -> None:
            self._peer, self._metadata = peer, metadata

        def peer(self) -> str:
            return self._peer

        def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
            return self._metadata

    header = (("pixelkiln-client-id", "abc"),)
    for peer in ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "ipv6:[::ffff:127.0.0.1]:5000"):
        assert gate.grpc_caller(Context(peer, header)).client_id == "id:abc"  # type: ignore[arg-type]
    remote = Context("ipv4:10.1.2.3:5000", header)
    assert gate.grpc_caller(remote).client_id == "ipv4:10.1.2.3:5000"  # type: ignore[arg-type]
    with_tokens = Gatekeeper(TokenStore.load(token_file))
    bob = Context("ipv4:127.0.0.1:5000", (*header, ("authorization", f"Bearer {BOB}")))
    caller = with_tokens.grpc_caller(bob)  # type: ignore[arg-type]
    assert caller.client_id == "token:bob" and caller.scope is Scope.GENERATE


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
