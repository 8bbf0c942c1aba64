"""The C# client against a daemon with tokens and TLS (issue 15 item 9): compiled with mcs,
run with mono (tests/clients/csharp/Secure.cs), against a `pixelkiln serve` child process
with --token-file and --tls-cert (certificates made in the test). Skipped without mono."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..secure_served import GENERATE_TOKEN, SecureDaemon, secure_served
from .test_csharp_client import CSHARP, HERE, _compile, mono, one

__all__ = ["mono"]  # the fixture, imported for its use below


@pytest.fixture(scope="module")
def secure_exe(mono: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("csharp_secure")
    messages = build / "PixelKiln.Messages.dll"
    client = build / "PixelKiln.Client.dll"
    exe = build / "Secure.exe"
    _compile(
        messages,
        sorted((CSHARP / "Runtime").glob("*.cs")) + sorted((CSHARP / "Generated").glob("*.cs")),
        "-target:library",
        "-nowarn:1591",
    )
    _compile(
        client,
        sorted((CSHARP / "Client").glob("*.cs")),
        "-target:library",
        f"-r:{messages}",
        f"-doc:{build / 'PixelKiln.Client.xml'}",
    )
    _compile(exe, [HERE / "Secure.cs"], f"-r:{messages}", f"-r:{client}", "-r:System.Core")
    return exe


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureDaemon]:
    with secure_served(tmp_path_factory.mktemp("csharp_tls"), tls=True) as daemon:
        yield daemon


def run_secure(exe: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, list[str]]:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("PIXELKILN_TOKEN", "PIXELKILN_TLS_CA")
    }
    ran = subprocess.run(
        ["mono", "--debug", str(exe), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**clean, **(env or {})},
    )
    assert ran.returncode == 0, f"exit {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
    out: dict[str, list[str]] = {}
    for line in ran.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out.setdefault(key, []).append(value)
    assert out.get("done") == ["1"], ran.stdout
    return out


def test_token_and_ca_from_options_over_wss(secure_exe: Path, tls_daemon: SecureDaemon) -> None:
    assert tls_daemon.pki is not None and tls_daemon.ws_url.startswith("wss://127.0.0.1:")
    out = run_secure(
        secure_exe, "generate", tls_daemon.ws_url, GENERATE_TOKEN, str(tls_daemon.pki.ca)
    )
    assert one(out, "connected") == "True" and one(out, "status_ready") == "True"
    assert one(out, "images") == "1" and int(one(out, "png_bytes")) > 100
    assert one(out, "seed") == "5"
    # The token's name and scope travel: a 'generate' token may not load models.
    assert one(out, "load") == "PERMISSION_DENIED"


def test_token_and_ca_from_the_environment(secure_exe: Path, tls_daemon: SecureDaemon) -> None:
    assert tls_daemon.pki is not None
    url = tls_daemon.ws_url.replace("127.0.0.1", "localhost")  # a DNS name in the certificate
    env = {"PIXELKILN_TOKEN": GENERATE_TOKEN, "PIXELKILN_TLS_CA": str(tls_daemon.pki.ca)}
    out = run_secure(secure_exe, "generate", url, env=env)
    assert one(out, "connected") == "True" and one(out, "images") == "1"


def test_each_wrong_setting_gets_its_code_and_what_to_do(
    secure_exe: Path, tls_daemon: SecureDaemon
) -> None:
    pki = tls_daemon.pki
    assert pki is not None
    out = run_secure(
        secure_exe,
        "refusals",
        tls_daemon.ws_url,
        GENERATE_TOKEN,
        str(pki.ca),
        str(pki.other_ca),
    )
    # The system's trust store does not know the test CA; nor does another CA sign the daemon.
    for case in ("no_ca", "other_ca"):
        assert one(out, case) == "UNAVAILABLE"
        message = one(out, f"{case}_message")
        assert "TLS handshake failed" in message and "RootCertificate" in message, message
        assert "PIXELKILN_TLS_CA" in message
    # Handshake answered 401: UNAUTHENTICATED with the daemon's text, not retried as "unreachable".
    assert one(out, "no_token") == "UNAUTHENTICATED"
    assert one(out, "no_token_connection_error") == "False"
    message = one(out, "no_token_message")
    assert "needs a token" in message and "PIXELKILN_TOKEN" in message
    assert one(out, "wrong_token") == "UNAUTHENTICATED"
    assert "not known to this daemon" in one(out, "wrong_token_message")
    assert "pixelkiln token create" in one(out, "wrong_token_message")
    # ws:// to a TLS daemon says that it serves wss:// only.
    assert one(out, "plain_ws") == "UNAVAILABLE"
    assert "serves wss:// only" in one(out, "plain_ws_message")
    # Settings that cannot work are refused before connecting, naming the field.
    assert one(out, "missing_ca_file") == "INVALID_ARGUMENT"
    assert "RootCertificate" in one(out, "missing_ca_file_message")
    assert "/nonexistent/pixelkiln-ca.pem" in one(out, "missing_ca_file_message")
    assert one(out, "token_with_space") == "INVALID_ARGUMENT"
    assert "Token:" in one(out, "token_with_space_message")


def test_token_over_plain_ws(secure_exe: Path, tmp_path: Path) -> None:
    """Tokens without TLS (a trusted network, or loopback with tokens on)."""
    with secure_served(tmp_path, tls=False) as daemon:
        assert daemon.ws_url.startswith("ws://")
        out = run_secure(secure_exe, "plain", daemon.ws_url, GENERATE_TOKEN)
    assert one(out, "no_token") == "UNAUTHENTICATED"
    assert "needs a token" in one(out, "no_token_message")
    assert one(out, "connected") == "True" and one(out, "images") == "1"
    assert one(out, "load") == "PERMISSION_DENIED"
