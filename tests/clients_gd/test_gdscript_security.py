"""The GDScript client against a daemon with tokens and TLS (issue 15 item 9, issue 17 item 5),
on the interpreter (gdvm.py: WebSocketPeer over a real WebSocket, honouring
``handshake_headers`` and ``TLSOptions``; HTTPClient over a real socket for the handshake
probe). The real Godot web build is in test_godot_web.py: a browser cannot send the token."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ..secure_served import GENERATE_TOKEN, SecureDaemon, secure_served

TOOLS = Path(__file__).resolve().parents[2] / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))
from godot_web import runner  # noqa: E402

pytest.importorskip("gdtoolkit", reason="pip install gdtoolkit (Godot 4 GDScript parser)")
from .gdvm import GodotVM  # noqa: E402 - the interpreter parses with gdtoolkit

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "engine_plugins" / "godot"
HARNESS = Path(__file__).resolve().parent / "secure.gd"
DISCONNECTED = 0


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureDaemon]:
    with secure_served(tmp_path_factory.mktemp("gd_tls"), tls=True) as daemon:
        yield daemon


@pytest.fixture
def vm(monkeypatch: pytest.MonkeyPatch) -> Iterator[GodotVM]:
    monkeypatch.delenv("PIXELKILN_TOKEN", raising=False)
    monkeypatch.delenv("PIXELKILN_TLS_CA", raising=False)
    machine = GodotVM(res_root=PROJECT)
    yield machine
    machine.shutdown()


def _run(vm: GodotVM, function: str, *args: Any) -> Any:
    harness = vm.load(HARNESS)
    instance = vm.new(harness, [])
    value = vm.run_until_done(vm.call(harness.funcs[function], instance, list(args)), 90)
    assert not instance.vals["problems"], instance.vals["problems"]
    return value


def _check_allowed(out: Any, vm: GodotVM) -> None:
    why = (out["last_error"], vm.natives.connect_failures)
    assert out["status"] == "" and out["ready"] is True, why
    assert out["generate"] == ""
    assert Image.open(io.BytesIO(bytes(out["png"].data))).size == (64, 64)
    # The token's name and scope reach the daemon: 'generate' may not load models.
    assert out["load"] == "PERMISSION_DENIED" and "admin" in out["load_message"]


def test_token_and_ca_from_the_client(tls_daemon: SecureDaemon, vm: GodotVM) -> None:
    assert tls_daemon.pki is not None and tls_daemon.ws_url.startswith("wss://")
    out = _run(vm, "run_allowed", tls_daemon.ws_url, GENERATE_TOKEN, str(tls_daemon.pki.ca))
    _check_allowed(out, vm)


def test_token_and_ca_from_the_environment(
    tls_daemon: SecureDaemon, vm: GodotVM, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tls_daemon.pki is not None
    monkeypatch.setenv("PIXELKILN_TOKEN", GENERATE_TOKEN)
    monkeypatch.setenv("PIXELKILN_TLS_CA", str(tls_daemon.pki.ca))
    _check_allowed(_run(vm, "run_allowed", tls_daemon.ws_url, "", ""), vm)


@pytest.mark.parametrize("token", ["", "pk_not-a-token-of-this-daemon"])
def test_a_missing_or_unknown_token_is_unauthenticated_and_not_retried(
    tls_daemon: SecureDaemon, vm: GodotVM, token: str
) -> None:
    assert tls_daemon.pki is not None
    out = _run(vm, "run_refused", tls_daemon.ws_url, token, str(tls_daemon.pki.ca))
    assert out["code"] == "UNAUTHENTICATED", out
    expected = "needs a token" if not token else "not known to this daemon"
    assert expected in out["message"] and "PIXELKILN_TOKEN" in out["message"]
    assert out["state"] == DISCONNECTED and list(out["reasons"]) == [out["last_error"]]
    assert out["last_error"].startswith("UNAUTHENTICATED: ")


@pytest.mark.parametrize("which", ["system", "other"])
def test_an_untrusted_certificate_says_to_set_the_ca(
    tls_daemon: SecureDaemon, vm: GodotVM, which: str
) -> None:
    assert tls_daemon.pki is not None
    ca = "" if which == "system" else str(tls_daemon.pki.other_ca)
    out = _run(vm, "run_refused", tls_daemon.ws_url, GENERATE_TOKEN, ca)
    assert out["code"] == "UNAVAILABLE"
    assert "TLS handshake" in out["message"] and "tls_ca_path" in out["message"], out["message"]
    assert out["message"] in out["reasons"]  # what disconnected said


def test_unusable_settings_name_the_field(tls_daemon: SecureDaemon, vm: GodotVM) -> None:
    out = _run(vm, "run_refused", tls_daemon.ws_url, GENERATE_TOKEN, "/nonexistent/ca.pem")
    assert out["code"] == "INVALID_ARGUMENT" and out["state"] == DISCONNECTED
    assert out["message"].startswith("tls_ca_path: cannot load the CA certificate")
    vm.engine_errors.clear()  # X509Certificate.load reports the missing file, as Godot does
    out = _run(vm, "run_refused", tls_daemon.ws_url, "pk_a b", "")
    assert out["code"] == "INVALID_ARGUMENT" and out["message"].startswith("token:")


def test_ws_to_a_tls_daemon_says_wss(tls_daemon: SecureDaemon, vm: GodotVM) -> None:
    url = "ws://" + tls_daemon.ws_url.removeprefix("wss://")
    out = _run(vm, "run_refused", url, GENERATE_TOKEN, "")
    assert out["code"] == "UNAVAILABLE" and "serves wss:// only" in out["message"]


def test_token_over_plain_ws(vm: GodotVM, tmp_path: Path) -> None:
    with secure_served(tmp_path, tls=False) as daemon:
        _check_allowed(_run(vm, "run_allowed", daemon.ws_url, GENERATE_TOKEN, ""), vm)
        out = _run(vm, "run_refused", daemon.ws_url, "", "")
    assert out["code"] == "UNAUTHENTICATED" and "needs a token" in out["message"]


def test_no_token_leaks_into_the_environment_of_other_tests() -> None:
    assert "PIXELKILN_TOKEN" not in os.environ


@pytest.mark.skipif(bool(runner.missing()), reason=runner.missing() or "ready")
def test_real_godot_web_build_cannot_send_the_token(tmp_path: Path) -> None:
    """Godot 4.6's web build: WebSocketPeer is the browser's WebSocket, which sends no custom
    handshake header, so a daemon with tokens refuses it even with the token set (and its page's
    Origin allowed). What the user gets is the client's hint, not a hang."""
    with secure_served(tmp_path, False, "--ws-allow-origin", "http://127.0.0.1:*") as daemon:
        config = {
            "url": daemon.ws_url,
            "secure": {"url": daemon.ws_url, "token": GENERATE_TOKEN},
            "deadline_ms": 60_000,
        }
        got = runner.run(config, timeout=120)
    assert got.report is not None and got.report["web"] is True
    out = got.report["secure"]
    assert out["code"] == "UNAVAILABLE"
    assert "On the web, a daemon with --token-file cannot be reached" in out["message"]
    # The daemon saw the browser's handshake without any token (not a wrong one).
    daemon_log = (tmp_path / "daemon.log").read_text(errors="replace")
    assert "handshake refused: UNAUTHENTICATED: authorization: this daemon needs a token" in (
        daemon_log
    )
