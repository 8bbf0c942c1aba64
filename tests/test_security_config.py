"""The daemon's security configuration without a running daemon: the binding rule, token
files (``pixelkiln token create``), TLS files, Origin rules and who counts as which client."""

from __future__ import annotations

import logging
import stat
import sys
from pathlib import Path

import pytest

from pixelkiln.cli import main as cli_main
from pixelkiln_server import auth
from pixelkiln_server.app import Daemon
from pixelkiln_server.auth import Scope, TokenStore, create_token, parse_tokens
from pixelkiln_server.errors import Unauthenticated
from pixelkiln_server.security import SecurityConfigError

from .certs import Pki, make_pki
from .conftest import make_config
from .test_security import ALICE, BOB


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"alice generate {ALICE}\nbob generate {BOB}\n")
    path.chmod(0o600)
    return path


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


def test_a_changed_token_file_takes_effect_without_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Added and revoked tokens count for the next call; a file that turns unusable (a bad
    line, or removed) refuses every token until it is fixed, rather than keeping the old ones."""
    monkeypatch.setattr(auth, "RELOAD_CHECK_S", 0.0)
    path = tmp_path / "tokens"
    alice = create_token(path, "alice")
    store = TokenStore.load(path)
    assert store.authenticate(f"Bearer {alice}").name == "alice"
    bob = create_token(path, "bob")  # `pixelkiln token create` while the daemon runs
    assert store.authenticate(f"Bearer {bob}").name == "bob"
    path.write_text(path.read_text().splitlines()[1] + "\n")  # alice's line removed
    with pytest.raises(Unauthenticated, match="not known"):
        store.authenticate(f"Bearer {alice}")
    path.write_text("bob generate short\n")
    for token in (alice, bob):
        with pytest.raises(Unauthenticated, match="token file cannot be used now"):
            store.authenticate(f"Bearer {token}")
    path.unlink()
    with pytest.raises(Unauthenticated, match="token file cannot be used now"):
        store.authenticate(f"Bearer {bob}")
    create_token(path, "carol")
    with pytest.raises(Unauthenticated, match="not known"):
        store.authenticate(f"Bearer {bob}")
    assert len(store) == 1


def test_the_token_file_is_looked_at_once_a_second_at_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokens"
    alice = create_token(path, "alice")
    store = TokenStore.load(path)
    looked: list[Path] = []
    monkeypatch.setattr(auth, "_stamp", lambda p: looked.append(p))
    for _ in range(100):
        store.authenticate(f"Bearer {alice}")
    assert len(looked) <= 1


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
