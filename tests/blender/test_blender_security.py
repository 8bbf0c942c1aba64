"""The Blender add-on against a daemon with tokens and TLS (issue 15 item 9, issue 17 items 4
and 5), headless with bpy (tests/blender/secure_scenario.py); skipped without the bpy venv
(``bash tools/setup_bpy_venv.sh``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..secure_served import GENERATE_TOKEN, secure_served
from .test_blender_addon import BPY_PYTHON, NO_BPY, client_site, run_bpy, step

__all__ = ["client_site"]  # the fixture, shared with test_blender_addon


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, client_site: Path) -> Iterator[dict[str, Any]]:
    if not BPY_PYTHON.exists():
        pytest.skip(NO_BPY)
    folder = tmp_path_factory.mktemp("blender_tls")
    with secure_served(folder, tls=True) as daemon:
        assert daemon.pki is not None
        out = folder / "report.json"
        run_bpy(
            "secure_scenario.py",
            daemon.grpc_address,
            str(daemon.pki.ca),
            str(daemon.pki.other_ca),
            GENERATE_TOKEN,
            str(out),
            site=client_site,
        )
        yield dict(json.loads(out.read_text()))


def _error(report: dict[str, Any], name: str) -> str:
    result = step(report, name)
    assert result["finished"] and result["level"] == "ERROR", result
    return str(result["status"])


def test_token_and_ca_from_the_preferences(report: dict[str, Any]) -> None:
    allowed = step(report, "allowed")
    assert allowed["level"] != "ERROR" and allowed["size"] == [64, 128], allowed
    assert set(allowed["security"]) == {"token", "root_certificates"}
    assert step(report, "health")["health"].startswith("SERVING")


def test_token_and_ca_from_the_environment(report: dict[str, Any]) -> None:
    env = step(report, "environment")
    assert env["security"] == {}  # nothing in the preferences
    assert env["level"] != "ERROR" and env["size"] == [64, 128], env


def test_each_wrong_setting_says_what_to_set(report: dict[str, Any]) -> None:
    assert "turn on TLS in the add-on's preferences" in _error(report, "plaintext_to_tls")
    for name, expected in (("no_token", "needs a token"), ("wrong_token", "not known")):
        message = _error(report, name)
        assert "needs a valid token" in message and expected in message
        assert "Preferences > Add-ons > PixelKiln" in message
    assert "TLS handshake" in _error(report, "other_ca")
    missing = _error(report, "missing_ca")
    assert "CA certificate of the add-on's preferences" in missing
    assert "/nonexistent/ca.pem" in missing


def test_the_token_is_not_saved_in_the_blend(report: dict[str, Any]) -> None:
    assert step(report, "blend")["token_in_blend"] is False


def test_error_messages_for_tokens_and_tls_without_blender() -> None:
    import grpc

    from pixelkiln import PixelKilnError

    from .test_blender_addon import EXTENSION, load

    bridge = load("pixelkiln_blender_bridge", EXTENSION / "bridge.py")
    addr = "gpu-box:50051"
    said = bridge.describe_error(
        PixelKilnError(grpc.StatusCode.UNAUTHENTICATED, "authorization: the token is not known"),
        addr,
    )
    assert "needs a valid token" in said and "PIXELKILN_TOKEN" in said
    said = bridge.describe_error(
        PixelKilnError(
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.0.0.2:50051: Tls "
            "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: CERTIFICATE_VERIFY_FAILED",
        ),
        addr,
    )
    assert "TLS handshake with gpu-box:50051 failed" in said and "CA certificate" in said
    said = bridge.describe_error(
        PixelKilnError(grpc.StatusCode.PERMISSION_DENIED, "Load needs a token with scope 'admin'"),
        addr,
    )
    assert said == "Not allowed with this token: Load needs a token with scope 'admin'"
    said = bridge.describe_error(
        ValueError("root_certificates: cannot read /x.pem (No such file)"), addr
    )
    assert said.startswith("The CA certificate of the add-on's preferences (or PIXELKILN_TLS_CA):")
